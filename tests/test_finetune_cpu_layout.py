"""QLoRA training must not depend on the CPU: bitsandbytes' AVX512-BF16 inference layout.

On a CPU with AVX512-BF16, bitsandbytes converts a 4-bit layer to an inference-only layout the
first time it runs in eval mode without grad (the trainer's evaluation pass); training after that
loses its gradients through the frozen 4-bit layers, and GPT-J's biased layers crash. The
"as on AVX512-BF16" cases make every machine's bitsandbytes believe it has the instruction set,
so these tests fail without the fix on any CPU; the "native" cases check the machine as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from finetune.config import TrainConfig
from finetune.modeling import find_lora_targets, load_base, packed_for_cpu_inference
from finetune.train import train_adapter
from tests.test_finetune_train import TINY

TICKETS = [
    "Subject: Backup stuck at 99%\n\nCustomer: The nightly backup has been stuck since Monday.\n\nAgent:",
    "Subject: Restore a single file\n\nCustomer: How do I restore one file from last week?\n\nAgent:",
]


@pytest.fixture(params=["native", "as-on-avx512-bf16"])
def cpu(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "as-on-avx512-bf16":
        import bitsandbytes.nn.modules

        monkeypatch.setattr(bitsandbytes.nn.modules, "has_avx512bf16", lambda: True)
    return request.param


def lora_gradients(base_path: Path, evaluate_first: bool) -> tuple[dict[str, torch.Tensor], list[str]]:
    """One training step's LoRA gradients, with or without an evaluation pass before it, and the
    4-bit layers left in the CPU inference layout after it."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    base = load_base(str(base_path), TINY)
    model = prepare_model_for_kbit_training(base.model, use_gradient_checkpointing=True)
    torch.manual_seed(0)
    lora = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=find_lora_targets(model),
        init_lora_weights=False,  # random A and B: both get a gradient
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    batch = base.tokenizer(TICKETS, return_tensors="pt", padding=True)
    if evaluate_first:
        model.eval()
        with torch.no_grad():
            model(**batch)
    model.train()
    model(**batch, labels=batch["input_ids"]).loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return grads, packed_for_cpu_inference(model)


@pytest.mark.parametrize("family", ["llama", "gptj"])
def test_an_evaluation_pass_does_not_change_the_next_training_step(
    demo_models: dict, family: str, cpu: str
) -> None:
    plain, _ = lora_gradients(demo_models[f"{family}_base"], evaluate_first=False)
    after_eval, packed = lora_gradients(demo_models[f"{family}_base"], evaluate_first=True)

    assert plain.keys() == after_eval.keys() and len(plain) > 0
    # The lowest layer's adapters get their gradient through every 4-bit layer above them.
    assert all(g.abs().sum() > 0 for g in plain.values())
    for name, grad in plain.items():
        torch.testing.assert_close(
            after_eval[name], grad, rtol=1e-4, atol=1e-7, msg=lambda m, name=name: f"{name}: {m}"
        )
    assert packed == []


def test_training_with_evaluation_passes_gives_the_same_adapter_on_every_cpu(
    demo_models: dict,
    dataset_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GPT-J (biased linear layers), an evaluation before training and after every step."""
    import bitsandbytes.nn.modules
    from transformers import TrainerCallback

    packed_during_training: list[list[str]] = []

    class WatchLayout(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> None:
            packed_during_training.append(packed_for_cpu_inference(model))

    config = TrainConfig(**{**TINY.__dict__, "max_steps": 3, "save_steps": 1})
    base = str(demo_models["gptj_base"])
    native = train_adapter("native", base, dataset_dir, tmp_path, config, progress=False)
    monkeypatch.setattr(bitsandbytes.nn.modules, "has_avx512bf16", lambda: True)
    emulated = train_adapter(
        "emulated", base, dataset_dir, tmp_path, config, callbacks=[WatchLayout()], progress=False
    )

    assert packed_during_training == [[], [], []]  # after the evaluations before steps 1, 2 and 3
    for key in ("eval_loss_before", "train_loss", "eval_loss"):
        assert emulated.manifest["metrics"][key] == pytest.approx(native.manifest["metrics"][key], rel=1e-4)
    assert emulated.manifest["metrics"]["eval_loss"] < emulated.manifest["metrics"]["eval_loss_before"]
    native_weights = load_file(native.adapter_dir / "adapter_model.safetensors")
    emulated_weights = load_file(emulated.adapter_dir / "adapter_model.safetensors")
    assert native_weights.keys() == emulated_weights.keys()
    for name, weight in native_weights.items():
        torch.testing.assert_close(
            emulated_weights[name], weight, rtol=1e-3, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}"
        )
