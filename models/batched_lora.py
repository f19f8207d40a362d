"""Many LoRA adapters on one base model, each batch row with its own, in one forward pass.

PEFT's mixed-adapter path (``adapter_names=[...]``) routes rows in every LoRA layer at every step:
it builds index tensors from Python lists, copies them to the device and synchronises, hundreds of
times per decoding step, while the GPU waits. Here the routing is decided once per ``generate``
call instead, as one device tensor per layer, and a decoding step only runs dense matmuls:

    y = base(x) + ((x @ A_all) * routing) @ B_all

``A_all`` stacks the ``A`` matrices of every adapter on the layer along the rank axis (``B_all``
likewise), and ``routing`` is a ``[rows, total rank]`` matrix holding each row's adapter scale in
its adapter's rank columns and zero elsewhere: the untuned base is simply a row of zeros. With the
few adapters one base carries (two or three), computing every adapter's rank columns for every row
costs a few thousand multiply-adds per token against the millions of the 4-bit base layer, and it
needs no gather, no index and no host work, so the step can be captured as one CUDA graph.

PEFT stays the reader of adapter folders (``PeftConfig`` and ``load_peft_weights``); what PEFT's
LoRA layer computes for one adapter, ``BatchedLoraLinear`` computes for each row (tests compare the
two). Adapters this engine cannot apply exactly (DoRA, LoRA biases, ``modules_to_save``, embedding
or convolution targets) are refused at load with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models.spec import ModelLoadError

_PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class LoraModuleWeights:
    """One adapter's LoRA pair for one linear layer: ``delta(x) = scale * (x @ A.T) @ B.T``."""

    a: torch.Tensor  # [rank, in_features]
    b: torch.Tensor  # [out_features, rank]
    scale: float


@dataclass(frozen=True)
class LoraAdapter:
    """An adapter read from its folder: its LoRA pairs keyed by the base model's module path."""

    name: str
    modules: dict[str, LoraModuleWeights]


def read_adapter(name: str, folder: Path) -> LoraAdapter:
    """Read a PEFT LoRA adapter folder; raise ModelLoadError for what cannot be applied exactly."""
    from peft import PeftConfig
    from peft.utils import load_peft_weights
    from peft.utils.other import get_pattern_key

    config = PeftConfig.from_pretrained(str(folder))
    where = f"adapter {str(folder)!r}"
    if getattr(config, "peft_type", None) is None or str(config.peft_type).rsplit(".", 1)[-1] != "LORA":
        raise ModelLoadError(
            f"{where} is a {config.peft_type} adapter; the draft engine serves LoRA adapters"
        )
    unsupported = [
        reason
        for reason, present in (
            ("DoRA (use_dora)", getattr(config, "use_dora", False)),
            (f"LoRA biases (bias={config.bias!r})", config.bias != "none"),
            ("modules_to_save", bool(config.modules_to_save)),
            ("fan_in_fan_out (Conv1D layers)", config.fan_in_fan_out),
        )
        if present
    ]
    if unsupported:
        raise ModelLoadError(
            f"{where} uses {', '.join(unsupported)}, which the draft engine does not apply; "
            "train it with draftdesk finetune train (plain LoRA), or serve it with backend = 'openai'"
        )
    state = load_peft_weights(str(folder), device="cpu")
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        if not key.endswith(".weight") or ".lora_" not in key:
            raise ModelLoadError(f"{where} holds {key!r}, which is not a LoRA A/B matrix of a linear layer")
        module, _, part = key.removesuffix(".weight").rpartition(".")
        pairs.setdefault(module.removeprefix(_PEFT_PREFIX), {})[part] = tensor
    rank_keys, alpha_keys = list(config.rank_pattern or {}), list(config.alpha_pattern or {})
    modules: dict[str, LoraModuleWeights] = {}
    for module, parts in pairs.items():
        if set(parts) != {"lora_A", "lora_B"} or parts["lora_A"].dim() != 2:
            raise ModelLoadError(
                f"{where}: {module!r} is not a LoRA pair of a linear layer ({sorted(parts)})"
            )
        rank = int(parts["lora_A"].shape[0])
        alpha = float(config.alpha_pattern.get(get_pattern_key(alpha_keys, module), config.lora_alpha))
        configured_rank = int(config.rank_pattern.get(get_pattern_key(rank_keys, module), config.r))
        if configured_rank != rank:
            raise ModelLoadError(f"{where}: {module!r} has rank {rank}, its config says {configured_rank}")
        scale = alpha / rank**0.5 if config.use_rslora else alpha / rank
        modules[module] = LoraModuleWeights(parts["lora_A"], parts["lora_B"], scale)
    if not modules:
        raise ModelLoadError(f"{where} has no LoRA weights")
    return LoraAdapter(name, modules)


class BatchedLoraLinear(nn.Module):
    """A linear layer (plain or 4-bit) plus the LoRA pairs of every adapter that targets it.

    ``routing`` is ``[max rows, 1, total rank]``: filled once per generate call by ``LoraRouter``,
    read by every forward of that call (its first rows are the batch's rows).
    """

    def __init__(self, base_layer: nn.Module, dtype: torch.dtype, max_rows: int) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.max_rows = max_rows
        self.pairs: list[tuple[int, LoraModuleWeights]] = []
        self.dtype = dtype
        self.device = next(base_layer.parameters()).device

    def extend(self, index: int, weights: LoraModuleWeights) -> None:
        """Add adapter ``index``'s pair: the stacked matrices are rebuilt (at load time only)."""
        self.pairs.append((index, weights))
        pairs, device, dtype = self.pairs, self.device, self.dtype
        a_t = torch.cat([w.a for _, w in pairs]).t().contiguous()
        b_t = torch.cat([w.b for _, w in pairs], dim=1).t().contiguous()
        owners = [i for i, w in pairs for _ in range(w.a.shape[0])]
        scales = [w.scale for _, w in pairs for _ in range(w.a.shape[0])]
        self.register_buffer("lora_a_t", a_t.to(device, dtype), persistent=False)
        self.register_buffer("lora_b_t", b_t.to(device, dtype), persistent=False)
        self.register_buffer("rank_owner", torch.tensor(owners, device=device), persistent=False)
        self.register_buffer("rank_scale", torch.tensor(scales, device=device, dtype=dtype), persistent=False)
        self.register_buffer(
            "routing",
            torch.zeros(self.max_rows, 1, len(owners), device=device, dtype=dtype),
            persistent=False,
        )

    @property
    def total_rank(self) -> int:
        return int(self.lora_a_t.shape[1])

    def route(self, row_adapters: torch.Tensor) -> None:
        """Give row i the scale of adapter ``row_adapters[i]`` (-1: the untuned base, no LoRA).

        Also sets the per-row views the forward reads (the stacked matrices expanded over the rows,
        no copy), so that a step runs three operations per layer and nothing else.
        """
        rows = row_adapters.shape[0]
        if rows > self.routing.shape[0]:  # a bigger batch than planned: grow once, outside any graph
            self.register_buffer(
                "routing", self.routing.new_zeros(rows, 1, self.total_rank), persistent=False
            )
        chosen = (row_adapters.unsqueeze(1) == self.rank_owner.unsqueeze(0)).to(self.rank_scale.dtype)
        self.routing[:rows, 0].copy_(chosen * self.rank_scale)
        self.register_buffer("row_routing", self.routing[:rows], persistent=False)
        self.register_buffer("row_a", self.lora_a_t.expand(rows, *self.lora_a_t.shape), persistent=False)
        self.register_buffer("row_b", self.lora_b_t.expand(rows, *self.lora_b_t.shape), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [rows, tokens, in] @ [rows, in, rank] -> each row's rank columns scaled by its adapter's
        # scale, the other adapters' columns zeroed -> @ [rows, rank, out], added to the base's output.
        down = torch.bmm(x, self.row_a).mul_(self.row_routing)
        return torch.baddbmm(self.base_layer(x), down, self.row_b)


class LoraRouter:
    """The adapters of one base model, applied per row by ``BatchedLoraLinear`` layers."""

    def __init__(self, model: nn.Module, dtype: torch.dtype, max_rows: int) -> None:
        self.model = model
        self.dtype = dtype
        self.max_rows = max_rows
        self.adapter_names: list[str] = []
        self.layers: dict[str, BatchedLoraLinear] = {}

    def add(self, adapter: LoraAdapter) -> int:
        """Wrap (or extend) every layer the adapter targets; its routing index is returned.

        Checks every module first, so a refused adapter leaves the model as it was.
        """
        index = len(self.adapter_names)
        targets = {module: self._target(module, adapter) for module in adapter.modules}
        for module, weights in adapter.modules.items():
            parent, child, target = targets[module]
            layer = target if isinstance(target, BatchedLoraLinear) else None
            if layer is None:
                layer = BatchedLoraLinear(target, self.dtype, self.max_rows)
                setattr(parent, child, layer)
                self.layers[module] = layer
            layer.extend(index, weights)
        self.adapter_names.append(adapter.name)
        return index

    def _target(self, module: str, adapter: LoraAdapter) -> tuple[nn.Module, str, nn.Module]:
        parent_name, _, child = module.rpartition(".")
        try:
            parent = self.model.get_submodule(parent_name)
            target = getattr(parent, child)
        except AttributeError:
            raise ModelLoadError(
                f"adapter {adapter.name!r} targets {module!r}, which this base model does not have "
                "(was it trained on another base model?)"
            ) from None
        linear = target.base_layer if isinstance(target, BatchedLoraLinear) else target
        in_features, out_features = _linear_shape(linear, module)
        weights = adapter.modules[module]
        if tuple(weights.a.shape[1:]) != (in_features,) or weights.b.shape[0] != out_features:
            raise ModelLoadError(
                f"adapter {adapter.name!r} does not fit {module!r} ({in_features}→{out_features}): "
                "was it trained on another base model?"
            )
        return parent, child, target

    def route(self, row_adapters: torch.Tensor) -> None:
        """Set every layer's routing for the next forward passes (once per generate call)."""
        for layer in self.layers.values():
            layer.route(row_adapters)


def _linear_shape(module: nn.Module, name: str) -> tuple[int, int]:
    in_features, out_features = getattr(module, "in_features", None), getattr(module, "out_features", None)
    if not isinstance(in_features, int) or not isinstance(out_features, int):
        raise ModelLoadError(
            f"LoRA on {name!r} ({type(module).__name__}) is not supported: the draft engine applies LoRA to "
            "linear layers only"
        )
    return in_features, out_features
