"""The `[grounding]` section: Help Center articles as sources. The bot reads all of it; `finetune
prepare --grounding` reads the locales and the passage budget, so training prompts match drafting ones."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from core.config import out_of_range, setting


@dataclass(frozen=True)
class GroundingSettings:
    """`[grounding]`: Help Center articles as sources: links under each ticket, passages in prompts."""

    enabled: bool | None = setting(
        "links to the best articles under each ticket: unset = on when the Zendesk account's Help Center "
        "has articles in `locales` (read once at start), true = on, false = off. The models read passages "
        "by their own `grounding` switch either way",
        None,
    )
    locales: tuple[str, ...] = setting(
        'the Help Center locales to index, e.g. ["en-us", "de"], each read from its own listing and '
        "searched apart: a ticket's links and passages come from its language's articles, or the first "
        "locale's when its language has none",
        ("en-us",),
    )
    refresh_hours: float = setting("hours between two reads of every locale's articles", 6.0)
    articles_shown: int = setting("article links under each ticket's parent message", 3)
    prompt_tokens: int = setting("tokens of passages in the prompt of a model with grounding = true", 400)
    path: Path = setting(
        "the articles' file, relative to the config file", Path(".draftdesk/helpcenter.json")
    )

    def resolved(self, base_dir: Path) -> GroundingSettings:
        """``path`` absolute: a relative one is relative to ``base_dir``, the config file's folder."""
        return self if self.path.is_absolute() else replace(self, path=base_dir / self.path)

    def problems(self) -> list[str]:
        problems = out_of_range(
            self, {"refresh_hours": (0.05, 24 * 30), "articles_shown": (0, 10), "prompt_tokens": (0, 8192)}
        )
        if not self.locales or not all(self.locales):
            problems.append(f'locales: expected locales like ["en-us"], got {list(self.locales)!r}')
        return problems
