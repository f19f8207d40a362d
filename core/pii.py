"""Personal data to typed placeholders (``<NAME>``, ``<EMAIL>``, …). Pure: no I/O.

Two sources: the names of requesters and agents known from Zendesk's user records (exact, so
"Maria Schmidt", "Maria" and "Schmidt" all go), and patterns for the rest. Patterns are checked
where a regular expression alone would guess: card numbers by the Luhn checksum, IBANs by
mod 97, IP addresses by :mod:`ipaddress`; a URL is replaced only when it carries a token or
secret (a password-reset link), so ordinary help-centre links survive. Dates, times, versions,
prices and order numbers are left alone.

Order matters: URLs and e-mails first (they contain names and digits), then secrets, IBANs and
card numbers (long digit runs that would otherwise read as phone numbers), IPs, phones,
addresses, names.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

# The placeholder names are shared with the bot, which fills them in drafts (core/placeholders.py).
from core.placeholders import KINDS, PLACEHOLDER_PATTERN, PLACEHOLDERS

__all__ = [
    "KINDS",
    "NO_PUBLIC_CONTACTS",
    "PLACEHOLDERS",
    "PLACEHOLDER_PATTERN",
    "PublicContacts",
    "Redactor",
    "email_addresses",
    "luhn_valid",
]

# -- character classes ------------------------------------------------------------------------

_UPPER = "A-ZÀ-ÖØ-ÞĀĂĄĆČĎĐĒĖĘĚĞĢĪĮİĶĹĻĽŁŃŅŇŌŐŒŔŘŚŞŠŢŤŪŮŰŲŸŹŻŽА-ЯЁЄІЇҐ"
_WORD = rf"[{_UPPER}][\w'’]*(?:-[\w'’]+)*"  # a capitalised word, "O'Brien", "Jean-Luc"
_CITY = rf"[{_UPPER}][^\W\d_]*(?:['’-][^\W\d_]+)*(?!\w)"  # a capitalised word without digits

# -- URLs -------------------------------------------------------------------------------------

_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'`]+", re.IGNORECASE)
_SECRET_KEYS = re.compile(
    r"(^|[_\-.])(token|access_token|refresh_token|id_token|auth|authorization|key|api_?key|apikey|secret|"
    r"client_secret|sig|signature|password|passwd|pwd|pass|code|otp|session|sessionid|sid|jwt|"
    r"reset|invite|hash|credential|x-amz-signature|x-amz-credential|x-amz-security-token|ticket)$",
    re.IGNORECASE,
)
_RANDOM_LOOKING = re.compile(r"^[A-Za-z0-9_\-=.~+/]{16,}$")


def _looks_random(value: str) -> bool:
    """A token-like string: long, with digits and letters (or long hex), not a readable slug."""
    value = unquote(value)
    if not _RANDOM_LOOKING.match(value):
        return False
    if re.fullmatch(r"[0-9a-fA-F\-]{24,}", value):
        return True
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    # Slugs ("360001234-Restoring-files") are words and numbers between dashes: not random.
    words = re.split(r"[-_.~+/]", value)
    readable = all(w.isalpha() or w.isdigit() for w in words if w)
    return has_digit and has_alpha and not readable


def _url_has_secret(url: str) -> bool:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.username or parts.password:
        return True
    for key, value in parse_qsl(parts.query, keep_blank_values=True) + parse_qsl(parts.fragment):
        if value and (_SECRET_KEYS.search(key) or _looks_random(value)):
            return True
    return any(_looks_random(segment) for segment in parts.path.split("/") if segment)


# -- e-mail, secrets, IBAN, cards -------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w@])")
_SECRET_FORMATS = re.compile(
    r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}\b"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}\b"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}\b"
    r"|\bAIza[0-9A-Za-z_\-]{30,}\b"
    r"|\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}"
)
_SECRET_AFTER_KEYWORD = re.compile(
    r"(?P<key>\b(?:password|passwort|kennwort|mot de passe|contraseña|пароль|api[ _-]?key|"
    r"access token|token|secret|licen[cs]e key|recovery key|encryption key|schlüssel|ключ)"
    r"\s*(?:is|was|:|=|ist|war|est|es|є|—|-)\s*)(?P<value>[^\s\"'<>]{6,})",
    re.IGNORECASE,
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<![\d\w.])(?:\d[ -]?){12,18}\d(?![\d\w])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def _card(match: re.Match[str]) -> bool:
    """13-19 digits, grouped like a card (or not at all), starting like a card network, Luhn-valid."""
    text = match.group()
    digits = re.sub(r"\D", "", text)
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456":
        return False
    groups = [len(g) for g in re.split(r"[ -]", text)]
    card_grouping = len(groups) == 1 or groups[:3] in ([4, 4, 4], [4, 6, 5], [4, 6, 4])
    return card_grouping and (luhn_valid(digits) or groups[:4] == [4, 4, 4, 4])


# -- IP addresses -----------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?:/\d{1,2})?(?![\w.]*\d)")
_IPV6 = re.compile(
    r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{0,4}|(?:\d{1,3}\.){3}\d{1,3})(?![\w:])"
)


def _ip(match: re.Match[str]) -> bool:
    try:
        ipaddress.ip_interface(match.group())
    except ValueError:
        return False
    return ":" in match.group() or match.group().count(".") == 3


# -- phones -----------------------------------------------------------------------------------

_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d ()./\-\u00a0]{5,}\d(?![\w])")
_DATE_LIKE = re.compile(r"(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./-]\d{1,2}[./-](?:\d{4}|\d{2}))(?:\s+\d{1,2})?")
_US_GROUPING = re.compile(r"\(?\d{3}\)?[ .\-]\d{3}[ .\-]\d{4}")
_NINE_GROUPING = re.compile(
    r"\d{3}[ .\-]\d{3}[ .\-]\d{3}|\d{3}[ .\-]\d{2}[ .\-]\d{2}[ .\-]\d{2}"
)  # ES, PL mobiles


def _phone(match: re.Match[str]) -> bool:
    text = match.group()
    if _DATE_LIKE.fullmatch(text):
        return False
    digits = re.sub(r"\D", "", text)
    if text.startswith(("+", "00")):
        return 8 <= len(digits) <= 15
    if "(" in text or digits.startswith("0"):
        return 9 <= len(digits) <= 13 and not re.fullmatch(r"\d+\.\d+", text)
    if len(digits) == 10 and _US_GROUPING.fullmatch(text):
        return True
    return len(digits) == 9 and bool(_NINE_GROUPING.fullmatch(text))


# -- street addresses -------------------------------------------------------------------------

_NUM = r"\d{1,5}[A-Za-z]?(?:[-/]\d{1,4}[A-Za-z]?)?"
_EN_TYPES = (
    r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Parkway|Pkwy|"
    r"Square|Sq|Terrace|Close|Crescent|Highway|Hwy|Row|Mews|Gardens|Grove|Hill|Circle|Cir|Trail"
)
_UNIT = (
    r"(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Wohnung|Whg|App|Apto|Piso|кв|m)"
    r"\.?\s*#?\s*\w{1,5})?"
)
_DE_SUFFIX = (
    r"straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|chaussee|steig|pfad|markt|"
    r"gracht|laan|straat|plein|kade|dijk|singel|gatan|vägen|vej|gade"
)
_DE_WORDS = r"Straße|Strasse|Str\.|Weg|Gasse|Platz|Allee|Ring|Damm|Ufer|Chaussee|Markt"
_FR_TYPES = r"rue|avenue|av\.|boulevard|bd|place|chemin|allée|impasse|quai|route|cours|passage|square"
_FR_LINK = r"(?:(?:de|du|des|la|le|les|l'|d'|l’|d’)\s*)"
_ES_TYPES = (
    r"Calle|C/|Avenida|Avda\.|Av\.|Plaza|Pza\.|Paseo|Carrer|Camino|Ronda|Via|Viale|Piazza|Corso|Largo|"
    r"Vicolo|Rua|Travessa|Praça|Alameda"
)
_ES_LINK = r"(?:(?:de|del|la|las|los|el|dei|della|delle|degli|di|do|da|dos|das|d')\s+)"
_SLAVIC_TYPES = (
    r"вул\.|вулиця|ул\.|улица|просп\.|проспект|пров\.|провулок|переулок|бульв\.|бульвар|пл\.|площа|площадь|"
    r"ul\.|ulica|al\.|aleja|os\.|osiedle"
)
_POSTCODE_CITY = (
    # 10115 Berlin, 00-950 Warszawa, 1015 CJ Amsterdam
    rf"(?:,?\s+(?:[A-Z]{{1,2}}-)?(?:\d{{2}}-\d{{3}}|\d{{4}}-\d{{3}}|\d{{4,5}})(?:\s+[A-Z]{{2}})?"
    rf"\s+{_CITY}(?:[ -]{_CITY})?)"
    # , Springfield, IL 62704
    rf"|(?:,\s*{_CITY}(?:[ -]{_CITY}){{0,2}}(?:,?\s+[A-Z]{{2}}(?!\w))?(?:,?\s+\d{{5}}(?:-\d{{4}})?)?"
    rf"(?:,?\s+[A-Z]{{1,2}}\d[A-Z\d]?\s?\d[A-Z]{{2}})?)"  # , London SW1A 1AA
)
_TAIL = rf"{_UNIT}(?:{_POSTCODE_CITY}){{0,2}}"
_ADDRESS = re.compile(
    "|".join(
        [
            # 221B Baker Street, 1600 Amphitheatre Parkway
            rf"\b{_NUM}\s+(?:(?:{_WORD}|of|the|de|la)\s+){{0,4}}(?:{_EN_TYPES})\b\.?{_TAIL}",
            # Hauptstraße 5, Unter den Linden? no; Berliner Straße 12a, Keizersgracht 123
            rf"\b(?:{_WORD}[ -])?[{_UPPER}]\w*?(?i:{_DE_SUFFIX})\s+{_NUM}{_TAIL}",
            rf"\b{_WORD}\s+(?:{_DE_WORDS})\s+{_NUM}{_TAIL}",
            # 12 rue de la Paix, 5 bis avenue Victor Hugo
            rf"\b{_NUM}(?:\s?(?:bis|ter))?,?\s+(?i:{_FR_TYPES})\s+{_FR_LINK}*{_WORD}(?:[\s-]+{_FR_LINK}*{_WORD}){{0,3}}{_TAIL}",
            # Calle Mayor 10, Via Roma 5, Rua Augusta, 274
            rf"(?<!\w)(?:{_ES_TYPES})\s+{_ES_LINK}*{_WORD}(?:\s+{_ES_LINK}*{_WORD}){{0,3}},?\s+(?:n[º°o.]\s*)?{_NUM}{_TAIL}",
            # вул. Хрещатик, 22, кв. 5; ul. Marszałkowska 10
            rf"(?<!\w)(?i:{_SLAVIC_TYPES})\s*{_WORD}(?:[\s-]+{_WORD}){{0,3}},?\s*(?:буд\.\s*|д\.\s*)?{_NUM}{_TAIL}",
        ]
    )
)


# -- names ------------------------------------------------------------------------------------

# Words for a team or a role ("Hi Support", "Regards,\nBilling"): never taken for a name.
_ROLE_WORDS = frozenset(
    [
        "team",
        "support",
        "help",
        "admin",
        "agent",
        "customer",
        "user",
        "service",
        "sales",
        "billing",
        "info",
        "backup",
        "cloud",
    ]
)

# Tokens that are names AND ordinary words: replaced only in a name context (greeting, title,
# "my name is"), never on their own, so "Will you…", "in May" and "Mark as read" survive.
AMBIGUOUS_NAME_TOKENS = _ROLE_WORDS | frozenset(
    [
        "will",
        "may",
        "june",
        "april",
        "august",
        "mark",
        "bill",
        "grace",
        "rose",
        "faith",
        "hope",
        "joy",
        "art",
        "long",
        "young",
        "black",
        "white",
        "brown",
        "green",
        "king",
        "price",
        "cash",
        "case",
        "page",
        "lane",
        "hill",
        "street",
        "field",
        "ford",
        "stone",
        "sun",
        "day",
        "summer",
        "winter",
        "frost",
        "love",
        "wolf",
        "fox",
        "bush",
        "sharp",
        "little",
        "strong",
        "early",
        "best",
        "rich",
        "bell",
        "banks",
        "der",
        "die",
        "das",
        "van",
        "von",
        "de",
        "la",
        "le",
        "du",
        "del",
        "da",
        "di",
        "dos",
        "mac",
        "mc",
        "st",
        "jr",
        "sr",
    ]
)
_GREETING = re.compile(
    rf"(?P<lead>\b(?i:hi|hello|hey|dear|good (?:morning|afternoon|evening)|hallo|liebe|lieber|"
    rf"sehr geehrte(?:r|s)?(?: (?:frau|herr))?|bonjour|salut|hola|estimad[oa]|ciao|gentile|"
    rf"привіт|вітаю|добрий день|шановн(?:ий|а|і)|здравствуйте)\b,?[ \t]+)"
    rf"(?P<name>{_WORD}(?:[ \t]+{_WORD})?)(?=[ \t]*(?:[,!:\n]|$))",
)
_TITLE = re.compile(
    rf"(?P<lead>\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Herr|Frau|M|Mme|Mlle|Sr|Sra|Sig|Sig\.ra|пан|пані)\.?\s+)"
    rf"(?P<name>{_WORD}(?:\s+{_WORD})?)"
)
_SELF_INTRO = re.compile(
    rf"(?P<lead>\b(?i:my name is|mein name ist|ich heiße|je m'appelle|me llamo|mi chiamo|мене звати)\s+)"
    rf"(?P<name>{_WORD}(?:[ \t]+{_WORD})?)"
    # weaker leads ("this is", "I am") only when the name ends the clause: "This is Maria from…"
    rf"|(?P<lead2>\b(?i:this is|i am|i'm|ich bin|je suis|soy|sono)[ \t]+)"
    rf"(?P<name2>{_WORD}(?:[ \t]+{_WORD})?)(?=[ \t]*(?:[,.!:\n]|$|(?i:from|von|de|here|hier)\b))",
)
_SIGN_OFF_NAME = re.compile(
    rf"(?P<lead>(?i:regards|thanks|thank you|cheers|best|grüße|grüßen|gruß|cordialement|saludos|"
    rf"saluti|з повагою|дякую),?[ \t]*\n[ \t]*)(?P<name>{_WORD}(?:[ \t]+{_WORD})?)[ \t]*(?=\n|$)",
)
_NOT_A_NAME = _ROLE_WORDS | frozenset(
    [
        "there",
        "all",
        "everyone",
        "everybody",
        "folks",
        "guys",
        "again",
        "sir",
        "madam",
        "there,",
        "friend",
        "friends",
        "colleagues",
        "zusammen",
        "tous",
        "todos",
        "tutti",
        "всім",
        "all,",
        "i",
        "a",
        "the",
        "we",
        "it",
        "this",
        "that",
        "thanks",
        "sorry",
        "please",
        "ok",
        "not",
        "sure",
        "here",
        "glad",
        "happy",
        "going",
        "looking",
        "trying",
        "writing",
        "having",
        "still",
        "just",
        "also",
        "new",
        "back",
    ]
)


def _name_context_ok(name: str) -> bool:
    first = name.split()[0].strip(",.").lower()
    return first not in _NOT_A_NAME and not PLACEHOLDER_PATTERN.fullmatch(name)


@dataclass(frozen=True)
class Redaction:
    """Redacted text and how many placeholders of each kind went in."""

    text: str
    counts: Counter[str] = field(default_factory=Counter)


def email_addresses(text: str) -> list[str]:
    """The e-mail addresses in ``text`` as the redactor finds them, in order."""
    return _EMAIL.findall(text)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@dataclass(frozen=True)
class PublicContacts:
    """E-mail addresses and phone numbers the company publishes in its Help Center: not personal
    data, so they stay where they appear. An agent's "write to billing@parcelo.example" then
    trains a model to give that address, not an ``<EMAIL>`` that the bot would fill with the
    customer's own address."""

    emails: frozenset[str] = frozenset()  # lower case
    phones: frozenset[str] = frozenset()  # digits only

    @classmethod
    def found_in(cls, texts: Iterable[str]) -> PublicContacts:
        emails: set[str] = set()
        phones: set[str] = set()
        for text in texts:
            emails.update(address.lower() for address in _EMAIL.findall(text))
            phones.update(_digits(m.group()) for m in _PHONE.finditer(text) if _phone(m))
        return cls(frozenset(emails), frozenset(phones))

    def __len__(self) -> int:
        return len(self.emails) + len(self.phones)


NO_PUBLIC_CONTACTS = PublicContacts()

# Markers for kept contacts while the other steps run: private-use characters, no word, digit or '<'.
_SHIELD_OPEN, _SHIELD_CLOSE, _SHIELD_FIRST, _SHIELD_SLOTS = "\ue000", "\ue001", 0xE100, 0x700
_SHIELDED = re.compile(f"{_SHIELD_OPEN}([\ue100-\ue7ff]){_SHIELD_CLOSE}")


class Redactor:
    """Replaces personal data with typed placeholders. Build once per export (names), reuse.
    ``public``: the company's own addresses and numbers, kept as they are."""

    def __init__(self, known_names: Iterable[str] = (), public: PublicContacts = NO_PUBLIC_CONTACTS) -> None:
        self.public = public
        fulls: set[str] = set()
        tokens: set[str] = set()
        for raw in known_names:
            name = " ".join(str(raw).split())
            if not name or "@" in name:
                continue
            fulls.add(name)
            for token in re.split(r"[\s,]+", name):
                token = token.strip(".()\"'")
                if len(token) >= 2 and token.lower() not in AMBIGUOUS_NAME_TOKENS and not token.isdigit():
                    tokens.add(token)
        variants = {v for n in fulls | tokens for v in (n, n.upper())}
        ordered = sorted(variants, key=lambda v: (-len(v), v))
        self._known = (
            re.compile(r"(?<![\w<])(?:" + "|".join(re.escape(v) for v in ordered) + r")(?![\w>])")
            if ordered
            else None
        )

    def _shield(self, text: str) -> tuple[str, list[str]]:
        """``text`` with each published address and number swapped for a marker no later step
        touches (the name step would otherwise turn ``Marta.Kowalski@…`` into ``<NAME>.<NAME>@…``),
        and the originals in marker order."""
        kept: list[str] = []
        if not self.public:
            return text, kept

        def hold(match: re.Match[str], public: bool) -> str:
            if not public or len(kept) >= _SHIELD_SLOTS:
                return match.group()
            kept.append(match.group())
            return f"{_SHIELD_OPEN}{chr(_SHIELD_FIRST + len(kept) - 1)}{_SHIELD_CLOSE}"

        text = _EMAIL.sub(lambda m: hold(m, m.group().lower() in self.public.emails), text)
        text = _PHONE.sub(lambda m: hold(m, _phone(m) and _digits(m.group()) in self.public.phones), text)
        return text, kept

    def redact(self, text: str) -> Redaction:
        counts: Counter[str] = Counter()
        text, kept = self._shield(text)

        def sub(pattern: re.Pattern[str], kind: str, text: str, keep: Callable[[re.Match[str]], bool]) -> str:
            def replace(match: re.Match[str]) -> str:
                if not keep(match):
                    return match.group()
                counts[kind] += 1
                return PLACEHOLDERS[kind]

            return pattern.sub(replace, text)

        def sub_group(pattern: re.Pattern[str], kind: str, text: str, group: str, lead: str) -> str:
            def replace(match: re.Match[str]) -> str:
                if kind == "NAME" and not _name_context_ok(match.group(group)):
                    return match.group()
                counts[kind] += 1
                return match.group(lead) + PLACEHOLDERS[kind]

            return pattern.sub(replace, text)

        def url(match: re.Match[str]) -> str:
            trimmed = _trim_url(match.group())
            if not _url_has_secret(trimmed):
                return match.group()
            counts["URL_WITH_TOKEN"] += 1
            return PLACEHOLDERS["URL_WITH_TOKEN"] + match.group()[len(trimmed) :]

        text = _URL.sub(url, text)
        text = sub(_EMAIL, "EMAIL", text, lambda m: True)
        text = sub(_SECRET_FORMATS, "SECRET", text, lambda m: True)
        text = sub_group(_SECRET_AFTER_KEYWORD, "SECRET", text, "value", "key")
        text = sub(_IBAN, "IBAN", text, lambda m: _iban_valid(m.group()))
        text = sub(_CARD, "CARD", text, _card)
        text = sub(_IPV4, "IP", text, _ip)
        text = sub(_IPV6, "IP", text, _ip)
        text = sub(_PHONE, "PHONE", text, _phone)
        text = sub(_ADDRESS, "ADDRESS", text, lambda m: True)
        if self._known is not None:
            text = sub(self._known, "NAME", text, lambda m: True)
        for pattern in (_TITLE, _GREETING, _SIGN_OFF_NAME):
            text = sub_group(pattern, "NAME", text, "name", "lead")

        def intro(match: re.Match[str]) -> str:
            lead, name = (
                (match.group("lead"), match.group("name"))
                if match.group("lead")
                else (
                    match.group("lead2"),
                    match.group("name2"),
                )
            )
            if not _name_context_ok(name):
                return match.group()
            counts["NAME"] += 1
            return lead + PLACEHOLDERS["NAME"]

        text = _SELF_INTRO.sub(intro, text)
        if kept:
            text = _SHIELDED.sub(lambda m: kept[ord(m.group(1)) - _SHIELD_FIRST], text)
        return Redaction(_merge_adjacent(text), counts)


def _trim_url(url: str) -> str:
    return url.rstrip(".,;:!?)]}")


def _merge_adjacent(text: str) -> str:
    """ "<NAME> <NAME>" (first and last name replaced separately) reads as one person."""
    return re.sub(r"<NAME>(?:[ \t]+<NAME>)+", "<NAME>", text)
