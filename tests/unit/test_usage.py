"""money.pricing beyond tests/test_pricing.py: one rounding per call across every token
kind, TokenUsage sums, and WithUsage's flat token fields on the wire."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from contracts.results import AgentCallRecord, CallStatus
from money.pricing import ModelPrice, TokenUsage, WithUsage, format_usd, total_usage
from tests.unit.builders import HAIKU, SONNET

pytestmark = pytest.mark.unit

# --- cost ---------------------------------------------------------------------------


def test_a_call_is_rounded_once_over_all_its_token_kinds() -> None:
    # 2 cache writes (7.5) + 5 cache reads (1.5) = 9 micro-dollars exactly;
    # rounding each kind on its own would charge 8 + 2 = 10.
    usage = TokenUsage(cache_creation_input_tokens=2, cache_read_input_tokens=5)
    assert SONNET.cost_micro(usage) == 9


def test_each_call_is_rounded_up_on_its_own() -> None:
    # Two calls of 1 cache read (0.1 each) are charged 1 each: a run is never
    # charged less than the sum of what each call was billed.
    one = TokenUsage(cache_read_input_tokens=1)
    assert HAIKU.cost_micro(one) == 1
    assert HAIKU.cost_micro(one) + HAIKU.cost_micro(one) == 2
    assert HAIKU.cost_micro(one + one) == 1


def test_no_tokens_cost_nothing() -> None:
    assert SONNET.cost_micro(TokenUsage()) == 0
    assert SONNET.worst_case_micro(0, 0) == 0


def test_the_worst_case_rounds_up_and_uses_the_dearer_of_input_and_cache_write() -> None:
    assert SONNET.worst_case_micro(1, 0) == 4  # 3.75 (cache write), rounded up
    # A model whose plain input is dearer than a cache write prices the prompt at input.
    odd = ModelPrice(model="odd", input=2_000_001, output=1, cache_write=1, cache_read=0)
    assert odd.worst_case_micro(1_000_000, 1) == 2_000_002


def test_negative_amounts_are_formatted_exactly() -> None:
    assert format_usd(0) == "$0.000000"
    assert format_usd(-1) == "-$0.000001"
    assert format_usd(-12_345_678) == "-$12.345678"


# --- TokenUsage -----------------------------------------------------------------------

FIRST = TokenUsage(
    input_tokens=10, output_tokens=20, cache_creation_input_tokens=30, cache_read_input_tokens=40
)
SECOND = TokenUsage(
    input_tokens=1, output_tokens=2, cache_creation_input_tokens=3, cache_read_input_tokens=4
)


def test_usage_adds_field_by_field() -> None:
    assert FIRST + SECOND == TokenUsage(
        input_tokens=11,
        output_tokens=22,
        cache_creation_input_tokens=33,
        cache_read_input_tokens=44,
    )


def test_total_usage_sums_any_number_of_usages() -> None:
    assert total_usage([]) == TokenUsage()
    assert total_usage([FIRST]) == FIRST
    assert total_usage(iter([FIRST, SECOND, SECOND])) == TokenUsage(
        input_tokens=12,
        output_tokens=24,
        cache_creation_input_tokens=36,
        cache_read_input_tokens=48,
    )


def test_usage_totals() -> None:
    assert (FIRST.total_input_tokens, FIRST.total_tokens) == (80, 100)


def test_usage_refuses_negative_counts() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        TokenUsage(output_tokens=-1)


# --- WithUsage: flat token fields on the wire ------------------------------------------


class Row(WithUsage):
    """A WithUsage with a prefix, as TeamResult (``total_``) has one."""

    name: str
    flat_prefix: ClassVar[str] = "day_"


def test_flat_fields_are_read_into_usage() -> None:
    row = Row.model_validate({"name": "a", "day_input_tokens": 5, "day_output_tokens": 7})
    assert row.usage == TokenUsage(input_tokens=5, output_tokens=7)
    assert (row.input_tokens, row.output_tokens) == (5, 7)
    assert (row.cache_creation_input_tokens, row.cache_read_input_tokens) == (0, 0)


def test_usage_is_written_flat_and_read_back() -> None:
    row = Row(name="a", usage=FIRST)
    flat = {
        "name": "a",
        "day_input_tokens": 10,
        "day_output_tokens": 20,
        "day_cache_creation_input_tokens": 30,
        "day_cache_read_input_tokens": 40,
        "day_cache_creation_1h_input_tokens": 0,
    }
    assert row.model_dump() == flat
    assert row.model_dump(mode="json") == flat
    assert Row.model_validate_json(row.model_dump_json()) == row


def test_flat_fields_override_a_usage_object_field_by_field() -> None:
    data: dict[str, Any] = {"name": "a", "usage": SECOND.model_dump(), "day_output_tokens": 9}
    assert Row.model_validate(data).usage == SECOND.model_copy(update={"output_tokens": 9})
    data["usage"] = SECOND  # a TokenUsage itself, as Python callers pass it
    assert Row.model_validate(data).usage == SECOND.model_copy(update={"output_tokens": 9})


def test_a_usage_object_alone_is_read_as_it_is() -> None:
    assert Row.model_validate({"name": "a", "usage": {"input_tokens": 3}}).usage == TokenUsage(
        input_tokens=3
    )
    assert Row.model_validate({"name": "a"}).usage == TokenUsage()


def test_unprefixed_names_are_not_token_fields_of_a_prefixed_model() -> None:
    # Only ``day_...`` are Row's token fields: these are unknown keys, ignored.
    assert Row.model_validate({"name": "a", "input_tokens": 5}).usage == TokenUsage()


def test_a_call_record_keeps_the_flat_shape_results_always_had() -> None:
    record = AgentCallRecord(
        call_id="wf-1/write/writer/1",
        stage="write",
        agent="writer",
        model=SONNET.model,
        prompt_version="writer/v1#0123456789ab",
        status=CallStatus.SUCCEEDED,
        usage=FIRST,
        cost_micro=SONNET.cost_micro(FIRST),
    )
    dumped = record.model_dump(mode="json")
    assert "usage" not in dumped
    assert {k: v for k, v in dumped.items() if k.endswith("_tokens")} == {
        "input_tokens": 10,
        "output_tokens": 20,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 40,
        "cache_creation_1h_input_tokens": 0,
    }
    assert dumped["cost_micro"] == 455  # 30 + 300 + 112.5 + 12 = 454.5, rounded up
    assert AgentCallRecord.model_validate(dumped) == record
