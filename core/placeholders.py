"""The typed placeholders that stand for personal data (``<NAME>``, ``<EMAIL>``, …), and filling
them with what a ticket knows. Pure: no I/O.

`finetune` replaces personal data in the training text with these placeholders, so the models it
trains write them too; the bot fills the ones it can (the requester's name and e-mail, the
sending agent's name) before agents see or send a draft, and blocks sending while others remain.
One list for both sides, here in the kernel, since the bot must not import `finetune`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("URL_WITH_TOKEN", "EMAIL", "SECRET", "IBAN", "CARD", "IP", "PHONE", "ADDRESS", "NAME")
PLACEHOLDERS = {kind: f"<{kind}>" for kind in KINDS}
PLACEHOLDER_PATTERN = re.compile(r"<(?:" + "|".join(KINDS) + r")>")

# "Hi <NAME>," / "Dear <NAME>": the name a greeting addresses is the requester's.
_GREETING_NAME = re.compile(
    r"(?P<lead>\b(?i:hi|hello|hey|dear|good (?:morning|afternoon|evening)|hallo|liebe|lieber|"
    r"bonjour|salut|hola|ciao|привіт|вітаю|добрий день)\b,?[ \t]+(?:(?:Mr|Mrs|Ms|Mx|Dr)\.?[ \t]+)?)"
    r"<NAME>"
)
# "Best regards,\n<NAME>" or a last line that is only "<NAME>": the sign-off names the sender.
_SIGN_OFF_NAME = re.compile(
    r"(?P<lead>(?i:regards|thanks|thank you|cheers|best|sincerely|grüße|gruß|cordialement|saludos|"
    r"saluti|з повагою|дякую)[,!.]?[ \t]*\n[ \t]*)<NAME>(?=[ \t]*(?:\n|$))"
)
_LAST_LINE_NAME = re.compile(r"(?P<lead>\n[ \t]*)<NAME>(?=[ \t]*\s*$)")


@dataclass(frozen=True)
class KnownValues:
    """What a ticket (and the agent sending it) can put in place of placeholders; "" is unknown."""

    requester_name: str = ""
    requester_email: str = ""
    agent_name: str = ""

    @property
    def requester_first_name(self) -> str:
        parts = self.requester_name.split()
        return parts[0] if parts else ""


def fill_placeholders(text: str, known: KnownValues) -> str:
    """``text`` with the placeholders ``known`` can answer filled in; the others are left as they are.

    ``<NAME>`` after a greeting is the requester's first name, ``<NAME>`` on the sign-off line the
    agent's name; any other ``<NAME>`` could be anyone (a colleague, a third party) and stays.
    ``<EMAIL>`` is the requester's address.
    """
    if known.requester_first_name:
        first = known.requester_first_name
        text = _GREETING_NAME.sub(lambda m: m.group("lead") + first, text)
    if known.agent_name:
        agent = known.agent_name
        text = _SIGN_OFF_NAME.sub(lambda m: m.group("lead") + agent, text)
        text = _LAST_LINE_NAME.sub(lambda m: m.group("lead") + agent, text)
    if known.requester_email:
        text = text.replace(PLACEHOLDERS["EMAIL"], known.requester_email)
    return text


def unresolved_placeholders(text: str) -> list[str]:
    """The distinct placeholders left in ``text``, in order of first appearance."""
    found: list[str] = []
    for match in PLACEHOLDER_PATTERN.finditer(text):
        if match.group(0) not in found:
            found.append(match.group(0))
    return found
