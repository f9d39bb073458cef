"""security.pii.redaction: exact redactions over corpora of PII, look-alikes and clean text."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from security.pii import matching as pii_matching
from security.pii import redaction as pii
from security.pii.redaction import (
    PiiKind,
    PiiMatch,
    contains_pii,
    find_pii,
    iban_valid,
    luhn_valid,
    redact,
    redact_numbered,
    restore,
)

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).parent / "corpus"


def _tsv_cases(name: str) -> list[tuple[str, str]]:
    """``input<TAB>expected`` lines; ``#`` lines are comments."""
    cases = []
    for line in (CORPUS / name).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            source, expected = line.split("\t")
            cases.append((source, expected))
    return cases


def _lines(name: str) -> list[str]:
    """Every non-empty line is a case (no comments: clean text may start with ``#``)."""
    return [line for line in (CORPUS / name).read_text(encoding="utf-8").splitlines() if line]


REDACTIONS = _tsv_cases("pii_redactions.tsv")
LOOKALIKES = _lines("pii_lookalikes.txt")
CLEAN = _lines("pii_clean.txt")


def test_corpora_are_large_enough() -> None:
    assert len(REDACTIONS) >= 60
    assert len(CLEAN) >= 150
    assert len(LOOKALIKES) >= 40
    placeholders = "".join(expected for _, expected in REDACTIONS)
    assert {kind for kind in PiiKind if f"[{kind.value}]" in placeholders} == set(PiiKind)


@pytest.mark.parametrize(("source", "expected"), REDACTIONS, ids=[s[:40] for s, _ in REDACTIONS])
def test_redaction_corpus(source: str, expected: str) -> None:
    assert redact(source) == expected
    assert contains_pii(source) is True


@pytest.mark.parametrize("line", LOOKALIKES)
def test_invalid_lookalikes_stay(line: str) -> None:
    assert find_pii(line) == []
    assert redact(line) == line
    assert contains_pii(line) is False


def test_clean_corpus_has_zero_matches() -> None:
    found = {line: find_pii(line) for line in CLEAN}
    assert {line: matches for line, matches in found.items() if matches} == {}


def test_clean_corpus_as_one_text_has_zero_matches() -> None:
    # Joined, the lines meet at newlines: no recognizer may straddle two of them.
    assert find_pii("\n".join(CLEAN)) == []


def test_find_pii_spans_kinds_and_order() -> None:
    text = "Jane (jane@example.com, +44 7700 900123) paid with 4111111111111111 from 10.1.2.3"
    assert find_pii(text) == [
        PiiMatch(PiiKind.EMAIL, 6, 22, "jane@example.com"),
        PiiMatch(PiiKind.PHONE, 24, 39, "+44 7700 900123"),
        PiiMatch(PiiKind.CARD, 51, 67, "4111111111111111"),
        PiiMatch(PiiKind.IP_ADDRESS, 73, 81, "10.1.2.3"),
    ]
    assert all(text[m.start : m.end] == m.text for m in find_pii(text))


def test_pii_match_is_frozen() -> None:
    match = PiiMatch(PiiKind.EMAIL, 0, 5, "a@b.c")
    with pytest.raises(dataclasses.FrozenInstanceError):
        match.start = 1  # type: ignore[misc]


def test_placeholders_are_the_kind_values() -> None:
    assert [kind.value for kind in PiiKind] == [
        "EMAIL",
        "PHONE",
        "CARD",
        "IBAN",
        "NATIONAL_ID",
        "IP_ADDRESS",
        "SECRET",
    ]


# --- overlaps ------------------------------------------------------------------------


def _kinds_before_resolution(text: str) -> set[PiiKind]:
    """What the recognizers found before overlaps were resolved (proves an overlap exists)."""
    return {match.kind for match in pii_matching._candidates(text)}


def test_card_wins_over_an_overlapping_phone() -> None:
    # "+378282246310005" is an E.164 shape (15 digits) and, after the "+", an Amex number.
    text = "+378282246310005"
    assert _kinds_before_resolution(text) == {PiiKind.PHONE, PiiKind.CARD}
    assert find_pii(text) == [PiiMatch(PiiKind.CARD, 1, 16, "378282246310005")]
    assert redact(text) == "+[CARD]"


def test_iban_wins_over_an_overlapping_phone() -> None:
    # "0417 1643 00" inside the Dutch IBAN is a trunk-0 national phone shape.
    text = "NL91 ABNA 0417 1643 00"
    assert _kinds_before_resolution(text) == {PiiKind.PHONE, PiiKind.IBAN}
    assert find_pii(text) == [PiiMatch(PiiKind.IBAN, 0, 22, text)]


def test_secret_wins_over_everything_inside_it() -> None:
    text = (
        "before\n"
        "-----BEGIN RSA PRIVATE KEY-----\n"
        "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi..jane@example.com 10.0.0.1\n"
        "4111111111111111 +44 20 7946 0958\n"
        "-----END RSA PRIVATE KEY-----\n"
        "after jane@example.com"
    )
    assert redact(text) == "before\n[SECRET]\nafter [EMAIL]"
    assert [m.kind for m in find_pii(text)] == [PiiKind.SECRET, PiiKind.EMAIL]


def test_truncated_private_key_is_redacted_to_the_end() -> None:
    text = "key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    assert redact(text) == "key: [SECRET]"


def test_openssh_and_encrypted_private_keys() -> None:
    text = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
        "-----END OPENSSH PRIVATE KEY-----\n"
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHzBJBgkqhkiG9w0BBQ0w\n"
        "-----END ENCRYPTED PRIVATE KEY-----"
    )
    assert redact(text) == "[SECRET]\n[SECRET]"


def test_url_password_wins_over_the_email_shape_it_makes() -> None:
    text = "https://admin:s3cret@db.example.com/x"
    assert _kinds_before_resolution(text) == {PiiKind.SECRET, PiiKind.EMAIL}
    assert find_pii(text) == [PiiMatch(PiiKind.SECRET, 14, 20, "s3cret")]


def test_card_followed_by_more_digits_keeps_the_valid_prefix() -> None:
    assert redact("4111 1111 1111 1111 4444") == "[CARD] 4444"


def test_iban_followed_by_an_upper_case_word() -> None:
    assert redact("GB82 WEST 1234 5698 7654 32 REF") == "[IBAN] REF"


# --- checksums -----------------------------------------------------------------------


def test_luhn() -> None:
    assert [luhn_valid(n) for n in ("4111111111111111", "4111111111111112", "79927398713")] == [
        True,
        False,
        True,
    ]


def test_iban_valid_checks_length_and_mod_97() -> None:
    assert iban_valid("DE89370400440532013000") is True
    assert iban_valid("DE89370400440532013001") is False  # mod-97
    assert iban_valid("DE8937040044053201300") is False  # length
    assert iban_valid("QX89370400440532013000") is False  # no such country


# --- numbered redaction ----------------------------------------------------------------


def test_redact_numbered_counts_per_kind_and_reuses_placeholders() -> None:
    text = (
        "From jane@example.com to bob@example.com, cc jane@example.com; "
        "call +44 20 7946 0958 or 415-555-0132; card 4242 4242 4242 4242."
    )
    redacted, mapping = redact_numbered(text)
    assert redacted == (
        "From [EMAIL_1] to [EMAIL_2], cc [EMAIL_1]; call [PHONE_1] or [PHONE_2]; card [CARD_1]."
    )
    assert mapping == {
        "[EMAIL_1]": "jane@example.com",
        "[EMAIL_2]": "bob@example.com",
        "[PHONE_1]": "+44 20 7946 0958",
        "[PHONE_2]": "415-555-0132",
        "[CARD_1]": "4242 4242 4242 4242",
    }
    assert restore(redacted, mapping) == text


def test_redact_numbered_same_text_same_kind_only() -> None:
    redacted, mapping = redact_numbered("a@example.com A@example.com a@example.com")
    assert redacted == "[EMAIL_1] [EMAIL_2] [EMAIL_1]"
    assert mapping == {"[EMAIL_1]": "a@example.com", "[EMAIL_2]": "A@example.com"}


def test_redact_numbered_without_pii() -> None:
    assert redact_numbered("nothing to see") == ("nothing to see", {})


def test_redact_numbered_skips_placeholders_the_text_already_has() -> None:
    text = "Earlier [EMAIL_1] and [EMAIL_3] were mentioned; now x@example.com and y@example.com."
    redacted, mapping = redact_numbered(text)
    assert redacted == (
        "Earlier [EMAIL_1] and [EMAIL_3] were mentioned; now [EMAIL_2] and [EMAIL_4]."
    )
    assert mapping == {"[EMAIL_2]": "x@example.com", "[EMAIL_4]": "y@example.com"}
    # The text's own "[EMAIL_1]" is not ours: restoring leaves it alone.
    assert restore(redacted, mapping) == (
        "Earlier [EMAIL_1] and [EMAIL_3] were mentioned; now x@example.com and y@example.com."
    )


def test_restore_is_one_pass_and_leaves_unknown_placeholders() -> None:
    mapping = {"[EMAIL_1]": "[EMAIL_2]", "[EMAIL_2]": "b@example.com"}
    assert restore("[EMAIL_1] [EMAIL_2] [PHONE_9] [EMAIL_1", mapping) == (
        "[EMAIL_2] b@example.com [PHONE_9] [EMAIL_1"
    )


def test_model_answer_round_trip() -> None:
    redacted, mapping = redact_numbered("Refund 4111 1111 1111 1111 for jane@example.com.")
    assert redacted == "Refund [CARD_1] for [EMAIL_1]."
    answer = "I refunded [CARD_1] and e-mailed [EMAIL_1]."
    assert restore(answer, mapping) == (
        "I refunded 4111 1111 1111 1111 and e-mailed jane@example.com."
    )


# --- robustness --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "1" * 50_000,
        "1 " * 25_000,
        "1234-" * 10_000,
        "+1 " * 16_000,
        "(020) " * 8_000,
        "a@" * 25_000,
        "a" * 49_990 + "@",
        ":" * 50_000,
        "ab:" * 16_000,
        "1." * 25_000,
        "DE89 " * 10_000,
        "sk-" * 16_000,
        "Bearer " * 7_000,
        "http://a:" * 5_000,
    ],
    ids=lambda text: repr(text[:8]),
)
def test_pathological_inputs_are_left_alone(text: str) -> None:
    # A hang here would be catastrophic backtracking (the timeout guards the suite).
    assert redact(text) == text


def test_many_matches_in_a_large_text() -> None:
    text = "user jane@example.com from 10.0.0.1 ok\n" * 1_000
    assert redact(text) == "user [EMAIL] from [IP_ADDRESS] ok\n" * 1_000


ALLOWED_IMPORTS = {
    "__future__",
    "bisect",
    "collections.abc",
    "dataclasses",
    "enum",
    "ipaddress",
    "re",
    "re._parser",  # the stdlib regex parser (security.injection.prefilter reads its tree)
    "ahocorasick",  # the prefilter's one-pass literal search: pure CPU, no I/O
    "typing",
    "unicodedata",
    "pydantic",
}
PURE_MODULES = [
    "pii.redaction",
    "pii.patterns",
    "pii.matching",
    "pii.placeholders",
    "injection.detection",
    "injection.normalization",
    "injection.fencing",
    "injection.rules",
    "injection.excerpts",
    "injection.prefilter",
]
"""The text-screening modules workflow code reaches (they may import each other)."""


@pytest.mark.parametrize("module", PURE_MODULES)
def test_modules_import_only_pure_modules(module: str) -> None:
    # Workflow code calls these: no I/O, clock, randomness or environment may sneak in.
    path = Path(pii.__file__).parents[1].joinpath(*module.split(".")).with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported <= ALLOWED_IMPORTS | {f"security.{name}" for name in PURE_MODULES}
