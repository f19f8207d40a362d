"""Tiny local models for tests and the offline demo: no model hub, no downloads.

The models have random weights, so their text is gibberish; what matters is that they exercise the
real code path (tokenizer files on disk, 4-bit loading, LoRA adapters, mixed-adapter batches) in a
second or two on a CPU. The shapes follow the study's two families: LLaMA and GPT-J.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, pre_tokenizers, processors, trainers
from tokenizers import models as tok_models
from transformers import (
    AutoModelForCausalLM,
    GenerationConfig,
    GPTJConfig,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
)

Family = Literal["llama", "gptj"]

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]
MAX_POSITIONS = 512

_PRODUCT = "Parcelo"

_CORPUS = f"""\
Hi, I can't log in to my {_PRODUCT} account since this morning. It says my password is wrong.
Hello Maria, thanks for reaching out! I've sent a password reset link to your email address.
My invoice for March shows two charges for the Team plan. Can you refund one of them?
Sorry about the double charge. I've refunded the duplicate payment; it takes 5-10 business days.
How do I export my shipment history to a CSV file?
Go to Reports, choose Shipments, pick a date range and click Export. The file arrives by email.
The label printer stopped working after the last update. Labels come out blank.
Please update the printer driver to version 2.4 and restart the {_PRODUCT} desktop app.
Can I add a second warehouse address to my account?
Yes! Open Settings > Locations and click "Add location". You can set one as the default.
Our API key was leaked in a public repository. How do we revoke it?
Revoke it right away under Settings > API keys, then create a new key and update your integration.
The tracking page says "label created" for three days. Where is my parcel?
I checked with the carrier: the parcel was scanned yesterday and should arrive on Friday.
Is there a discount for non-profit organisations?
We offer 30% off the Team plan for registered non-profits. Reply with your registration number.
How do I cancel my subscription? I don't need it after this month.
You can cancel any time under Billing > Plan. Your account stays active until the period ends.
The mobile app crashes when I scan a barcode on Android 14.
Thanks for the report. Version 5.2.1 fixes this crash; please update from the Play Store.
Can two people use the same login?
Each user needs their own seat. Invite your colleague under Team > Members; the first 3 seats are free.
Why was my order marked as "address invalid"?
The postcode didn't match the city. Edit the address in the order and click "Validate" again.
I want to change the email address on my account.
Open Profile > Email, enter the new address and confirm it with the code we send you.
Do you support shipping to Norway and Switzerland?
Yes, we ship to all EU and EFTA countries. Customs forms are filled in automatically.
The webhook to our shop stopped firing yesterday at 14:00 UTC.
We had a short outage between 14:00 and 14:40 UTC. Missed events were re-sent at 15:00.
Can I get a copy of my data under GDPR?
Of course. Go to Privacy > Export data; we email you a download link within 24 hours.
My colleague left the company. How do I remove her from our team?
Go to Team > Members, open her profile and click "Remove". Her shipments stay in your account.
The bulk import fails with "row 17: weight missing".
Row 17 of your file has an empty weight column. Fill it in (in kg) and upload the file again.
Is two-factor authentication available?
Yes. Turn it on under Profile > Security; we support authenticator apps and SMS codes.
Thank you, that solved it!
You're welcome! Let us know if there is anything else we can help with.
Best regards,
The {_PRODUCT} support team
"""


def sample_corpus() -> list[str]:
    """A few dozen lines of customer-support text about a fictional shipping product."""
    return [line for line in _CORPUS.splitlines() if line.strip()]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on local text.

    Byte-level means every string can be encoded (no unknown characters). The tokenizer puts
    ``<s>`` before each text, like LLaMA's, pads on the left (what batched generation needs) and has
    no chat template: the models are plain causal LMs.
    """
    tok = Tokenizer(tok_models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="left",
        model_max_length=MAX_POSITIONS,
    )


def model_config(
    family: Family, tokenizer: PreTrainedTokenizerFast, hidden: int, layers: int
) -> PretrainedConfig:
    ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    heads = max(1, hidden // 16)
    if family == "llama":
        return LlamaConfig(
            hidden_size=hidden,
            intermediate_size=hidden * 2,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=MAX_POSITIONS,
            **ids,
        )
    if family == "gptj":
        return GPTJConfig(
            n_embd=hidden,
            n_layer=layers,
            n_head=heads,
            rotary_dim=min(8, hidden // heads),
            n_positions=MAX_POSITIONS,
            **ids,
        )
    raise ValueError(f"unknown model family {family!r}: use 'llama' or 'gptj'")


def build_tiny_model(
    out_dir: Path,
    family: Family,
    tokenizer: PreTrainedTokenizerFast,
    hidden: int = 64,
    layers: int = 2,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised LLaMA- or GPT-J-shaped model and its tokenizer in ``out_dir``.

    ``hidden`` stays a multiple of 64 in practice: bitsandbytes quantizes in blocks of 64 values.
    """
    out_dir = Path(out_dir)
    config = model_config(family, tokenizer, hidden, layers)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def _linear_module_names(model: torch.nn.Module) -> list[str]:
    """Leaf names of the model's Linear layers, without the output head (LoRA targets)."""
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    output = model.get_output_embeddings()
    names -= {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if module is output}
    return sorted(names)


def build_tiny_adapter(base_dir: Path, out_dir: Path, seed: int = 0, r: int = 8) -> Path:
    """Save a LoRA adapter with random (non-zero) weights for the model in ``base_dir``.

    ``init_lora_weights=False`` initialises both LoRA matrices randomly; the default would make B
    zero, and an adapter that changes nothing proves nothing in tests.
    """
    from peft import LoraConfig, get_peft_model

    out_dir = Path(out_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    lora = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        target_modules=_linear_module_names(base),
        lora_dropout=0.0,
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)
    model = get_peft_model(base, lora)
    model.save_pretrained(out_dir)
    # Record the base's absolute path (not a relative name a loader could mistake for a hub id).
    config_path = out_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(Path(base_dir).resolve())
    config_path.write_text(json.dumps(config, indent=2))
    return out_dir


DEMO_NAMES = ("llama_base", "gptj_base", "llama_adapter", "gptj_adapter")


def build_demo_models(root: Path) -> dict[str, Path]:
    """Build (once) the study's set-up in miniature under ``root``.

    Two bases (LLaMA- and GPT-J-shaped) and one adapter for each; the untuned LLaMA baseline is
    the LLaMA base without adapter. Each model is written to a temporary folder and renamed into
    place, so an interrupted build leaves no half-written model behind and whatever is already
    there is kept: calling this again is cheap.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = {name: root / name for name in DEMO_NAMES}
    tokenizer: PreTrainedTokenizerFast | None = None
    for family, seed in (("llama", 0), ("gptj", 1)):
        base, adapter = paths[f"{family}_base"], paths[f"{family}_adapter"]
        if not base.is_dir():
            tokenizer = tokenizer or train_tokenizer(sample_corpus())
            with tempfile.TemporaryDirectory(dir=root, prefix=f".{base.name}-") as tmp:
                build_tiny_model(Path(tmp) / "model", family, tokenizer, seed=seed)  # type: ignore[arg-type]
                os.replace(Path(tmp) / "model", base)
        if not adapter.is_dir():
            with tempfile.TemporaryDirectory(dir=root, prefix=f".{adapter.name}-") as tmp:
                build_tiny_adapter(base, Path(tmp) / "adapter", seed=seed + 10)
                os.replace(Path(tmp) / "adapter", adapter)
    return paths
