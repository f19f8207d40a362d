"""`make demo` runs the study in miniature offline: this runs it as the Makefile does and reads what it
printed and wrote.

The suite uses `--quick` (a few training steps: the same export, prepare, pretraining and
`draftdesk finetune train` path, in seconds instead of minutes); the full recipe is too slow for the
suite (minutes of training): its outcome and timings are recorded in docs/performance.md ("Demo").
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from draftdesk.demo.models import QUICK, cache_key, ensure_demo_models
from draftdesk.demo.raters import RATERS, SCALE, score, similarity

REPO = Path(__file__).resolve().parents[1]
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"}


def test_the_demo_trains_runs_the_loop_and_labels_its_raters(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "draftdesk.cli",
            "demo",
            "--quick",
            "--cache",
            str(cache),
            "--workdir",
            str(tmp_path / "demo"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env=ENV,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "Traceback" not in done.stderr and "Traceback" not in out

    # The models: two pretrained bases, and an adapter each from the real `finetune train` (QLoRA, NF4).
    root = cache / cache_key(QUICK)
    for family in ("llama", "gptj"):
        assert (root / "bases" / family / "config.json").is_file()
        adapters = root / "adapters" / f"mini-{family}-ft"
        manifest = json.loads(
            (adapters / (adapters / "LATEST").read_text().strip() / "manifest.json").read_text()
        )
        assert manifest["effective"]["quantization"] == "nf4"
        assert manifest["hyperparameters"]["max_steps"] == QUICK.adapter_steps
        assert manifest["metrics"]["global_step"] == QUICK.adapter_steps
        # Trained on grounded prompts: each with the Help Center passage the bot puts there.
        assert manifest["dataset"]["path"] == str(root / "work" / "dataset-grounded")
    grounded = [json.loads(line) for line in (root / "work" / "dataset-grounded" / "train.jsonl").open()]
    assert sum(1 for row in grounded if row["sources"]) >= 0.9 * len(grounded)
    assert {row["language"] for row in grounded} == {"en"}  # English models, as the study's
    held_out = (root / "work" / "dataset" / "eval.jsonl").read_text().splitlines()
    tickets = [json.loads(line)["ticket_id"] for line in held_out]

    # The loop: every held-out ticket gets a thread with three drafts and the raters' labelled scores.
    assert len(tickets) >= 5
    for ticket in tickets:
        assert f"#{ticket}" in out
    assert out.count("Draft A") >= len(tickets)
    assert out.count(":books: *Help Center:*") == len(tickets)  # the bot drafted with the articles indexed
    # Every draft posted with rating buttons is rated (the quick recipe's barely trained models may
    # end a draft before its first word: that draft is posted as failed, without buttons).
    rated = out.count("SIMULATED raters, Draft")
    assert rated == out.count("[ 1 ] [ 2 ] [ 3 ] [ 4 ] [ 5 ]") and rated >= 2 * len(tickets)
    assert "Table 1" in out and "Against the baseline" in out and "mini-llama-ft" in out
    # The demo's report is what `draftdesk report` prints from the demo's store and config.
    shown = out[out.index("Report (draftdesk report)") : out.index("Weekly digest as posted")]
    shown = shown.split("\n", 2)[2].strip()
    config = re.search(r"Config: (\S+)", out)
    assert config is not None
    report = subprocess.run(
        [sys.executable, "-m", "draftdesk.cli", "report", "--config", config.group(1)],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    assert report.returncode == 0, report.stderr
    assert shown == report.stdout.strip()
    assert "mini-llama-ft @ " in shown  # one row per model and adapter version
    digest = out[out.index("Weekly digest as posted to Slack") :]
    assert "simulated raters (not people)" in digest and "Against mini-llama" in digest
    chart = tmp_path / "demo" / "digest-chart.png"
    assert chart.read_bytes().startswith(b"\x89PNG") and str(chart.resolve()) in out

    # A second run finds the models in the cache and trains nothing.
    lines: list[str] = []
    again = ensure_demo_models(cache, QUICK, say=lines.append)
    assert again.cached and again.root == root and "built before" in lines[0]


def test_simulated_raters_score_by_similarity_to_the_real_answer() -> None:
    answer = "Open Settings > Exclusions and click Add folder to skip a folder like Downloads."
    close = "Open Settings > Exclusions, then click Add folder to skip Downloads."
    unrelated = "Our parcels ship to all EU countries within two days."
    assert similarity(answer, answer) == 100.0
    assert similarity(close, answer) > similarity(unrelated, answer)
    for rater in RATERS:
        assert score(rater, "d1", 100.0) == 5
        assert score(rater, "d1", 0.0) == 1
        assert score(rater, "d1", similarity(close, answer)) > score(
            rater, "d1", similarity(unrelated, answer)
        )
    # Each rater reads the same scale, a few points more or less strict: never more than one step apart.
    for chrf in (SCALE[0], SCALE[1], 37.0, SCALE[3]):
        given = [score(rater, "d2", chrf) for rater in RATERS]
        assert max(given) - min(given) <= 1


def test_the_vocabulary_never_reads_the_held_out_answers(tmp_path: Path) -> None:
    from draftdesk.demo.models import tokenizer_texts

    def write(name: str, rows: list[dict]) -> None:
        (tmp_path / name).write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")

    write("articles.jsonl", [{"text": "Open Settings > Exclusions."}])
    write("train.jsonl", [{"prompt": "Customer: stuck at 99%\n\nAgent:", "completion": " Close Outlook."}])
    write("eval.jsonl", [{"prompt": "Customer: never finishes\n\nAgent:", "completion": " HELD OUT ANSWER"}])
    texts = tokenizer_texts(tmp_path)
    assert "Open Settings > Exclusions." in texts and " Close Outlook." in texts
    assert "Customer: never finishes\n\nAgent:" in texts
    assert not any("HELD OUT ANSWER" in text for text in texts)


def test_the_bases_read_everyday_support_english_but_no_ticket_of_the_sample(tmp_path: Path) -> None:
    from draftdesk.demo.models import pretraining_texts
    from finetune.sample import load_sample

    article = "Open Settings > Exclusions and click Add folder to skip it."
    (tmp_path / "articles.jsonl").write_text(json.dumps({"text": article}) + "\n", encoding="utf-8")
    reading = [text for text in pretraining_texts(tmp_path / "articles.jsonl") if text != article]
    # The words every answer of the sample opens or explains with, which the articles never use.
    words = set(re.findall(r"[\w<>']+", "\n".join(reading)))
    assert {"Hi", "<NAME>", "sorry", "Please", "have", "not", "how", "than", "I'm"} <= words

    def runs_of_five(text: str) -> set[str]:
        tokens = re.findall(r"[\w'<>]+", text.lower())
        return {" ".join(tokens[i : i + 5]) for i in range(len(tokens) - 4)}

    sample = load_sample()
    staff = {user["id"] for user in sample.users if user.get("role") != "end-user"}
    answers = [
        c["body"] for comments in sample.comments.values() for c in comments if c["author_id"] in staff
    ]
    questions = [
        c["body"] for comments in sample.comments.values() for c in comments if c["author_id"] not in staff
    ]
    assert len(answers) > 80 and len(questions) > 90
    shared = set().union(*map(runs_of_five, reading)) & set().union(*map(runs_of_five, answers + questions))
    assert not shared  # no five words in a row from any ticket: the bases learn English, not the answers
