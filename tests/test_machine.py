"""The CPU description every CPU figure carries: model name and AVX512-BF16."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from models import machine

CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx2 {extra}

processor\t: 1
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx2 {extra}
"""


@pytest.fixture
def cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "cpuinfo"
    monkeypatch.setattr(machine, "CPUINFO", path)
    machine.cpu_description.cache_clear()
    yield path
    machine.cpu_description.cache_clear()


@pytest.mark.parametrize(("extra", "expected"), [("avx512f avx512_bf16 amx_tile", True), ("avx512f", False)])
def test_the_cpu_flags_say_whether_it_has_avx512_bf16(cpuinfo: Path, extra: str, expected: bool) -> None:
    cpuinfo.write_text(CPUINFO.format(extra=extra))
    described = machine.cpu_description()
    assert described["model"] == "Intel(R) Xeon(R) Processor"
    assert described["avx512_bf16"] is expected
    assert "avx512f" in described["vector_flags"] and ("amx_tile" in described["vector_flags"]) is expected


def test_an_unreadable_cpuinfo_gives_unknown_not_false(cpuinfo: Path) -> None:
    assert machine.cpu_description()["avx512_bf16"] is None
