"""Money arithmetic in integer micro-dollars."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from errors import PriceTableError
from money.pricing import ModelPrice, TokenUsage, format_usd, load_price_table, usd_to_micro

pytestmark = pytest.mark.unit

SONNET = ModelPrice(
    model="claude-sonnet-4-5",
    input=3_000_000,
    output=15_000_000,
    cache_write=3_750_000,
    cache_read=300_000,
)


def test_cost_of_a_call_with_cache_tokens() -> None:
    usage = TokenUsage(
        input_tokens=33,
        output_tokens=486,
        cache_creation_input_tokens=72,
        cache_read_input_tokens=0,
    )
    # 33*3 + 486*15 + 72*3.75 = 99 + 7290 + 270 = 7659 micro-USD, exactly.
    assert SONNET.cost_micro(usage) == 7_659


def test_cost_rounds_up_once_per_call() -> None:
    # 1 cache-read token = 0.3 micro-USD: charged as 1, never 0.
    assert SONNET.cost_micro(TokenUsage(cache_read_input_tokens=1)) == 1
    # 10 of them = exactly 3.
    assert SONNET.cost_micro(TokenUsage(cache_read_input_tokens=10)) == 3


def test_worst_case_prices_prompt_at_the_dearest_input_rate() -> None:
    # 1000 prompt tokens at the cache-write rate (3.75) + 2000 output at 15.
    assert SONNET.worst_case_micro(1_000, 2_000) == 3_750 + 30_000


def test_usd_conversion_is_exact() -> None:
    assert usd_to_micro(Decimal("0.50")) == 500_000
    assert usd_to_micro(Decimal("0.1234567")) == 123_457  # sub-micro fractions round up
    assert format_usd(31_801) == "$0.031801"
    assert format_usd(12_500_000) == "$12.500000"


def test_shipped_price_table_is_read_exactly() -> None:
    table = load_price_table(Path(__file__).parents[1] / "money/prices.toml")
    assert table.models["claude-haiku-4-5"].cache_read == 100_000
    assert table.models["claude-opus-5"].cache_write == 6_250_000


def test_price_table_errors_name_model_and_field(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[models."m"]\ninput = "1"\noutput = "x"\ncache_write = 1\ncache_read = 0\n')
    with pytest.raises(PriceTableError, match="models.m.output: 'x' is not a number"):
        load_price_table(path)
    path.write_text('[models."m"]\ninput = "1"\n')
    with pytest.raises(
        PriceTableError, match="models.m is missing output, cache_write, cache_read"
    ):
        load_price_table(path)


def test_shipped_table_carries_cache_floors_and_one_hour_writes() -> None:
    table = load_price_table(Path(__file__).parents[1] / "money/prices.toml")
    floors = {model: price.min_cache_tokens for model, price in table.models.items()}
    assert floors == {
        "claude-opus-5": 512,
        "claude-opus-4-8": 1_024,
        "claude-opus-4-7": 2_048,
        "claude-opus-4-6": 4_096,
        "claude-opus-4-5": 4_096,
        "claude-sonnet-4-6": 1_024,
        "claude-sonnet-4-5": 1_024,
        "claude-haiku-4-5": 4_096,
    }
    # The 1-hour write is 2x input on every model, the 5-minute one 1.25x.
    for price in table.models.values():
        assert (price.cache_write_1h, price.cache_write * 4) == (2 * price.input, 5 * price.input)
        assert price.batch_percent == 50


def test_one_hour_writes_and_batch_calls_are_priced_apart() -> None:
    usage = TokenUsage(
        input_tokens=100,
        output_tokens=1_000,
        cache_creation_input_tokens=2_000,
        cache_creation_1h_input_tokens=500,
        cache_read_input_tokens=3_000,
    )
    # 100*3 + 1000*15 + 1500*3.75 + 500*6 (1 h, 2x input by default) + 3000*0.3
    assert SONNET.cache_write_1h == 6_000_000
    assert SONNET.cost_micro(usage) == 300 + 15_000 + 5_625 + 3_000 + 900
    # A batch call pays half of it, rounded up once: 24825 / 2 = 12412.5 -> 12413.
    assert SONNET.cost_micro(usage, batch=True) == 12_413
    # The worst case prices the prompt at the call's own TTL's write rate.
    assert SONNET.worst_case_micro(1_000, 0, cache_ttl="1h") == 6_000
    with pytest.raises(ValueError, match="cache_creation_1h_input_tokens"):
        TokenUsage(cache_creation_input_tokens=1, cache_creation_1h_input_tokens=2)


def test_price_table_counts_are_whole_numbers_in_bounds(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    row = '[models."m"]\ninput = "1"\noutput = "1"\ncache_write = 1\ncache_read = 0\n'
    path.write_text(row + "min_cache_tokens = 0\n")
    with pytest.raises(PriceTableError, match=r"models.m.min_cache_tokens: must be 1 to"):
        load_price_table(path)
    path.write_text(row + 'batch_percent = "50"\n')
    with pytest.raises(PriceTableError, match="models.m.batch_percent: expected a whole number"):
        load_price_table(path)
    path.write_text(row + "min_cache_tokens = 2048\ncache_write_1h = 2.5\n")
    price = load_price_table(path).models["m"]
    assert (price.min_cache_tokens, price.cache_write_1h, price.batch_percent) == (
        2_048,
        2_500_000,
        50,
    )
