"""`make demo` runs the whole loop offline: this runs it as the Makefile does and reads what it printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_demo_runs_the_loop_and_prints_threads_report_digest_and_chart(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "draftdesk.cli", "demo", "--workdir", str(tmp_path / "demo")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert out.count("Draft A") >= 3 and "Slack threads as posted" in out
    assert "Table 1" in out and "Against the baseline" in out and "Agreement between raters" in out
    assert "Weekly digest as posted to Slack" in out
    chart = tmp_path / "demo" / "digest-chart.png"
    assert chart.read_bytes().startswith(b"\x89PNG") and str(chart.resolve()) in out
    assert "Traceback" not in done.stderr
