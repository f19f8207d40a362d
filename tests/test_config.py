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
