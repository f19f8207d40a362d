import os
from pathlib import Path

# Nothing in the tests may reach a model hub or the internet.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from tests.postgres_server import postgres_server, postgres_url  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory) -> dict:
    """Tiny LLaMA- and GPT-J-shaped bases and LoRA adapters, built once per test session."""
    from models.tiny import build_demo_models

    return build_demo_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory) -> Path:
    """The bundled sample (English and German) exported from the loopback Zendesk, once per session;
    the tests read it and write their datasets elsewhere."""
    from finetune.config import ExportConfig
    from finetune.export import export_zendesk
    from finetune.sample import SAMPLE_EMAIL, SAMPLE_TOKEN, sample_zendesk
    from integrations.zendesk import ZendeskGateway

    out = tmp_path_factory.mktemp("export")
    with sample_zendesk() as zd:
        gateway = ZendeskGateway.from_settings(zd.url, SAMPLE_EMAIL, SAMPLE_TOKEN, timeout=5)
        export_zendesk(
            gateway, out, ExportConfig(locales=["en-us", "de"], requests_per_minute=0), progress=False
        )
    return out


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory) -> Path:
    """The bundled sample exported from the loopback Zendesk and prepared, once per test session."""
    from finetune.config import ExportConfig, PrepareConfig
    from finetune.export import export_zendesk
    from finetune.prepare import prepare_dataset
    from finetune.sample import SAMPLE_EMAIL, SAMPLE_PRODUCT, SAMPLE_TOKEN, sample_zendesk
    from integrations.zendesk import ZendeskGateway

    export_dir = tmp_path_factory.mktemp("export")
    with sample_zendesk() as zd:
        gateway = ZendeskGateway.from_settings(zd.url, SAMPLE_EMAIL, SAMPLE_TOKEN, timeout=5)
        export_zendesk(
            gateway, export_dir, ExportConfig(locales=["en-us"], requests_per_minute=0), progress=False
        )
    out = tmp_path_factory.mktemp("dataset")
    prepare_dataset(export_dir, out, PrepareConfig(eval_fraction=0.15), SAMPLE_PRODUCT, progress=False)
    return out
