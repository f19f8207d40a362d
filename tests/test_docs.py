"""Every file a document names exists in the repository: docs do not point outside it or at old names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "tests" / "fixtures" / "README.md"]
TOP = "core|models|integrations|bot|finetune|draftdesk|benchmarks|tests|docs"
# A path inside the repository: a top-level folder, then folders and a file with an extension.
PATH = re.compile(rf"(?<![\w./-])((?:{TOP})/[\w./-]*\.(?:py|md|sh|toml|json|csv|txt))\b")
MARKDOWN_LINK = re.compile(r"\]\(((?!https?:|#|mailto:)[^)\s]+)\)")


def referenced_paths(text: str) -> set[str]:
    return set(PATH.findall(text)) | {link.split("#")[0] for link in MARKDOWN_LINK.findall(text)}


def test_the_reference_finder_sees_plain_backticked_and_linked_paths() -> None:
    text = "see `bot/drafting/worker.py`, docs/finetune.md and [the layers](docs/architecture.md#tests)"
    assert referenced_paths(text) == {"bot/drafting/worker.py", "docs/finetune.md", "docs/architecture.md"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_path_a_document_names_exists(doc: Path) -> None:
    missing = sorted(
        path for path in referenced_paths(doc.read_text(encoding="utf-8")) if not (REPO / path).exists()
    )
    assert not missing, f"{doc.relative_to(REPO)} names files that are not in the repository: {missing}"


# The background notes kept beside the repository, never in it; spelled in two parts so that this
# guard does not name the file itself.
OUTSIDE_DESIGN_NOTES = "DESIGN" + ".md"


def test_no_document_relies_on_a_design_file_outside_the_repository() -> None:
    sources = [*DOCS, *REPO.glob("[a-z]*/**/*.py")]
    offenders = [
        str(p.relative_to(REPO)) for p in sources if OUTSIDE_DESIGN_NOTES in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
