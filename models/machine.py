"""What CPU a figure was measured on: its model name and the flags that change results.

AVX512-BF16 changes what bitsandbytes does on the CPU (a packed inference layout for 4-bit layers),
so every CPU figure records it beside the device name.
"""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# The vector extensions that move CPU timings (matmuls, bitsandbytes' 4-bit kernels).
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


@cache
def cpu_description() -> dict[str, object]:
    """``{"model", "cores", "avx512_bf16": bool | None, "vector_flags": [...]}`` (None where unreadable)."""
    model, flags = platform.processor() or platform.machine(), None
    try:
        for line in CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags" and flags is None:
                flags = set(value.split())
    except OSError:
        pass
    return {
        "model": model,
        "cores": os.cpu_count(),
        "avx512_bf16": None if flags is None else "avx512_bf16" in flags,
        "vector_flags": None if flags is None else [flag for flag in VECTOR_FLAGS if flag in flags],
    }
