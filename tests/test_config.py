from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings, parse_settings, resolve_config_path

REPO = Path(__file__).resolve().parents[1]
ALL_SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-test",
    "SLACK_SIGNING_SECRET": "signing",
    "ZENDESK_EMAIL": "agent@example.com",
    "ZENDESK_API_TOKEN": "token",
    "ZENDESK_WEBHOOK_SECRET": "webhook",
}


def minimal(**overrides):
    raw = {
        "slack": {"channel": "C1"},
        "zendesk": {"subdomain": "acme"},
        "models": [{"name": "m", "base_model": "/models/m"}],
    }
    raw.update(overrides)
    return raw


def test_shipped_config_is_the_study_setup():
    settings = load_settings(REPO / "config.toml", env=ALL_SECRETS)
    names = [m.name for m in settings.models]
    assert names == ["llama2-7b-ft", "gptj-6b-ft", "llama2-7b"]
    bases = {m.base_model for m in settings.models}
    assert bases == {"meta-llama/Llama-2-7b-hf", "EleutherAI/gpt-j-6b"}
    assert all(m.quantization == "nf4" for m in settings.models)
    assert settings.models[2].adapter is None
    assert settings.models[0].adapter == str((REPO / "adapters/llama2-7b-ft").resolve())
    assert settings.zendesk.url == "https://yourcompany.zendesk.com"
    assert settings.slack.mode == "http"  # no SLACK_APP_TOKEN


def test_socket_mode_is_default_with_app_token():
    settings = parse_settings(minimal(), {**ALL_SECRETS, "SLACK_APP_TOKEN": "xapp-1"})
    assert settings.slack.mode == "socket"


def test_every_problem_is_reported_at_once():
    raw = minimal(
        slack={"channel": "", "mode": "carrier-pigeon"},
        server={"port": 99999},
        digest={"timezone": "Mars/Olympus", "hour": "nine"},
        intake={"mode": "webhook", "poll_since": "yesterday"},
        models=[{"name": "a", "base_model": "x", "quantization": "int3", "temperature": -1, "colour": "red"}],
    )
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, {})
    text = str(info.value)
    for expected in [
        "slack.mode",
        "slack.channel",
        "server.port",
        "digest.timezone",
        "digest.hour",
        "intake.poll_since",
        "models[0].quantization",
        "models[0].temperature",
        "models[0].colour: unknown setting",
        "SLACK_BOT_TOKEN",
        "ZENDESK_EMAIL / ZENDESK_API_TOKEN",
        "ZENDESK_WEBHOOK_SECRET",
    ]:
        assert expected in text, expected
    assert len(info.value.problems) >= 12


def test_secret_requirements_follow_the_modes():
    env = {k: v for k, v in ALL_SECRETS.items() if k != "ZENDESK_WEBHOOK_SECRET"}
    parse_settings(minimal(intake={"mode": "poll"}), env)  # polling needs no webhook secret
    with pytest.raises(ConfigError, match="ZENDESK_WEBHOOK_SECRET"):
        parse_settings(minimal(intake={"mode": "both"}), env)
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        parse_settings(minimal(slack={"channel": "C1", "mode": "socket"}), ALL_SECRETS)


def test_duplicate_model_names_and_missing_models():
    with pytest.raises(ConfigError, match="duplicate model name"):
        parse_settings(
            minimal(models=[{"name": "a", "base_model": "x"}, {"name": "a", "base_model": "y"}]), ALL_SECRETS
        )
    with pytest.raises(ConfigError, match=r"\[\[models\]\]: missing"):
        parse_settings(minimal(models=[]), ALL_SECRETS)


def test_secrets_never_show_in_repr():
    settings = parse_settings(minimal(), ALL_SECRETS)
    assert "xoxb-test" not in repr(settings)
    assert "xoxb-test" not in repr(settings.secrets)


def test_config_path_resolution(tmp_path):
    assert resolve_config_path("a.toml", {"DRAFTDESK_CONFIG": "b.toml"}) == Path("a.toml")
    assert resolve_config_path(None, {"DRAFTDESK_CONFIG": "b.toml"}) == Path("b.toml")
    assert resolve_config_path(None, {}) == Path("config.toml")
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[slack\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})


def test_engine_section_defaults_and_values():
    from models.spec import EngineSettings

    assert parse_settings(minimal(), ALL_SECRETS).engine == EngineSettings()
    engine = {"max_batch_size": 12, "max_batch_tokens": 8192, "max_wait_seconds": 0.2, "device": "cuda:1"}
    settings = parse_settings(minimal(engine=engine), ALL_SECRETS)
    assert settings.engine == EngineSettings(12, 8192, 0.2, "cuda:1")


def test_engine_problems_are_reported_with_the_others():
    raw = minimal(
        engine={"max_batch_size": 0, "max_batch_tokens": "lots", "device": "tpu", "batch": 3},
        slack={"channel": ""},
    )
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, ALL_SECRETS)
    text = str(info.value)
    for key in ("max_batch_size", "max_batch_tokens", "device", "batch"):
        assert f"engine.{key}" in text
    assert "slack.channel" in text


def test_openai_backend_models():
    models = [
        {"name": "llama2-7b-ft", "backend": "openai", "base_url": "http://gpu:8000/v1", "model": "llama-ft"},
        {
            "name": "gptj-6b-ft",
            "backend": "openai",
            "base_url": "https://models.example.com/v1",
            "api_key_env": "GPU_BOX_KEY",
            "timeout_seconds": 30,
            "max_retries": 5,
            "tokenizer": "./tokenizers/gptj",
        },
        {"name": "llama2-7b", "base_model": "/models/llama"},
    ]
    settings = parse_settings(minimal(models=models), ALL_SECRETS, base_dir=Path("/etc/draftdesk"))
    ft, gptj, untuned = settings.models
    assert (ft.backend, ft.base_url, ft.remote_model, ft.served_name) == (
        "openai",
        "http://gpu:8000/v1",
        "llama-ft",
        "llama-ft",
    )
    assert (ft.api_key_env, ft.timeout_seconds, ft.max_retries, ft.base_model) == (None, 120, 3, "")
    assert gptj.served_name == "gptj-6b-ft"  # no `model`: the draftdesk name
    assert (gptj.api_key_env, gptj.timeout_seconds, gptj.max_retries) == ("GPU_BOX_KEY", 30.0, 5)
    assert gptj.tokenizer == "./tokenizers/gptj"
    assert untuned.backend == "local"


def test_openai_backend_problems_are_aggregated():
    models = [
        {"name": "a", "backend": "openai"},  # no base_url
        {"name": "b", "backend": "carrier-pigeon", "base_model": "x"},
        {"name": "c", "base_model": "x", "base_url": "http://gpu:8000/v1"},  # remote key on a local model
        {"name": "d", "backend": "openai", "base_url": "http://gpu/v1", "api_key_env": "sk-live-1234 5678"},
        {"name": "e", "backend": "openai", "base_url": "http://gpu/v1", "timeout_seconds": 0},
    ]
    with pytest.raises(ConfigError) as info:
        parse_settings(minimal(models=models), ALL_SECRETS)
    problems = info.value.problems
    text = "\n".join(problems)
    assert "models[0].base_url" in text
    assert "models[1].backend" in text
    assert "models[2].base_url: only used with backend" in text
    assert "models[3].api_key_env" in text and "sk-live" not in text  # never echo what may be a key
    assert "models[4].timeout_seconds" in text
    assert "models[0].base_model" not in text  # remote models need no base_model


def test_model_settings_alone_for_serve_models(tmp_path):
    from bot.config import load_model_settings

    config = tmp_path / "gpu.toml"
    config.write_text(
        '[engine]\nmax_batch_size = 48\n\n[[models]]\nname = "llama2-7b-ft"\n'
        'base_model = "./llama"\nadapter = "./adapters/ft"\n'
    )
    models, engine = load_model_settings(config)  # no [slack] or [zendesk] needed on a GPU box
    assert [m.name for m in models] == ["llama2-7b-ft"]
    assert models[0].base_model == str((tmp_path / "llama").resolve())
    assert engine.max_batch_size == 48
    config.write_text('[engine]\nmax_wait_seconds = -1\n[[models]]\nname = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_model_settings(config)
    keys = {problem.split(":")[0] for problem in info.value.problems}
    assert keys == {"engine.max_wait_seconds", "models[0].base_model"}


def test_defaults_are_the_dataclass_defaults():
    from bot.config import DigestSettings, IntakeSettings, ServerSettings, WorkerSettings

    settings = parse_settings(minimal(), ALL_SECRETS)
    assert settings.server == ServerSettings()
    assert (settings.server.port, settings.worker.max_attempts) == (3000, 5)
    assert settings.worker == WorkerSettings()
    assert settings.intake == IntakeSettings()
    assert settings.digest == DigestSettings(channel="C1")  # the drafts channel
    assert settings.slack.api_url == "https://slack.com/api/"
    assert settings.storage_path == Path(".draftdesk/draftdesk.json")


def test_special_values_keep_their_meaning(tmp_path):
    from datetime import UTC, date, datetime

    raw = minimal(
        slack={"channel": "C1", "api_url": "http://127.0.0.1:9/api"},
        zendesk={"url": "https://support.example.com/"},
        intake={"mode": "poll", "poll_since": date(2024, 1, 31)},
        digest={"day_of_week": "Friday", "users": ["U1"], "channel": ""},
        storage={"path": "data/store.json"},
    )
    settings = parse_settings(raw, ALL_SECRETS, base_dir=tmp_path)
    assert settings.slack.api_url == "http://127.0.0.1:9/api/"
    assert settings.zendesk.url == "https://support.example.com"
    assert settings.intake.poll_since == datetime(2024, 1, 31, tzinfo=UTC)
    assert (settings.digest.day_of_week, settings.digest.users) == ("fri", ("U1",))
    assert settings.digest.channel is None  # users only: no channel post
    assert settings.storage_path == tmp_path / "data/store.json"
    iso = parse_settings(minimal(intake={"poll_since": "2024-02-01T10:00:00+02:00"}), ALL_SECRETS)
    assert iso.intake.poll_since == datetime(2024, 2, 1, 8, tzinfo=UTC)
    absolute = parse_settings(
        minimal(storage={"path": "/var/draftdesk.json"}), ALL_SECRETS, base_dir=tmp_path
    )
    assert absolute.storage_path == Path("/var/draftdesk.json")
    assert parse_settings(minimal(), ALL_SECRETS).zendesk.url == "https://acme.zendesk.com"


def test_finetune_tables_are_accepted_but_not_the_bots():
    raw = minimal(
        finetune={"output_dir": "./adapters", "train": {"lora_r": 8}},
        models=[{"name": "m", "base_model": "/models/m", "finetune": {"lora_r": 16}}],
    )
    settings = parse_settings(raw, ALL_SECRETS)
    assert [m.name for m in settings.models] == ["m"]
    assert not hasattr(settings, "finetune") and not hasattr(settings, "model_finetune")
    with pytest.raises(ConfigError, match=r"\[finetuning\]: unknown section"):
        parse_settings(minimal(finetuning={}), ALL_SECRETS)


def test_model_bounds_are_the_same_in_the_file_and_in_code():
    from models.spec import EngineSettings, ModelSpec

    with pytest.raises(ConfigError) as info:
        parse_settings(minimal(models=[{"name": "m", "base_model": "b", "top_p": 0}]), ALL_SECRETS)
    assert info.value.problems == ["models[0].top_p: must be in (0, 1], got 0.0"]
    with pytest.raises(ValueError, match=r"top_p: must be in \(0, 1\], got 0"):
        ModelSpec("m", "b", top_p=0)
    with pytest.raises(ValueError, match="max_new_tokens: must be between 1 and 8192"):
        ModelSpec("m", "b", max_new_tokens=10_000)
    with pytest.raises(ConfigError, match=r"models\[0\]\.max_new_tokens: must be between 1 and 8192"):
        parse_settings(
            minimal(models=[{"name": "m", "base_model": "b", "max_new_tokens": 10_000}]), ALL_SECRETS
        )
    with pytest.raises(ValueError, match="max_batch_tokens: must be between 64"):
        EngineSettings(max_batch_tokens=10)
    with pytest.raises(ConfigError, match=r"engine\.max_batch_tokens: must be between 64"):
        parse_settings(minimal(engine={"max_batch_tokens": 10}), ALL_SECRETS)


def test_report_and_votes_export_need_only_storage_and_models(tmp_path, capsys):
    from datetime import UTC, datetime

    from bot.store.partitioned import PartitionedStore
    from core.domain import Vote
    from draftdesk.cli import main

    store = PartitionedStore(tmp_path / "votes.json")
    store.record_vote(Vote(1, "t1r1A", "llama", "U1", 5, "button", datetime(2026, 3, 2, tzinfo=UTC)))
    store.close()
    config = tmp_path / "config.toml"
    config.write_text(
        '[storage]\npath = "votes.json"\n\n[[models]]\nname = "llama"\nbase_model = "/m/llama"\n'
    )
    assert main(["votes", "export", "--config", str(config), "--format", "jsonl"]) == 0
    assert '"rater": "U1"' in capsys.readouterr().out
    assert main(["report", "--config", str(config), "--format", "json"]) == 0
    assert '"model": "llama"' in capsys.readouterr().out
    # `run` needs the rest: the same file is not enough for it.
    assert main(["run", "--config", str(config)]) == 2
    assert "slack.channel: missing" in capsys.readouterr().err


def test_report_config_problems_are_still_reported(tmp_path):
    from bot.config import load_store_settings

    config = tmp_path / "config.toml"
    config.write_text('[storage]\npath = 3\ncolour = "red"\n')
    with pytest.raises(ConfigError) as info:
        load_store_settings(config)
    assert info.value.problems == [
        "storage.path: expected a path, got 3",
        "storage.colour: unknown setting (known: lease_seconds, path, pool_size, url)",
        "[[models]]: missing: add at least one [[models]] table with name and base_model",
    ]


def test_the_digest_baseline_must_name_a_model():
    assert parse_settings(minimal(digest={"baseline": "m"}), ALL_SECRETS).digest.baseline == "m"
    with pytest.raises(
        ConfigError, match=r"digest.baseline: no \[\[models\]\] entry named 'nope' \(models: m\)"
    ):
        parse_settings(minimal(digest={"baseline": "nope"}), ALL_SECRETS)


@pytest.mark.parametrize(
    ("zendesk", "expected"),
    [
        ({"subdomain": "https://acme.zendesk.com"}, 'zendesk.subdomain: write only the name, e.g. "acme"'),
        ({"subdomain": "acme.zendesk.com"}, "zendesk.subdomain: write only the name"),
        (
            {"url": "https://acme.zendesk.com/agent/tickets"},
            "zendesk.url: the Zendesk url must be just the site",
        ),
        ({"url": "acme.zendesk.com"}, "zendesk.url: the Zendesk url must look like https://acme.zendesk.com"),
    ],
)
def test_a_zendesk_address_the_client_cannot_use_is_a_config_problem(zendesk, expected):
    with pytest.raises(ConfigError) as info:
        parse_settings(minimal(zendesk=zendesk), ALL_SECRETS)
    assert expected in str(info.value)


def test_a_config_file_that_is_not_utf8_is_one_problem_with_its_fix(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(b'[slack]\nchannel = "C1"\n# caf\xe9\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, need_secrets=False)
    assert info.value.problems == [f"{path}: not UTF-8 (byte 29): save it as UTF-8, as TOML requires"]


def test_a_database_url_comes_from_the_config_or_the_environment():
    assert parse_settings(minimal(), ALL_SECRETS).database is None  # the TinyDB files, as before
    configured = parse_settings(minimal(storage={"url": "postgresql://bot@db:5432/draftdesk"}), ALL_SECRETS)
    assert configured.database.url == "postgresql://bot@db:5432/draftdesk"
    assert (configured.database.pool_size, configured.database.lease_seconds) == (8, 60)
    env = {**ALL_SECRETS, "DRAFTDESK_DATABASE_URL": "postgresql://bot:s3cret@db/draftdesk"}
    overridden = parse_settings(minimal(storage={"url": "postgresql://bot@db:5432/draftdesk"}), env)
    assert overridden.database.url == "postgresql://bot:s3cret@db/draftdesk"
    assert "s3cret" not in repr(overridden)


def test_a_bad_database_url_is_one_line_without_its_password():
    with pytest.raises(ConfigError) as info:
        parse_settings(minimal(storage={"url": "mysql://bot:s3cret@db/draftdesk"}), ALL_SECRETS)
    assert info.value.problems == [
        "storage.url: must start with postgresql:// (got 'mysql://bot:***@db/draftdesk')"
    ]
    env = {**ALL_SECRETS, "DRAFTDESK_DATABASE_URL": "postgresql://bot:s3cret@db"}
    with pytest.raises(ConfigError) as info:
        parse_settings(minimal(), env)
    assert info.value.problems == [
        "DRAFTDESK_DATABASE_URL: names no database: add /DBNAME after the host "
        "(got 'postgresql://bot:***@db')"
    ]
    with pytest.raises(ConfigError) as info:
        parse_settings(minimal(storage={"lease_seconds": 1}), ALL_SECRETS)
    assert info.value.problems == ["storage.lease_seconds: must be between 5 and 3600, got 1"]


def test_database_url_passwords_are_masked_wherever_they_stand():
    from core.db_url import masked

    assert masked("postgresql://bot:p%40ss:w0rd@db:5432/dd") == "postgresql://bot:***@db:5432/dd"
    assert masked("postgresql://db/dd?user=bot&password=hunter2&sslmode=require") == (
        "postgresql://db/dd?user=bot&password=***&sslmode=require"
    )
    assert masked("postgresql://bot@db/dd") == "postgresql://bot@db/dd"
