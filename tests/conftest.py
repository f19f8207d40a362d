import os

# Nothing in the tests may reach a model hub or the internet.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory) -> dict:
    """Tiny LLaMA- and GPT-J-shaped bases and LoRA adapters, built once per test session."""
    from models.tiny import build_demo_models

    return build_demo_models(tmp_path_factory.mktemp("models"))
