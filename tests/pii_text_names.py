"""Names that appear only in a ticket's text: a hand-written labelled set, and how to score it.

``tests/test_finetune_pii.py`` gives the redactor every planted name as a known name (as Zendesk's
user records would), so it measures the exact-match path. Here no name is known: the redactor sees
only the text, as it does for a colleague mentioned in a message, a signature, a greeting to
someone who is not the requester. Names are marked ``[[like this]]``; every other word must
survive.

Two parts, written separately: ``DEV`` (looked at while working on the redactor) and ``HELD_OUT``
(only measured). Print the figures: ``python -m tests.pii_text_names``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from core.pii import PLACEHOLDER_PATTERN, Redactor

DEV: tuple[str, ...] = (
    "Hi [[Maria]],\n\nthe restore finished but two folders are missing. Can you check?\n\nThanks,\n[[Jonas]]",
    "Hello,\nmy name is [[Anna Kowalski]] and I manage the backups for our office.",
    "Hi, this is [[Pierre]] from accounting. The invoice for March was charged twice.",
    "Dear [[Mr. Okafor]],\nthe replacement drive ships tomorrow.\n\nBest regards,\n[[Lena]]",
    "Good morning [[Sofia]], the sync is stuck at 98% since Monday.",
    "Hallo [[Jürgen]],\ndie Sicherung läuft seit gestern nicht mehr.\n\nViele Grüße\n[[Katrin Vogel]]",
    "Bonjour [[Amélie]],\nle client ne démarre plus après la mise à jour.\n\nCordialement,\n[[Luc Martin]]",
    "Hola [[Carmen]], no puedo restaurar los archivos de ayer.\n\nSaludos,\n[[Diego]]",
    "Привіт, [[Олена]]! Резервна копія не працює з понеділка.",
    "I'm [[Tomás]], the new IT admin. Please add me to the account.",
    "Thanks for the quick reply!\n\nCheers,\n[[Sam]]",
    "Please forward this to [[Priya]] in your billing team, she knows the case.",
    "My colleague [[Henrik Larsen]] cannot log in since the password reset.",
    "[[Fatima]] asked me to follow up on ticket 4821: is there an update?",
    "Kind regards,\n[[Ingrid Solberg]]\nHead of IT",
    "Hi [[Kwame]], thanks! That fixed it.",
    "Sehr geehrte Frau [[Bauer]], wir haben Ihre Anfrage erhalten.",
    "Je m'appelle [[Chloé Lefèvre]] et je n'arrive pas à me connecter.",
    "Me llamo [[Javier]] y tengo un problema con la factura.",
    "We spoke with [[Giulia]] on the phone yesterday and she said a refund is on its way.",
    "Hi [[Aiko]],\nI attached the log file.\n[[Yusuf]]",
    "Thank you,\n[[Olga Petrenko]]",
    "Hey [[Mateo]]! The backup of the NAS failed again last night.",
    "Could you ask [[Lars]] to call me back? He had the details.",
    "Ciao [[Francesca]], il backup non parte più.",
)

HELD_OUT: tuple[str, ...] = (
    "Hi [[Daniel]],\n\nour restore is still running after 14 hours. Is that normal?\n\nBest,\n[[Marta]]",
    "Hello, I am [[Rahul Mehta]], owner of the account. Please cancel the Team plan.",
    "This is [[Ewa]] from the Warsaw office: we need two more seats.",
    "Dear [[Ms. Lindqvist]],\nyour refund was issued today.",
    "Regards,\n[[Thomas Berger]]\nIT Operations",
    "Guten Tag [[Herr Schulz]],\nvielen Dank für Ihre Geduld.",
    "Bonjour, je suis [[Camille]] et le téléchargement échoue toujours.",
    "Buenos días [[Lucía]], el problema está resuelto.",
    "Добрий день, [[Андрій]]! Дякуємо за звернення.",
    "Many thanks,\n[[Niamh O'Connor]]",
    "I forwarded your answer to [[Kenji]], he will test it tonight.",
    "[[Oksana]] from finance says the card was charged twice.",
    "Hi team, [[Bogdan]] here. The agent does not start on Windows 11.",
    "Best wishes,\n[[Zoë]]",
    "Hi [[Ahmed]],\ncould you reset the 2FA for [[Sara Nilsson]]? She lost her phone.",
    "Cheers [[Tom]], works now.",
    "Hey, it's [[Leilani]] again: the same error came back this morning.",
    "Thanks a lot, [[Emeka]]!",
    "Pozdrawiam,\n[[Paweł Zieliński]]",
    "Mit freundlichen Grüßen\n[[Sabine Krüger]]",
    "Please add [[Astrid Holm]] (our new CFO) as an admin.",
    "Hello [[Yara]], the invoice PDF is attached.",
    "Gracias,\n[[Isabel]]",
    "Sorry for the delay, [[Nikolai]] was out sick and only he has the admin login.",
    "Hi [[Grace]], will the new version support ARM?",
)

# Ordinary text in the same tickets' style that must come through with every word: role words in
# name positions, capitalised product and place words, months, words that are also names.
ORDINARY: tuple[str, ...] = (
    "Hi Support,\nthe restore from May failed.\n\nThanks,\nBilling",
    "Hello team, the Windows agent crashes on startup.",
    "Best regards,\nThe Acme Cloud Backup team",
    "Dear Sir or Madam, please cancel my subscription.",
    "Will the Linux client support Ubuntu 24.04? Mark this as urgent please.",
    "This is urgent: the backup of our Berlin office failed.",
    "Thanks,\nAccounting",
    "I am Happy with the fix, thank you!",
    "Hi there, the March invoice is wrong.",
    "Good morning, Monday's backup did not run.",
    "Cheers,\nIT Operations",
    "Hallo zusammen, die Sicherung läuft wieder.",
    "Bonjour à tous, le service fonctionne.",
    "My name is on the invoice but the address is wrong.",
    "Please restore the folder Projects from Friday's snapshot.",
    "Kind regards,\nHelpdesk",
)

_MARK = re.compile(r"\[\[(.+?)\]\]")
_TOKEN = re.compile(PLACEHOLDER_PATTERN.pattern + r"|[\w'’-]+|[^\w\s]")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class Document:
    """A ticket text with its names unmarked, and the token positions of each name mention."""

    text: str
    mentions: tuple[tuple[int, ...], ...]  # token indices of each mention

    @classmethod
    def parse(cls, marked: str) -> Document:
        text, mentions, tokens = "", [], 0
        position = 0
        for match in _MARK.finditer(marked):
            before = marked[position : match.start()]
            text += before
            tokens = len(_tokens(text))
            name_tokens = len(_tokens(match.group(1)))
            mentions.append(tuple(range(tokens, tokens + name_tokens)))
            text += match.group(1)
            position = match.end()
        text += marked[position:]
        return cls(text, tuple(mentions))


def redacted_positions(before: str, after: str) -> set[int]:
    """Token positions of ``before`` that ``after`` replaced by a placeholder."""
    source, target = _tokens(before), _tokens(after)
    gone: set[int] = set()
    matcher = difflib.SequenceMatcher(a=source, b=target, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op in ("replace", "delete") and any(PLACEHOLDER_PATTERN.fullmatch(t) for t in target[b0:b1]):
            gone.update(range(a0, a1))
    return gone


@dataclass
class Score:
    mentions: int = 0
    caught: int = 0  # every token of the mention replaced
    partial: int = 0  # some tokens replaced, some left (a leak all the same)
    ordinary_words: int = 0
    ordinary_redacted: int = 0
    misses: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.caught / self.mentions if self.mentions else 1.0

    @property
    def ordinary_kept(self) -> float:
        """Share of the words that are not names that came through (precision on ordinary words)."""
        return 1 - self.ordinary_redacted / self.ordinary_words if self.ordinary_words else 1.0


def score(marked_texts: Iterable[str], redactor: Redactor | None = None) -> Score:
    """Run ``redactor`` (default: no known names) over the texts and score names and other words."""
    redactor = redactor or Redactor()
    result = Score()
    for marked in marked_texts:
        doc = Document.parse(marked)
        output = redactor.redact(doc.text).text
        gone = redacted_positions(doc.text, output)
        tokens = _tokens(doc.text)
        named = {i for mention in doc.mentions for i in mention}
        for mention in doc.mentions:
            result.mentions += 1
            hit = [i in gone for i in mention]
            # A title ("Mr.", "Frau") marked with the name may stay: it is not personal data.
            hit_name = [h for i, h in zip(mention, hit, strict=True) if _is_name_word(tokens[i])]
            if all(hit_name):
                result.caught += 1
            else:
                result.partial += any(hit_name)
                result.misses.append(f"{' '.join(tokens[i] for i in mention)!r} -> {output!r}")
        for i, token in enumerate(tokens):
            if i in named or not re.search(r"\w", token):
                continue
            result.ordinary_words += 1
            if i in gone:
                result.ordinary_redacted += 1
                result.false_positives.append(f"{token!r} in {output!r}")
    return result


_TITLES = frozenset(["mr", "mrs", "ms", "miss", "dr", "herr", "frau", "m", "mme"])


def _is_name_word(token: str) -> bool:
    return bool(re.search(r"\w", token)) and token.lower() not in _TITLES


def report(parts: Sequence[tuple[str, Sequence[str]]]) -> str:
    lines = []
    for label, texts in parts:
        s = score(texts)
        lines.append(
            f"{label}: names caught {s.caught}/{s.mentions} ({s.recall:.0%}), partly {s.partial}; "
            f"other words kept {s.ordinary_words - s.ordinary_redacted}/{s.ordinary_words} "
            f"({s.ordinary_kept:.1%})"
        )
        lines.extend(f"  missed: {m}" for m in s.misses)
        lines.extend(f"  wrongly redacted: {f}" for f in s.false_positives)
    return "\n".join(lines)


if __name__ == "__main__":
    print(report([("dev", DEV), ("held-out", HELD_OUT), ("ordinary", ORDINARY)]))
