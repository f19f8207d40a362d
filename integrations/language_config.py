"""The `[languages]` section: how a ticket's language is decided. The bot decides it once per round;
`finetune export` and `prepare` decide it for each example the same way."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import out_of_range, setting
from core.languages import is_language_code


@dataclass(frozen=True)
class LanguageSettings:
    """`[languages]`: the ticket's language, from its text, the requester's locale or this default."""

    default: str = setting(
        'the language (ISO 639-1, e.g. "en") of a ticket whose text is too short or unclear and whose '
        "requester has no Zendesk locale; also the language of rounds recorded before languages were",
        "en",
    )
    detect: tuple[str, ...] = setting(
        'the languages the detector chooses among, e.g. ["en", "de"]: a team with two queues gets '
        "fewer mistakes on short texts; empty: every language it knows (97)",
        (),
    )
    min_letters: int = setting(
        "a message with fewer letters says too little: the ticket's earlier rounds decide, else the "
        "requester's Zendesk locale",
        20,
    )
    min_probability: float = setting(
        "the detector's probability (0-1) below which the earlier rounds or the requester's locale decide",
        0.8,
    )

    compare_min_tickets: int = setting(
        "rated tickets a language needs before `report` and the digest compare its models with the "
        "baseline within it (fewer: its ratings only)",
        10,
    )

    def problems(self) -> list[str]:
        problems = out_of_range(
            self,
            {"min_letters": (0, 10_000), "min_probability": (0, 1), "compare_min_tickets": (2, 1_000_000)},
        )
        if not is_language_code(self.default):
            problems.append(f'default: expected an ISO 639-1 code like "en", got {self.default!r}')
        wrong = [code for code in self.detect if not is_language_code(code)]
        if wrong:
            problems.append(f'detect: expected ISO 639-1 codes like ["en", "de"], got {wrong!r}')
        return problems
