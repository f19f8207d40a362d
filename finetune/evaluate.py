"""`draftdesk finetune eval`: the adapter against its untuned base on the held-out tickets.

Two measures, both on the eval split (tickets the adapter never saw):

- loss and perplexity of the agents' real answers given the bot's prompt, on the answer tokens
  only (the same tokens training optimises), for the base with the adapter and without it (PEFT's
  ``disable_adapter``: the same 4-bit weights, so the difference is the adapter's alone);
- chrF (sacrebleu) of greedy generated answers against the real answers, generated from the same
  prompts with the bot's stop strings, for both.

Both are reported for the whole eval split and, under ``languages``, for each customer language of
its rows (a dataset prepared before languages were has none: its rows count as one, unnamed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from core.chrf import corpus_chrf
from core.prompt import STOP_SEQUENCES
from finetune.config import EvalConfig, TrainConfig
from finetune.fitting import fit_pair
from finetune.modeling import load_base
from finetune.prepare import load_dataset_dir
from models.cleanup import cut_at_stop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    answer_start: int  # index of the first answer token


def encode(tokenizer: Any, prompt: str, completion: str) -> Encoded:
    """Token ids of prompt + answer + EOS, and where the answer starts (as TRL computes it)."""
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    full = tokenizer(prompt + completion, add_special_tokens=True)["input_ids"]
    start = 0
    while start < min(len(prompt_ids), len(full)) and prompt_ids[start] == full[start]:
        start += 1
    if tokenizer.eos_token_id is not None:
        full = [*full, tokenizer.eos_token_id]
    return Encoded(full, start)


_LABELS = {"base": "untuned base", "adapter": "adapter"}


def _batches(items: Sequence[Any], size: int, desc: str = "") -> Iterator[Sequence[Any]]:
    """``items`` in batches of ``size``; with ``desc``, a progress bar counting the items done."""
    with tqdm(total=len(items), desc=desc, unit=" examples", disable=not desc) as bar:
        for start in range(0, len(items), size):
            yield items[start : start + size]
            bar.update(min(size, len(items) - start))


def answer_loss(
    model: Any, tokenizer: Any, encoded: Sequence[Encoded], batch_size: int, desc: str = ""
) -> tuple[float, int]:
    """Mean negative log-likelihood per answer token over all examples, and the token count."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total, count = 0.0, 0
    with torch.inference_mode():
        for batch in _batches(encoded, batch_size, desc):
            width = max(len(e.input_ids) for e in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            for row, example in enumerate(batch):
                n = len(example.input_ids)
                ids[row, :n] = torch.tensor(example.input_ids)
                mask[row, :n] = 1
                labels[row, example.answer_start : n] = ids[row, example.answer_start : n]
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
            target = labels[:, 1:].reshape(-1).to(device)
            losses = torch.nn.functional.cross_entropy(shifted, target, ignore_index=-100, reduction="sum")
            total += float(losses)
            count += int((target != -100).sum())
    return (total / count if count else float("nan")), count


def generate_answers(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, batch_size: int, desc: str = ""
) -> list[str]:
    """Greedy answers, cut at the bot's stop strings."""
    device = next(model.parameters()).device
    tokenizer.padding_side = "left"
    answers: list[str] = []
    with torch.inference_mode():
        for batch in _batches(prompts, batch_size, desc):
            encoded = tokenizer(list(batch), return_tensors="pt", padding=True, add_special_tokens=True).to(
                device
            )
            output = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            for row in output[:, encoded["input_ids"].shape[1] :]:
                text = tokenizer.decode(row, skip_special_tokens=True)
                answers.append(cut_at_stop(text, STOP_SEQUENCES).strip())
    return answers


def evaluate_adapter(
    model_name: str,
    base_model: str,
    adapter_dir: Path,
    dataset_dir: Path,
    train_config: TrainConfig,
    eval_config: EvalConfig,
    progress: bool = True,
) -> dict[str, Any]:
    """Loss, perplexity and chrF of the adapter and of the untuned base; the report as a dict.
    ``progress``: a bar for each pass (loss and answers, base and adapter)."""
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise FileNotFoundError(
            f"{adapter_dir} is not an adapter (no adapter_config.json): run `draftdesk finetune train "
            "--model "
            f"{model_name}` first, or pass --adapter PATH"
        )
    _, eval_rows, _, card = load_dataset_dir(dataset_dir)
    if not eval_rows:
        raise ValueError(f"{dataset_dir}: the eval split is empty: prepare with a larger eval_fraction")
    base = load_base(base_model, train_config)
    model = PeftModel.from_pretrained(base.model, str(adapter_dir), is_trainable=False)
    model.eval()
    tokenizer = base.tokenizer
    window = getattr(model.config, "max_position_embeddings", None) or getattr(
        model.config, "n_positions", 2048
    )
    limit = min(train_config.max_length, int(window))

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])

    product = card["settings"]["product_name"]
    fitted = [
        (row.get("language") or "", f) for row in eval_rows if (f := fit_pair(row, count, limit, product))
    ]
    encoded = [encode(tokenizer, f["prompt"], f["completion"]) for _, f in fitted]
    groups: dict[str, list[Encoded]] = {}
    for (language, _), item in zip(fitted, encoded, strict=True):
        groups.setdefault(language, []).append(item)
    results: dict[str, dict[str, float | None]] = {}
    per_language: dict[str, dict[str, Any]] = {
        language: {"eval_examples": len(items), "generated": 0} for language, items in sorted(groups.items())
    }
    for name, context in (("base", model.disable_adapter()), ("adapter", nullcontext())):
        with context:
            desc = f"eval loss, {_LABELS[name]}" if progress else ""
            losses = {
                language: answer_loss(model, tokenizer, items, eval_config.batch_size, desc)
                for language, items in groups.items()
            }
        tokens = sum(n for _, n in losses.values())
        loss = sum(value * n for value, n in losses.values() if n) / tokens if tokens else float("nan")
        results[name] = _metrics(loss)
        for language, (value, _) in losses.items():
            per_language[language][_KEYS[name]] = _metrics(value)
    samples: list[dict[str, str]] = []
    generated = too_long = 0
    if eval_config.max_generate:
        room = int(window) - eval_config.max_new_tokens
        chosen, chosen_languages = [], []
        for row in eval_rows:  # the first max_generate rows whose prompt leaves room for the answer
            if len(chosen) == eval_config.max_generate:
                break
            fits = fit_pair(row, count, room, product)
            if fits:
                chosen.append(fits)
                chosen_languages.append(row.get("language") or "")
            else:
                too_long += 1
        prompts = [f["prompt"] for f in chosen]
        references = [f["completion"].strip() for f in chosen]
        outputs = {}
        for name, context in (("base", model.disable_adapter()), ("adapter", nullcontext())):
            with context:
                desc = f"eval answers, {_LABELS[name]}" if progress else ""
                outputs[name] = generate_answers(
                    model, tokenizer, prompts, eval_config.max_new_tokens, eval_config.batch_size, desc
                )
            results[name]["chrf"] = corpus_chrf(outputs[name], references)
            for language in sorted(set(chosen_languages)):
                picked = [i for i, code in enumerate(chosen_languages) if code == language]
                chrf = corpus_chrf([outputs[name][i] for i in picked], [references[i] for i in picked])
                per_language[language][_KEYS[name]]["chrf"] = chrf
                per_language[language]["generated"] = len(picked)
        generated = len(prompts)
        samples = [
            {"reference": ref, "adapter": a, "base": b}
            for ref, a, b in list(zip(references, outputs["adapter"], outputs["base"], strict=True))[:3]
        ]
    return {
        "model": model_name,
        "base_model": base_model,
        "adapter": str(adapter_dir),
        "dataset": str(dataset_dir),
        "dataset_hash": card.get("dataset_hash"),
        "eval_examples": len(encoded),
        "answer_tokens": tokens,
        "generated": generated,
        "generation_skipped_too_long": too_long,
        "metric": "chrF (sacrebleu)",
        "base": results["base"],
        "adapter_metrics": results["adapter"],
        "languages": {code: values for code, values in per_language.items() if code},
        "samples": samples,
    }


_KEYS = {"base": "base", "adapter": "adapter_metrics"}  # the report's key for each pass


def _metrics(loss: float) -> dict[str, float | None]:
    return {"loss": loss, "perplexity": math.exp(loss) if loss < 50 else None, "chrf": None}


def render_table(report: dict[str, Any]) -> str:
    """The report as a small text table."""

    def fmt(value: float | None, digits: int) -> str:
        return (
            "–"
            if value is None or (isinstance(value, float) and math.isnan(value))
            else f"{value:.{digits}f}"
        )

    rows = [("untuned base", report["base"]), ("adapter", report["adapter_metrics"])]
    lines = [
        f"{report['model']}: {report['eval_examples']} eval examples, "
        f"{report['answer_tokens']} answer tokens, "
        f"{report['generated']} generated"
        + (
            f" ({report['generation_skipped_too_long']} skipped: prompt too long for the window)"
            if report.get("generation_skipped_too_long")
            else ""
        ),
        f"{'':14} {'loss':>8} {'perplexity':>12} {'chrF':>7}",
    ]
    for label, values in rows:
        lines.append(
            f"{label:14} {fmt(values['loss'], 3):>8} {fmt(values['perplexity'], 1):>12} "
            f"{fmt(values['chrf'], 1):>7}"
        )
    languages = report.get("languages") or {}
    if len(languages) > 1:  # one language: the table above is that language's
        for code, part in languages.items():
            lines.append(f"{code}: {part['eval_examples']} eval examples, {part['generated']} generated")
            for label, key in (("untuned base", "base"), ("adapter", "adapter_metrics")):
                values = part[key]
                lines.append(
                    f"  {label:12} {fmt(values['loss'], 3):>8} {fmt(values['perplexity'], 1):>12} "
                    f"{fmt(values['chrf'], 1):>7}"
                )
    return "\n".join(lines) + "\n"
