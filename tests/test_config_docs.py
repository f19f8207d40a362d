"""README's configuration table is generated from the sections' fields: it may not drift from the code."""

from dataclasses import fields

import pytest

from draftdesk import config_docs


def test_readme_configuration_table_matches_the_code():
    readme = config_docs.README.read_text(encoding="utf-8")
    assert config_docs.updated(readme) == readme, (
        "README.md's configuration table differs from the code: run `python -m draftdesk.config_docs`"
    )


def test_every_key_of_every_section_is_in_the_table_with_its_default():
    text = config_docs.generated()
    for header, cls in config_docs.BOT_SECTIONS + config_docs.FINETUNE_SECTIONS:
        assert f"| **`{header}`** |" in text
        for item in fields(cls):
            assert item.metadata["help"] in text
    assert "| `port` | `3000` | port to listen on (0: any free port) |" in text
    assert '| `mode` | "socket" if SLACK_APP_TOKEN is set, else "http" |' in text
    assert "| `model` | name | openai backend: the model id on the server |" in text  # the TOML key


def test_a_stale_table_is_rewritten_and_reported(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{config_docs.BEGIN}\n| old | table |\n{config_docs.END}\n\nafter\n")
    assert config_docs.main(["--check", "--readme", str(readme)]) == 1
    assert "run python -m draftdesk.config_docs" in capsys.readouterr().out
    assert config_docs.main(["--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "| old | table |" not in text and "| `port` | `3000` |" in text and text.endswith("\n\nafter\n")
    assert config_docs.main(["--check", "--readme", str(readme)]) == 0
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="markers"):
        config_docs.main(["--readme", str(readme)])
