"""The recognizers of PII and secrets: what each kind looks like, and the checks on it.

Each recognizer is a regex and a check that turns a match into a span or
rejects it (a Luhn check for cards, ISO 13616 for IBANs, a digit in a token), with
the substrings one of which a text must contain for it to run at all. Pure: no
I/O, no clock, no environment.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class PiiKind(StrEnum):
    """What a match is; its value names the redaction placeholder (``[EMAIL]``)."""

    EMAIL = "EMAIL"
    PHONE = "PHONE"
    CARD = "CARD"
    IBAN = "IBAN"
    NATIONAL_ID = "NATIONAL_ID"
    IP_ADDRESS = "IP_ADDRESS"
    SECRET = "SECRET"


Span = tuple[int, int]
Accept = Callable[[re.Match[str]], Span | None]


@dataclass(frozen=True, slots=True)
class Recognizer:
    """A pattern, and the check that turns a regex match into a span (or rejects it)."""

    kind: PiiKind
    pattern: re.Pattern[str]
    accept: Accept
    needs: tuple[str, ...]


def _whole(match: re.Match[str]) -> Span | None:
    return match.span()


def _group(name: str) -> Accept:
    """Redact only the named group (``Bearer <token>`` keeps ``Bearer``)."""

    def accept(match: re.Match[str]) -> Span | None:
        return match.span(name)

    return accept


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


# --- e-mail -------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])"
    r"[A-Za-z0-9][A-Za-z0-9._%+'-]{0,63}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
    r"(?![\w-]|\.[A-Za-z0-9])"
)


def _accept_email(match: re.Match[str]) -> Span | None:
    """Reject ``user@host:path`` (an SSH/SCP remote such as ``git@github.com:org/repo``)."""
    rest = match.string[match.end() : match.end() + 2]
    if len(rest) == 2 and rest[0] == ":" and (rest[1].isalnum() or rest[1] in "~/_."):
        return None
    return match.span()


# --- phone numbers ------------------------------------------------------------------

_PHONE_LEFT = r"(?<![\w+#/$€£.:@-])(?<!\d[ .-])"
"""Not inside a token, and not the continuation of an earlier digit group."""
_PHONE_EXT = r"(?P<ext>[ ]?(?i:ext\.?|extension|x)[ ]?\d{1,6})?"
_PHONE_RIGHT = r"(?!\w|[.:/-]\d)"

_PHONE_INTERNATIONAL = re.compile(
    _PHONE_LEFT
    + r"\+[1-9]\d{0,14}+"
    + r"(?:[ .-]?\(\d{1,4}\)[ .-]?\d{1,12}|[ .-]\d{1,12}){0,8}+"
    + _PHONE_EXT
    + _PHONE_RIGHT
)
_PHONE_NANP = re.compile(
    _PHONE_LEFT
    + r"(?:1[ .-])?"
    + r"(?:\([2-9]\d{2}\)[ ]?[2-9]\d{2}[ .-]\d{4}"
    + r"|[2-9]\d{2}(?P<sep>[ .-])[2-9]\d{2}(?P=sep)\d{4})"
    + _PHONE_EXT
    + _PHONE_RIGHT
)
_PHONE_NATIONAL = re.compile(
    _PHONE_LEFT
    + r"(?:\(0[1-9]\d{0,3}\)[ ]?\d{2,8}(?:[ .-]\d{2,8}){0,3}+(?![ .-]\d)"
    + r"|0[1-9]\d{0,3}(?P<sep>[ .-])\d{2,8}(?:(?P=sep)\d{2,8}){0,4}+(?!(?P=sep)\d))"
    + _PHONE_EXT
    + _PHONE_RIGHT
)


def _phone_digits(match: re.Match[str]) -> int:
    end = match.start("ext") if match.group("ext") else match.end()
    return len(_digits(match.string[match.start() : end]))


def _accept_international(match: re.Match[str]) -> Span | None:
    """E.164 allows at most 15 digits; fewer than 8 is a score or an offset, not a phone."""
    return match.span() if 8 <= _phone_digits(match) <= 15 else None


def _accept_national(match: re.Match[str]) -> Span | None:
    """National numbers with a trunk 0 have 9 to 12 digits; a date has 8."""
    return match.span() if 9 <= _phone_digits(match) <= 12 else None


# --- payment cards ------------------------------------------------------------------

_CARD = re.compile(
    r"(?<![\w.,#-])(?<![A-Z]{2}\d{2} )"
    r"(?:\d{13,19}"
    r"|\d{4}(?P<sep>[ -])\d{4,6}(?P=sep)\d{4,5}(?:(?P=sep)\d{1,4}(?:(?P=sep)\d{3})?)?)"
    r"(?!\w|[.,]\d)"
)
"""Contiguous, or grouped 4-4-4-4(-3), 4-6-5 (Amex), 4-6-4 (Diners); not the BBAN after an
IBAN's ``DE89`` (a bad IBAN's digits are not a card)."""


def luhn_valid(digits: str) -> bool:
    """Whether ``digits`` (ASCII digits only) passes the Luhn checksum."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_prefix_plausible(digits: str) -> bool:
    """Issuer ranges: 3 (Amex, Diners, JCB), 4 (Visa), 5 and 2221–2720 (Mastercard), 6.

    A 13-digit millisecond timestamp (``1705314600123``) starts with 1: never a card.
    """
    return digits[0] in "3456" or 2221 <= int(digits[:4]) <= 2720


def _accept_card(match: re.Match[str]) -> Span | None:
    """The longest prefix ending at a group boundary that is a card (13–19 digits, Luhn)."""
    start, end = match.span()
    text = match.string
    ends = [end] + [i for i in range(end - 1, start, -1) if text[i] in " -"]
    for candidate_end in ends:
        digits = _digits(text[start:candidate_end])
        if 13 <= len(digits) <= 19 and _card_prefix_plausible(digits) and luhn_valid(digits):
            return start, candidate_end
    return None


# --- IBAN ---------------------------------------------------------------------------

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
"""IBAN length by country (SWIFT IBAN registry): the length is part of the check."""

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,8}+(?: ?[A-Z0-9]{1,3})?")


def iban_valid(compact: str) -> bool:
    """Whether ``compact`` (no spaces) has its country's length and passes mod-97."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def _accept_iban(match: re.Match[str]) -> Span | None:
    """Cut the candidate at its country's length (it may run into a following word)."""
    start, end = match.span()
    text = match.string
    expected = IBAN_LENGTHS.get(text[start : start + 2])
    if expected is None:
        return None
    count = 0
    for index in range(start, end):
        if text[index] != " ":
            count += 1
        if count == expected:
            cut = index + 1
            if cut < len(text) and text[cut].isalnum():
                return None
            return (start, cut) if iban_valid(text[start:cut].replace(" ", "")) else None
    return None


# --- national ids -------------------------------------------------------------------

_SSN = re.compile(
    r"(?<![\w-])(?!000|666|9)\d{3}(?P<sep>[- ])(?!00)\d{2}(?P=sep)(?!0000)\d{4}(?!\w|[-.]\d)"
)
"""US SSN: area 000, 666 and 900–999, group 00 and serial 0000 are never issued."""

_NINO = re.compile(
    r"(?<![A-Za-z0-9])"
    r"(?!BG|GB|KN|NK|NT|TN|ZZ)(?:[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]|QQ)"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])"
)
"""UK NINO (HMRC NIM39110): no D, F, I, Q, U, V first; no D, F, I, O, Q, U, V second; BG,
GB, KN, NK, NT, TN, ZZ never allocated; suffix A–D. ``QQ`` is HMRC's specimen prefix
(``QQ 12 34 56 C`` on its forms): matched too, since specimens end up in test data
and documents exactly where real numbers would."""

_DNI = re.compile(r"(?<![A-Za-z0-9])(?P<body>\d{8}|[XYZ]\d{7})-?(?P<letter>[A-Z])(?![A-Za-z0-9])")
"""Spanish DNI (8 digits) and NIE (X/Y/Z and 7 digits), with the mod-23 control letter."""

_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _accept_dni(match: re.Match[str]) -> Span | None:
    body = match.group("body")
    digits = str("XYZ".index(body[0])) + body[1:] if body[0] in "XYZ" else body
    number = int(digits)
    return match.span() if _DNI_LETTERS[number % 23] == match.group("letter") else None


# --- IP addresses -------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(r"(?<![\w.])(?<!\w/)" + _OCTET + r"(?:\." + _OCTET + r"){3}(?!\w|\.\d)")
"""Four octets 0–255, no leading zeros; not part of a longer dotted run (``1.2.3.4.5``), not
a product version (``Chrome/120.0.0.0``), never three octets (``10.0.0`` is a version)."""

_IPV6 = re.compile(
    r"(?<![\w:.])"
    r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
    r"(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?![\w:]|\.\d)"
)


def _machine_local(address: str) -> bool:
    """Whether ``address`` is loopback (``127.0.0.1``, ``::1``) or unspecified (``0.0.0.0``).

    These name no host but the one reading them, so they identify nobody; every
    other address, private ranges included, is redacted.
    """
    parsed = ipaddress.ip_address(address)
    return parsed.is_loopback or parsed.is_unspecified


def _accept_ipv4(match: re.Match[str]) -> Span | None:
    return None if _machine_local(match.group()) else match.span()


def _ipv6_plausible(candidate: str) -> bool:
    """A valid address that doesn't look like a slice (``a[1::2]``) or a clock (``10:30:00``)."""
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    groups = [group for group in candidate.split(":") if group]
    has_letter = any(char in "abcdefABCDEF" for char in candidate)
    return len(groups) >= 3 or "." in candidate or (has_letter and len(groups) >= 2)


def _accept_ipv6(match: re.Match[str]) -> Span | None:
    start, end = match.span()
    candidate = match.group()
    if candidate.endswith(":") and not candidate.endswith("::"):
        candidate, end = candidate[:-1], end - 1
    if not _ipv6_plausible(candidate) or _machine_local(candidate):
        return None
    return start, end


# --- secrets ------------------------------------------------------------------------

_ANTHROPIC_KEY = re.compile(r"(?<![\w-])sk-ant-[A-Za-z0-9_-]{20,}")
_AWS_KEY_ID = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])")
_GITHUB_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"
    r"(?![A-Za-z0-9_])"
)
_SLACK_TOKEN = re.compile(r"(?<![A-Za-z0-9-])xox[abprs]-[A-Za-z0-9-]{10,}")
_GOOGLE_KEY = re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])")
_STRIPE_KEY = re.compile(r"(?<![A-Za-z0-9_])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}")
_JWT = re.compile(
    r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
    r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|.*)",
    re.DOTALL,
)
"""A PEM private key block to its END line; a truncated block (no END) to the end of the text."""

_OPENAI_KEY = re.compile(r"(?<![\w-])sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")


def _accept_openai(match: re.Match[str]) -> Span | None:
    """Keys are random: a digit and a letter. ``sk-some-long-hyphenated-words`` is not a key."""
    body = match.group()[3:]
    has_digit = any(char.isdigit() for char in body)
    has_letter = any(char.isalpha() for char in body)
    return match.span() if has_digit and has_letter else None


_BEARER = re.compile(
    r"(?i:\bbearer)[ \t]+(?P<token>[A-Za-z0-9._~+/-]{12,}=*)(?![A-Za-z0-9._~+/=-])"
)


def _accept_bearer(match: re.Match[str]) -> Span | None:
    """A token has a digit somewhere: "Bearer authentication" in prose is not one."""
    token = match.group("token")
    return match.span("token") if any(char.isdigit() for char in token) else None


_URL_PASSWORD = re.compile(r"(?<=://)[^\s:/?#@]*:(?P<password>[^\s/?#@]+)@")
"""``scheme://user:password@host``: the password only (the host stays readable)."""

_AWS_SECRET = re.compile(
    r"(?i:aws_?secret_?access_?key)[\"']?[ \t]*[:=][ \t]*[\"']?"
    r"(?P<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
)


_DIGITS = tuple("0123456789")

RECOGNIZERS: tuple[Recognizer, ...] = (
    Recognizer(PiiKind.SECRET, _ANTHROPIC_KEY, _whole, ("sk-ant-",)),
    Recognizer(PiiKind.SECRET, _OPENAI_KEY, _accept_openai, ("sk-",)),
    Recognizer(PiiKind.SECRET, _AWS_KEY_ID, _whole, ("AKIA", "ASIA")),
    Recognizer(PiiKind.SECRET, _GITHUB_TOKEN, _whole, ("gh", "github_pat_")),
    Recognizer(PiiKind.SECRET, _SLACK_TOKEN, _whole, ("xox",)),
    Recognizer(PiiKind.SECRET, _GOOGLE_KEY, _whole, ("AIza",)),
    Recognizer(PiiKind.SECRET, _STRIPE_KEY, _whole, ("_live_", "_test_")),
    Recognizer(PiiKind.SECRET, _JWT, _whole, ("eyJ",)),
    Recognizer(PiiKind.SECRET, _PRIVATE_KEY, _whole, ("-----BEGIN ",)),
    Recognizer(PiiKind.SECRET, _BEARER, _accept_bearer, ("earer", "EARER")),
    Recognizer(PiiKind.SECRET, _URL_PASSWORD, _group("password"), ("://",)),
    Recognizer(PiiKind.SECRET, _AWS_SECRET, _group("secret"), ("ecret", "ECRET")),
    Recognizer(PiiKind.EMAIL, _EMAIL, _accept_email, ("@",)),
    Recognizer(PiiKind.CARD, _CARD, _accept_card, _DIGITS),
    Recognizer(PiiKind.IBAN, _IBAN, _accept_iban, _DIGITS),
    Recognizer(PiiKind.NATIONAL_ID, _SSN, _whole, _DIGITS),
    Recognizer(PiiKind.NATIONAL_ID, _NINO, _whole, _DIGITS),
    Recognizer(PiiKind.NATIONAL_ID, _DNI, _accept_dni, _DIGITS),
    Recognizer(PiiKind.IP_ADDRESS, _IPV4, _accept_ipv4, (".",)),
    Recognizer(PiiKind.IP_ADDRESS, _IPV6, _accept_ipv6, (":",)),
    Recognizer(PiiKind.PHONE, _PHONE_INTERNATIONAL, _accept_international, ("+",)),
    Recognizer(PiiKind.PHONE, _PHONE_NANP, _whole, _DIGITS),
    Recognizer(PiiKind.PHONE, _PHONE_NATIONAL, _accept_national, ("0",)),
)
"""Every recognizer, with the substrings one of which a text must contain for it to run
(a cheap scan that skips most regexes on most log lines)."""
