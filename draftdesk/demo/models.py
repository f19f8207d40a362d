"""The demo's models, built once and cached: the study in miniature.

Two small bases (LLaMA- and GPT-J-shaped) learn language from the bundled sample's help-centre
articles and everyday support e-mails about other businesses, never from its tickets. Then the real
`draftdesk finetune export --sample`, `prepare --grounding` and `train` (QLoRA: NF4 4-bit via
bitsandbytes, LoRA via peft, TRL's SFTTrainer) tune one adapter per base on the pairs. The untuned
LLaMA base is the baseline, as in the study.

Every prompt, in training and in the demo's drafting alike, holds the Help Center passage that fits
the ticket (`[grounding]`): models this small learn from some sixty examples to turn a passage into
an answer, but not which answer fits a question worded in a way they never saw (measured in
docs/performance.md, "Demo"); the BM25 search does that matching for them.

Everything lands in ``CACHE/KEY/``, where KEY hashes the sample data, this recipe and the library
versions, so a second run reuses it. The two families are built in two processes at once (one core
each): on a 2-core machine that halves the wait, and single-threaded torch does not spin against
other work on a busy machine. Each step is resumable: bases are renamed into place when complete,
`finetune train` resumes from its checkpoints, and ``complete.json`` is written last.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata, resources
from pathlib import Path

SAMPLE_FILES = ("help_center_articles.json", "ticket_comments.json", "tickets.json", "users.json")
FAMILIES = ("llama", "gptj")
LIBRARIES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "tokenizers")
COMPLETE = "complete.json"
CONFIG = "finetune.toml"
PRODUCT = "Acme Cloud Backup"
# Part of the cache key: raise it when code changes what a build produces (what the bases read, how
# `finetune train` trains) without a change to the recipe, the sample or the libraries.
# 2: bases read everyday e-mails, not the shipping corpus; float32 LoRA weights on the CPU.
# 3: grounded prompts; one tokenizer for both bases, learned before the grounded prepare counts with it.
# 4: the English tickets only (`prepare --language en`), as the study's English models.
BUILD_VERSION = 4
# The English articles only: with the German ones too, an English ticket's prompt often got a German
# passage second (they share "99 %", "Outlook"), and the drafts mixed the two languages.
GROUNDING_LOCALES = ("en-us",)
TOKENIZER = "tokenizer"


@dataclass(frozen=True)
class Recipe:
    """How the demo's models are made; every field is part of the cache key."""

    hidden: int = 128  # a multiple of 64: bitsandbytes quantizes blocks of 64 values
    layers: int = 2
    vocab_size: int = 4000  # more than the sample's words need: every merge the text offers is learned
    pretrain_steps: int = 400
    pretrain_batch: int = 8
    pretrain_length: int = 128
    pretrain_lr: float = 5e-3
    adapter_steps: int = 120
    lora_r: int = 32
    lora_alpha: int = 32
    adapter_lr: float = 1.5e-2
    adapter_scheduler: str = "cosine"
    adapter_batch: int = 8
    adapter_max_length: int = 288  # the longest grounded example is 272 tokens
    prompt_tokens: int = 80  # one Help Center passage per prompt (the sample's are 45-78 tokens long)
    eval_fraction: float = 0.25  # the held-out tickets become the demo's tickets
    seed: int = 0


FULL = Recipe()
# Checks the machinery in seconds (the test suite); its drafts are not trained enough to read well.
# Its small vocabulary spells words in pieces: a passage takes about three times the tokens.
QUICK = Recipe(pretrain_steps=4, adapter_steps=2, vocab_size=600, prompt_tokens=240, adapter_max_length=512)


@dataclass(frozen=True)
class DemoModels:
    root: Path
    bases: dict[str, Path]  # family → base model folder
    adapters: dict[str, Path]  # family → adapter root (holding LATEST)
    dataset: Path  # the prepared sample: train.jsonl, eval.jsonl, articles.jsonl
    grounded_dataset: Path  # the same split with Help Center passages in the prompts: what the adapters learn
    cached: bool


def sample_dir() -> Path:
    return Path(str(resources.files("finetune").joinpath("sample_data")))


def cache_key(recipe: Recipe) -> str:
    """Hash of the sample's bytes, the recipe, the fine-tuning config it writes, the bases' reading,
    `BUILD_VERSION` and the training libraries."""
    from draftdesk.demo.reading import generic_replies

    digest = hashlib.sha256()
    for name in SAMPLE_FILES:
        digest.update(name.encode() + b"\0" + (sample_dir() / name).read_bytes())
    digest.update(json.dumps(asdict(recipe), sort_keys=True).encode())
    digest.update(finetune_config(Path("/ROOT"), recipe).encode())
    digest.update("\n".join(generic_replies()).encode())
    digest.update(f"build {BUILD_VERSION}".encode())
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            digest.update(f"{name}={metadata.version(name)}".encode())
    return digest.hexdigest()[:16]


def model_name(family: str) -> str:
    return f"mini-{family}-ft"


def finetune_config(root: Path, recipe: Recipe) -> str:
    """The config file the real `draftdesk finetune` commands read, written in ``root``."""
    models = "".join(
        f'\n[[models]]\nname = "{model_name(family)}"\nbase_model = "{root / "bases" / family}"\n'
        "grounding = true\n"
        for family in FAMILIES
    )
    return f"""# Written by `draftdesk demo`: the demo's fine-tuning set-up.
[zendesk]
url = "https://acme-backup.zendesk.com"

[worker]
product_name = "{PRODUCT}"

[grounding]
locales = {json.dumps(list(GROUNDING_LOCALES))}
prompt_tokens = {recipe.prompt_tokens}

[finetune]
workdir = "{root / "work"}"
output_dir = "{root / "adapters"}"

[finetune.export]
locales = ["en-us", "de"]

[finetune.prepare]
eval_fraction = {recipe.eval_fraction}

[finetune.train]
lora_r = {recipe.lora_r}
lora_alpha = {recipe.lora_alpha}
lora_dropout = 0.0
learning_rate = {recipe.adapter_lr}
warmup_ratio = 0.0
lr_scheduler_type = "{recipe.adapter_scheduler}"
max_steps = {recipe.adapter_steps}
per_device_train_batch_size = {recipe.adapter_batch}
max_length = {recipe.adapter_max_length}
include_articles = false
gradient_checkpointing = false
logging_steps = 10
save_steps = 80
seed = {recipe.seed}
{models}"""


def ensure_demo_models(cache: Path, recipe: Recipe = FULL, say: Callable[[str], None] = print) -> DemoModels:
    """The demo's models under ``cache``: reused when built before, else built now."""
    root = Path(cache).resolve() / cache_key(recipe)
    dataset = root / "work" / "dataset"
    result = DemoModels(
        root=root,
        bases={f: root / "bases" / f for f in FAMILIES},
        adapters={f: root / "adapters" / model_name(f) for f in FAMILIES},
        dataset=dataset,
        grounded_dataset=root / "work" / "dataset-grounded",
        cached=(root / COMPLETE).is_file(),
    )
    if result.cached:
        say(f"using the demo models built before: {root}")
        return result
    started = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG).write_text(finetune_config(root, recipe), encoding="utf-8")
    log = root / "build.log"
    say(f"building the demo models once (a few minutes; cached in {root}, log: {log})")
    if not (result.grounded_dataset / "card.json").is_file():
        say("  draftdesk finetune export --sample, then prepare, plain and --grounding: tickets, articles…")
        _run_logged(log, lambda r: _export_and_prepare(r, recipe), root)
    say("  pretraining two small bases on the articles and everyday support e-mails, then QLoRA-tuning")
    say("  an adapter for each on the question-answer pairs (draftdesk finetune train)…")
    workers = min(len(FAMILIES), max(1, os.cpu_count() or 1))
    threads = max(1, min(4, (os.cpu_count() or 1) // workers))
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        jobs = {
            pool.submit(
                _build_family, root, family, recipe, threads, str(root / f"build-{family}.log")
            ): family
            for family in FAMILIES
        }
        for job in concurrent.futures.as_completed(jobs):
            say(f"  {jobs[job]}: {job.result()}")
    (root / COMPLETE).write_text(
        json.dumps({"recipe": asdict(recipe), "seconds": round(time.monotonic() - started)}), encoding="utf-8"
    )
    _remove_other_builds(root)
    say(f"demo models ready in {time.monotonic() - started:.0f} s")
    return result


class DemoBuildError(RuntimeError):
    """A step of the build failed; the message names its log."""


def _run_logged(log: Path, step: Callable[[Path], None], root: Path) -> None:
    with _output_to(log):
        try:
            step(root)
        except SystemExit as exc:
            failed = exc.code not in (0, None)
        except Exception as exc:  # reported as one line with the log that has the details
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
            failed = True
        else:
            failed = False
    if failed:
        raise DemoBuildError(f"building the demo models failed; details in {log}")


def finetune_command(*argv: str) -> None:
    """Run `draftdesk finetune ARGV…`: the command group's own parser and code (finetune/cli.py)."""
    import argparse

    from core.config import ConfigError
    from finetune import cli as finetune_cli

    parser = argparse.ArgumentParser(prog="draftdesk")
    finetune_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["finetune", *argv])
    try:
        code = args.func(args)
    except ConfigError as exc:
        raise DemoBuildError(f"draftdesk finetune {argv[0]}: " + "; ".join(exc.problems)) from None
    if code != 0:
        raise DemoBuildError(f"draftdesk finetune {' '.join(argv)} failed (exit status {code})")


def _export_and_prepare(root: Path, recipe: Recipe) -> None:
    """Export the sample, prepare it plainly (the split, and the words the tokenizer learns), learn
    the bases' tokenizer, then prepare it grounded: passages counted in that tokenizer's tokens, as
    the bot counts them when it drafts."""
    from models.tiny import train_tokenizer

    config = str(root / CONFIG)
    work = root / "work"
    finetune_command("export", "--sample", "--config", config)
    # English only, as the study's models were: the sample's few German tickets would be a language
    # the adapters see 8 times (the same tickets in both sets: the split is the same).
    finetune_command("prepare", "--language", "en", "--out", str(work / "dataset"), "--config", config)
    tokenizer = root / TOKENIZER
    if not (tokenizer / "tokenizer.json").is_file():
        texts = tokenizer_texts(root / "work" / "dataset")
        with tempfile.TemporaryDirectory(dir=root, prefix=f".{TOKENIZER}-") as tmp:
            train_tokenizer(texts, vocab_size=recipe.vocab_size).save_pretrained(tmp + "/t")
            os.replace(tmp + "/t", tokenizer)
    finetune_command(
        "prepare",
        "--grounding",
        "--tokenizer",
        str(tokenizer),
        "--language",
        "en",
        "--out",
        str(work / "dataset-grounded"),
        "--config",
        config,
    )


def _build_family(root: Path, family: str, recipe: Recipe, threads: int, log: str) -> str:
    """One family in its own process: pretrain the base (unless there), then train its adapter."""
    import torch

    torch.set_num_threads(threads)
    started = time.monotonic()
    _run_logged(Path(log), lambda r: _pretrain_and_train(r, family, recipe), root)
    manifest = json.loads(_latest_manifest(root, family).read_text(encoding="utf-8"))
    metrics = manifest["metrics"]
    return (
        f"adapter trained in {time.monotonic() - started:.0f} s, held-out loss "
        f"{metrics['eval_loss_before']:.2f} (base) -> {metrics['eval_loss']:.2f} (fine-tuned)"
    )


def _latest_manifest(root: Path, family: str) -> Path:
    adapter_root = root / "adapters" / model_name(family)
    version = (adapter_root / "LATEST").read_text(encoding="utf-8").strip()
    return adapter_root / version / "manifest.json"


def _pretrain_and_train(root: Path, family: str, recipe: Recipe) -> None:
    base = root / "bases" / family
    if not base.is_dir():
        pretrain_base(base, family, root / "work" / "dataset" / "articles.jsonl", root / TOKENIZER, recipe)
    finetune_command("train", "--model", model_name(family), "--config", str(root / CONFIG))


def pretraining_texts(articles_jsonl: Path) -> list[str]:
    """The base's reading: the help-centre articles and everyday support e-mails about other
    businesses (draftdesk/demo/reading.py); no ticket of the sample and none of its answers.

    Not `models.tiny.sample_corpus`: that shipping-product text holds two of the sample's answers
    almost word for word ("You can cancel any time under Billing > Plan", "Sorry about the double
    charge"), which an untuned base must not know.
    """
    from draftdesk.demo.reading import generic_replies

    articles = [json.loads(line)["text"] for line in articles_jsonl.read_text("utf-8").splitlines() if line]
    return [*articles, *generic_replies()]


def tokenizer_texts(dataset: Path) -> list[str]:
    """What the tokenizer's vocabulary is learned from: the base's reading plus the training split's
    prompts and answers and the held-out tickets' questions (never their answers).

    A real base's tokenizer has seen web-scale text, so the product's words ("stuck", "<NAME>") are
    whole tokens to it. Learned from the articles alone, a 2,000-token vocabulary runs out of merges
    and spells such words letter by letter: prompts get 80% longer, training slower, and the drafts
    come out as word fragments. The vocabulary only decides how text is split; the base's weights
    still learn from `pretraining_texts` alone.
    """
    texts = pretraining_texts(dataset / "articles.jsonl")
    for name, fields in (("train.jsonl", ("prompt", "completion")), ("eval.jsonl", ("prompt",))):
        for line in (dataset / name).read_text("utf-8").splitlines():
            if line:
                row = json.loads(line)
                texts += [row[field] for field in fields]
    return texts


def pretrain_base(out: Path, family: str, articles_jsonl: Path, tokenizer_dir: Path, recipe: Recipe) -> None:
    """A small causal LM trained from scratch on ``pretraining_texts``, with the tokenizer saved in
    ``tokenizer_dir``; renamed into place when done.

    A plain AdamW loop over random windows of one token stream: the corpus is a few thousand
    tokens, so there is nothing for a dataset pipeline to do.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from models.tiny import model_config

    texts = pretraining_texts(articles_jsonl)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(recipe.seed)
    model = AutoModelForCausalLM.from_config(model_config(family, tokenizer, recipe.hidden, recipe.layers))  # type: ignore[arg-type]
    stream: list[int] = []
    for text in texts:
        stream += [*tokenizer(text)["input_ids"], tokenizer.eos_token_id]
    tokens = torch.tensor(stream)
    length = min(recipe.pretrain_length, len(stream) - 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.pretrain_lr)
    windows = torch.Generator().manual_seed(recipe.seed)
    model.train()
    for _ in range(recipe.pretrain_steps):
        starts = torch.randint(0, len(stream) - length, (recipe.pretrain_batch,), generator=windows)
        batch = torch.stack([tokens[s : s + length] for s in starts.tolist()])
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        model.save_pretrained(tmp + "/model")
        tokenizer.save_pretrained(tmp + "/model")
        os.replace(tmp + "/model", out)


@contextlib.contextmanager
def _output_to(log: Path):  # type: ignore[no-untyped-def]
    """Send this process's stdout and stderr (Python and C level: progress bars, warnings) to ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("a", encoding="utf-8") as file:
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _remove_other_builds(root: Path) -> None:
    """Builds for other keys (older sample data, recipe or libraries) are of no further use."""
    for other in root.parent.iterdir():
        if other != root and other.is_dir() and (other / CONFIG).is_file():
            shutil.rmtree(other, ignore_errors=True)
