"""The weekly cycle of docs/finetune.md end to end on the bundled sample with tiny models:
feedback → train (DPO, from the current adapter) → candidate → status → promote → served.

Only the raters are simulated: their votes on the candidate's and the current version's drafts are
written to the store as the Slack listeners would record them.
"""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from bot.store.partitioned import PartitionedStore
from core.domain import Vote
from draftdesk.cli import main
from finetune.sample import SAMPLE_EMAIL, SAMPLE_PRODUCT, SAMPLE_TOKEN, sample_zendesk
from integrations.zendesk import ZendeskGateway
from models.config import load_model_settings
from models.router import build_backend
from tests.test_finetune_feedback import seed_store
from tests.test_promotion import NOW


def simulated_ratings(path: Path, current: str, candidate: str, per_version: int) -> None:
    """Drafts of later tickets by both versions; the raters like the candidate's more (80% vs 40%)."""
    store = PartitionedStore(path)
    for index in range(2 * per_version):
        ticket_id, version = 5000 + index, (candidate if index % 2 else current)
        share = 0.8 if version == candidate else 0.4
        n = index // 2
        score = 4 if int((n + 1) * share) > int(n * share) else 1
        store.create_round(ticket_id, 1, [("A", "ft")])
        store.save_generated(f"t{ticket_id}r1A", "a draft", None, model_version=version, prompt="p")
        at = NOW + timedelta(seconds=index)
        store.record_vote(
            Vote(ticket_id, f"t{ticket_id}r1A", "ft", "U1", score, "button", at, model_version=version)
        )
    store.close()


def test_feedback_train_candidate_status_promote(
    demo_models: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    adapters = tmp_path / "adapters"
    shutil.copytree(demo_models["llama_adapter"], adapters / "ft" / "v1")
    (adapters / "ft" / "LATEST").write_text("v1\n")
    config = tmp_path / "config.toml"
    monkeypatch.setenv("ZENDESK_EMAIL", SAMPLE_EMAIL)
    monkeypatch.setenv("ZENDESK_API_TOKEN", SAMPLE_TOKEN)

    def draftdesk(*args: str) -> str:
        code = main([*args, "--config", str(config)])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    with sample_zendesk() as zd:
        seed_store(tmp_path / "store.json", ZendeskGateway.from_settings(zd.url, SAMPLE_EMAIL, SAMPLE_TOKEN))
        settings = f"""
[storage]
path = "./store.json"

[zendesk]
url = "{zd.url}"

[worker]
product_name = "{SAMPLE_PRODUCT}"

[promotion]
min_tickets = 30

[finetune]
output_dir = "{adapters}"

[finetune.prepare]
eval_fraction = 0.2

[finetune.train]
lora_r = 8
lora_alpha = 16
learning_rate = 0.005
warmup_ratio = 0.0
max_steps = 2
per_device_train_batch_size = 4
max_length = 384
logging_steps = 1
save_steps = 100

[[models]]
name = "ft"
base_model = "{demo_models["llama_base"]}"
adapter = "{adapters / "ft"}"
max_new_tokens = 3
temperature = 0.0
"""
        config.write_text(settings)
        # 1. feedback: this week's ratings and sent replies as datasets, fitted to max_length
        tokenizer = str(demo_models["llama_base"])
        draftdesk("finetune", "feedback", "--out", str(tmp_path / "feedback"), "--tokenizer", tokenizer)

    # 2. train: DPO from the current adapter; the new version does not become current
    out = draftdesk(
        "finetune",
        "train",
        "--model",
        "ft",
        "--method",
        "dpo",
        "--dataset",
        str(tmp_path / "feedback" / "dpo"),
    )
    candidate = re.search(r'candidate = "([^"]+)"', out).group(1)  # type: ignore[union-attr]
    assert (adapters / "ft" / candidate / "manifest.json").is_file()
    assert (adapters / "ft" / "LATEST").read_text().strip() == "v1"
    # eval measures the candidate on an SFT eval split, never on (or overwriting) the DPO set.
    assert main(["finetune", "eval", "--model", "ft", "--max-generate", "0", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "is not a prepared dataset" in err and str(tmp_path / "feedback") not in err
    sft = str(tmp_path / "feedback" / "sft")
    draftdesk("finetune", "eval", "--model", "ft", "--max-generate", "0", "--dataset", sft)
    assert (adapters / "ft" / candidate / "eval.json").is_file()

    # 3. candidate: named in the config, it drafts for half the tickets; the raters rate
    config.write_text(
        settings.replace("temperature = 0.0\n", f'temperature = 0.0\ncandidate = "{candidate}"\n')
    )
    simulated_ratings(tmp_path / "store.json", "v1", candidate, per_version=40)

    # 4. status, 5. promote
    status = draftdesk("models", "status")
    assert f"candidate {candidate}: 80.0% positive" in status and "verdict: wins" in status
    assert f"promoted {candidate} to current for ft (was v1" in draftdesk("models", "promote", "ft")
    assert (adapters / "ft" / "LATEST").read_text().strip() == candidate

    # The next start serves it: every draft now carries the promoted version.
    [spec], _ = load_model_settings(config)
    backend = build_backend([spec])
    try:
        results = backend.generate_many([{"ft": "Customer: Hello?\n\nAgent:"}] * 4)
        assert {r.model_version for [r] in results} == {candidate}  # the candidate line is now moot
    finally:
        backend.close()
