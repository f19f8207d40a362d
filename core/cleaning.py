"""Cut quoted earlier mails and signatures from a ticket comment. Pure: no I/O.

Comments that arrive by e-mail carry the whole thread below the new text ("On … wrote:", ``>``
lines, Outlook's "From: … Sent: …" block) and a signature. A model trained on them learns to
repeat old mails and someone's phone number, so both are cut; the text the person actually wrote
stays. Sign-off lines ("Best regards,") and what follows are cut only when the tail is short (a
name, a title, a company), and never when nothing would be left.
"""

from __future__ import annotations

import re

from core.html_text import html_to_text, looks_like_html

# "On Mon, 3 Mar 2025 at 10:00, Maria <m@x.com> wrote:" and its translations; may wrap onto two lines.
_QUOTE_HEADERS = [
    r"^on\b.{0,200}\bwrote:?\s*$",
    r"^am\b.{0,200}\bschrieb\b.{0,80}:\s*$",
    r"^le\b.{0,200}\ba [ée]crit\s*:\s*$",
    r"^el\b.{0,200}\bescribi[óo]\s*:\s*$",
    r"^il\b.{0,200}\bha scritto\s*:\s*$",
    r"^op\b.{0,200}\bschreef\b.{0,80}:\s*$",
    r"^.{0,200}\b(пише|написав|написала|написал|написала\(а\))\s*:\s*$",
    r"^-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original|"
    r"forwarded message|weitergeleitete nachricht)\s*-{2,}\s*$",
    r"^_{5,}\s*$",  # Outlook's separator line
    r"^##- .{0,80} -##\s*$",  # Zendesk's "Please type your reply above this line"
]
_QUOTE_HEADER = re.compile("|".join(f"(?:{p})" for p in _QUOTE_HEADERS), re.IGNORECASE)
_OUTLOOK_FROM = re.compile(r"^\*?(from|von|de|da|от|від)\s*:\*?\s+\S", re.IGNORECASE)
_OUTLOOK_FIELD = re.compile(
    r"^\*?(sent|date|to|subject|gesendet|datum|an|betreff|envoyé|objet|à|enviado|asunto|"
    r"відправлено|тема|кому)\s*:",
    re.IGNORECASE,
)
_SENT_FROM_DEVICE = re.compile(
    r"^(sent from my|get outlook for|von meinem .{1,40} gesendet|envoyé de mon|enviado desde mi|"
    r"inviato da|надіслано з)\b.*$",
    re.IGNORECASE,
)
_SIGN_OFF = re.compile(
    r"^(best|best regards|kind regards|warm regards|regards|many thanks|thanks|thank you|thanks again|"
    r"cheers|sincerely|yours sincerely|all the best|have a (great|nice) day|"
    r"mit freundlichen grüßen|mit freundlichen gruessen|viele grüße|beste grüße|liebe grüße|lg|mfg|danke|"
    r"danke schön|vielen dank|gruß|grüße|"
    r"cordialement|bien cordialement|merci|salutations|saludos|un saludo|atentamente|cordiali saluti|"
    r"distinti saluti|met vriendelijke groet|groeten|з повагою|дякую|с уважением|спасибо)[\s,.!]*$",
    re.IGNORECASE,
)
_SIGNATURE_DASHES = re.compile(r"^--\s?$")
_MAX_SIGNATURE_LINES = 6
_MAX_SIGNATURE_LINE_CHARS = 80


def cut_quoted(text: str) -> str:
    """``text`` without the quoted earlier mails below it and without ``>`` lines."""
    lines = text.split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if _QUOTE_HEADER.match(stripped) or _is_outlook_header(lines, index):
            break
        # Two-line "On …, Name <mail>\nwrote:" headers.
        joined = f"{stripped} {lines[index + 1].strip()}" if index + 1 < len(lines) else ""
        if re.match(r"^on\b", stripped, re.I) and joined and _QUOTE_HEADER.match(joined):
            break
        if stripped.startswith(">"):
            continue
        kept.append(line)
    return "\n".join(kept).strip()


def _is_outlook_header(lines: list[str], index: int) -> bool:
    """A "From: …" line followed within four lines by "Sent:/Date:/Subject:" fields."""
    if not _OUTLOOK_FROM.match(lines[index].strip()):
        return False
    following = [line.strip() for line in lines[index + 1 : index + 5]]
    return sum(bool(_OUTLOOK_FIELD.match(line)) for line in following) >= 2


def cut_signature(text: str) -> str:
    """``text`` without its signature: "-- " blocks, "Sent from my …" lines, short sign-off tails."""
    lines = [line for line in text.split("\n") if not _SENT_FROM_DEVICE.match(line.strip())]
    for index, line in enumerate(lines):
        if _SIGNATURE_DASHES.match(line.strip()) and index > 0:
            if not _asks(lines[index + 1 :]):
                lines = lines[:index]
            break
    content = [i for i, line in enumerate(lines) if line.strip()]
    for index in reversed(content):
        if not _SIGN_OFF.match(lines[index].strip()):
            continue
        tail = [line.strip() for line in lines[index + 1 :] if line.strip()]
        before = "\n".join(lines[:index]).strip()
        if (
            before
            and len(tail) <= _MAX_SIGNATURE_LINES
            and all(len(line) <= _MAX_SIGNATURE_LINE_CHARS for line in tail)
            and not _asks(tail)
        ):
            lines = lines[:index]
        break
    return "\n".join(lines).strip()


def clean_comment(body: str) -> str:
    """A comment's own words: HTML converted, quoted mails and the signature cut."""
    text = html_to_text(body) if looks_like_html(body) else body
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = cut_signature(cut_quoted(text))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _asks(lines: list[str]) -> bool:
    """A signature asks nothing: a tail with a question is the message ("Thank you\nI still can't
    log in, what now?"), and the drafts must answer it."""
    return any("?" in line for line in lines)
