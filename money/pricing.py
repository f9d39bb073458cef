"""Token usage, model prices and cost arithmetic, in integer micro-dollars.

Invariants:
- Money is an ``int`` of micro-dollars (1 USD = 1_000_000). No float ever
  holds money: prices are read from the table as decimals and stored as
  integer micro-dollars per million tokens.
- A cost is rounded *up* to the next micro-dollar, once, over the whole call,
  so a run is never charged less than the provider bills.
- These functions are pure, so workflow code uses them too (budget
  reservations) without breaking determinism.
- A price table is bounded where it is read: every price a finite decimal from
  0 to :data:`MAX_PRICE_USD` per million tokens, every model id 1 to
  :data:`MAX_MODEL_ID_CHARS` characters, no key but the four prices; any
  problem (an unreadable file included) is a :class:`PriceTableError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from errors import PriceTableError
from errors.toml_files import labelled_message, read_toml

MICRO_PER_USD = 1_000_000
# The price table this package ships (the defaults every deployment starts from).
SHIPPED_PRICES = Path(__file__).resolve().parent / "prices.toml"
TOKENS_PER_PRICE_UNIT = 1_000_000
"""Prices are quoted per million tokens."""
MAX_PRICE_USD = Decimal(10_000)
"""The dearest price per million tokens a table may set (today's dearest is $25)."""
MAX_PRICE_MICRO = int(MAX_PRICE_USD) * MICRO_PER_USD
MAX_MODEL_ID_CHARS = 128
"""Length of a model id in the table."""


CacheTtl = Literal["5m", "1h"]
"""How long a prompt-cache write lives: the provider's two TTLs, priced apart."""


class TokenUsage(BaseModel):
    """Tokens one model call used, split the way providers bill them."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_creation_input_tokens: int = Field(default=0, ge=0)
    cache_read_input_tokens: int = Field(default=0, ge=0)
    cache_creation_1h_input_tokens: int = Field(default=0, ge=0)
    """The share of ``cache_creation_input_tokens`` written with the 1-hour TTL
    (priced at ``cache_write_1h``); the rest were written for 5 minutes."""

    @model_validator(mode="after")
    def _one_hour_writes_are_writes(self) -> TokenUsage:
        if self.cache_creation_1h_input_tokens > self.cache_creation_input_tokens:
            raise ValueError(
                "cache_creation_1h_input_tokens: more 1-hour cache writes than cache writes"
            )
        return self

    @property
    def total_input_tokens(self) -> int:
        """All prompt tokens, cached or not."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    @property
    def total_tokens(self) -> int:
        """Prompt and completion tokens together."""
        return self.total_input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=(
                self.cache_creation_input_tokens + other.cache_creation_input_tokens
            ),
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            cache_creation_1h_input_tokens=(
                self.cache_creation_1h_input_tokens + other.cache_creation_1h_input_tokens
            ),
        )

    def less(self, other: TokenUsage) -> TokenUsage:
        """These tokens without ``other``'s, never below zero in any count."""
        return TokenUsage(
            input_tokens=max(0, self.input_tokens - other.input_tokens),
            output_tokens=max(0, self.output_tokens - other.output_tokens),
            cache_creation_input_tokens=max(
                0, self.cache_creation_input_tokens - other.cache_creation_input_tokens
            ),
            cache_read_input_tokens=max(
                0, self.cache_read_input_tokens - other.cache_read_input_tokens
            ),
            cache_creation_1h_input_tokens=min(
                max(0, self.cache_creation_input_tokens - other.cache_creation_input_tokens),
                max(0, self.cache_creation_1h_input_tokens - other.cache_creation_1h_input_tokens),
            ),
        )

    @property
    def cache_hit_ratio(self) -> float | None:
        """The share of prompt tokens served from the provider's prompt cache.

        ``None`` with no prompt tokens. A figure for reports only: never money.
        """
        total = self.total_input_tokens
        return None if total == 0 else self.cache_read_input_tokens / total


TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
"""The four counts the controls stores keep (their columns, in this order): a call's
cost is stored with them, so the 1-hour share of its writes needs no column."""
FLAT_TOKEN_FIELDS = (*TOKEN_FIELDS, "cache_creation_1h_input_tokens")
"""TokenUsage's fields: older payloads (results, status, cost rows) carried them flat."""


class WithUsage(BaseModel):
    """A model that carries tokens: one :class:`TokenUsage`, not four fields of its own.

    On the wire the four counts stay flat, named ``<flat_prefix><field>``, as
    they always were: results recorded in history, ``--json`` output and the
    controls store's rows keep their shape, so workers of either version read
    each other's payloads during a rollout. ``usage`` is read from them (and
    from a ``usage`` object) and written back out flat.
    """

    usage: TokenUsage = Field(default_factory=TokenUsage)
    flat_prefix: ClassVar[str] = ""
    flat_fields: ClassVar[tuple[str, ...]] = FLAT_TOKEN_FIELDS
    """The counts written out: a store-backed row writes only the :data:`TOKEN_FIELDS`
    its store keeps, rather than a 1-hour share it would always show as 0."""

    @model_validator(mode="before")
    @classmethod
    def _fold_flat_token_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        names = {cls.flat_prefix + field: field for field in FLAT_TOKEN_FIELDS}
        flat = {names[k]: v for k, v in data.items() if k in names}
        if not flat:
            return data
        usage = data.get("usage")
        known = usage.model_dump() if isinstance(usage, TokenUsage) else dict(usage or {})
        rest = {k: v for k, v in data.items() if k not in names}
        return rest | {"usage": known | flat}

    @model_serializer(mode="wrap")
    def _flat_token_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        usage = data.pop("usage", None)
        if isinstance(usage, dict):
            data |= {
                self.flat_prefix + name: value
                for name, value in usage.items()
                if name in self.flat_fields
            }
        return data

    @property
    def input_tokens(self) -> int:
        """Uncached prompt tokens."""
        return self.usage.input_tokens

    @property
    def output_tokens(self) -> int:
        """Completion tokens."""
        return self.usage.output_tokens

    @property
    def cache_creation_input_tokens(self) -> int:
        """Prompt tokens written to the provider's cache."""
        return self.usage.cache_creation_input_tokens

    @property
    def cache_read_input_tokens(self) -> int:
        """Prompt tokens read from the provider's cache."""
        return self.usage.cache_read_input_tokens


def total_usage(usages: Iterable[TokenUsage]) -> TokenUsage:
    """The sum of ``usages`` (none: zero)."""
    return sum(usages, TokenUsage())


DEFAULT_MIN_CACHE_TOKENS = 1_024
"""A model's minimum cacheable prefix when its price row does not say."""
MAX_MIN_CACHE_TOKENS = 1_000_000
DEFAULT_BATCH_PERCENT = 50
"""Message Batches bill every token at half the interactive price."""


class ModelPrice(BaseModel):
    """One model's prices, in micro-dollars per million tokens, and its cache floor.

    ``cache_write`` prices a prompt-cache write with the 5-minute TTL,
    ``cache_write_1h`` one with the 1-hour TTL (2x input unless the table says).
    ``min_cache_tokens`` is the shortest prefix the provider caches at all:
    below it a ``cache_control`` mark is ignored and every prompt token is
    billed as input. ``batch_percent`` is what a Message Batches call pays,
    as a percentage of these prices.
    """

    model_config = ConfigDict(frozen=True)

    model: str
    input: int = Field(ge=0, le=MAX_PRICE_MICRO)
    output: int = Field(ge=0, le=MAX_PRICE_MICRO)
    cache_write: int = Field(ge=0, le=MAX_PRICE_MICRO)
    cache_read: int = Field(ge=0, le=MAX_PRICE_MICRO)
    cache_write_1h: int = Field(default=-1, ge=-1, le=MAX_PRICE_MICRO)
    """-1 (unset) reads as 2x ``input``, the provider's list ratio."""
    min_cache_tokens: int = Field(default=DEFAULT_MIN_CACHE_TOKENS, ge=1, le=MAX_MIN_CACHE_TOKENS)
    batch_percent: int = Field(default=DEFAULT_BATCH_PERCENT, ge=1, le=100)

    @model_validator(mode="after")
    def _one_hour_write_price(self) -> ModelPrice:
        if self.cache_write_1h < 0:
            object.__setattr__(self, "cache_write_1h", min(2 * self.input, MAX_PRICE_MICRO))
        return self

    def _scaled(self, usage: TokenUsage) -> int:
        five_minute = usage.cache_creation_input_tokens - usage.cache_creation_1h_input_tokens
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + five_minute * self.cache_write
            + usage.cache_creation_1h_input_tokens * self.cache_write_1h
            + usage.cache_read_input_tokens * self.cache_read
        )

    def cost_micro(self, usage: TokenUsage, *, batch: bool = False) -> int:
        """What ``usage`` costs on this model, rounded up to a whole micro-dollar.

        ``batch``: the call went through the Message Batches API, so every token
        is billed at ``batch_percent`` of its price (rounded up once, over the call).
        """
        if batch:
            return _ceil_div(self._scaled(usage) * self.batch_percent, TOKENS_PER_PRICE_UNIT * 100)
        return _ceil_div(self._scaled(usage), TOKENS_PER_PRICE_UNIT)

    def worst_case_micro(
        self,
        prompt_tokens: int,
        max_tokens: int,
        *,
        cache_ttl: CacheTtl = "5m",
        batch: bool = False,
    ) -> int:
        """The most a call can cost, rounded up to a whole micro-dollar.

        Every prompt token is priced at the dearest input rate (a cache write
        with the call's TTL costs more than a plain input token) and the full
        ``max_tokens`` of output is assumed; ``batch``: at ``batch_percent``.
        """
        write = self.cache_write_1h if cache_ttl == "1h" else self.cache_write
        dearest_input = max(self.input, write)
        scaled = prompt_tokens * dearest_input + max_tokens * self.output
        if batch:
            return _ceil_div(scaled * self.batch_percent, TOKENS_PER_PRICE_UNIT * 100)
        return _ceil_div(scaled, TOKENS_PER_PRICE_UNIT)

    def cacheable(self, prefix_tokens: int) -> bool:
        """Whether a prefix this long is cached at all on this model."""
        return prefix_tokens >= self.min_cache_tokens


class PriceTable(BaseModel):
    """Prices for every model a team may name, keyed by model id."""

    model_config = ConfigDict(frozen=True)

    source: str
    models: dict[str, ModelPrice]

    def price_of(self, model: str) -> ModelPrice | None:
        """The model's price row, or ``None`` when the table has no such model."""
        return self.models.get(model)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def usd_to_micro(amount: Decimal) -> int:
    """Exact USD → micro-dollars; sub-micro-dollar fractions round up."""
    scaled = amount * MICRO_PER_USD
    whole = int(scaled)
    return whole + (1 if scaled > whole else 0)


def format_usd(micro: int) -> str:
    """Render micro-dollars as ``$0.012345`` (exact, no float)."""
    sign = "-" if micro < 0 else ""
    dollars, rest = divmod(abs(micro), MICRO_PER_USD)
    return f"{sign}${dollars}.{rest:06d}"


_PRICE_FIELDS = ("input", "output", "cache_write", "cache_read")
_OPTIONAL_PRICE_FIELDS = ("cache_write_1h",)
_COUNT_FIELDS = ("min_cache_tokens", "batch_percent")
_COUNT_BOUNDS = {"min_cache_tokens": (1, MAX_MIN_CACHE_TOKENS), "batch_percent": (1, 100)}


def _usd_per_mtok_to_micro(source: str, model: str, field: str, raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise PriceTableError(
            f"{source}: models.{model}.{field}: expected a number of USD, got {_shown(raw)}"
        )
    try:
        # str() first: a TOML float such as 0.3 becomes exactly Decimal("0.3").
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError) as err:  # ValueError: an int of >4300 digits
        raise PriceTableError(
            f"{source}: models.{model}.{field}: {_shown(raw)} is not a number"
        ) from err
    if not value.is_finite():
        raise PriceTableError(f"{source}: models.{model}.{field}: {_shown(raw)} is not a number")
    if value < 0:
        raise PriceTableError(f"{source}: models.{model}.{field}: price cannot be negative")
    if value > MAX_PRICE_USD:
        raise PriceTableError(
            f"{source}: models.{model}.{field}: price is over {MAX_PRICE_USD} USD "
            "per million tokens"
        )
    return usd_to_micro(value)


def _count(source: str, model: str, field: str, raw: object) -> int:
    """A whole-number setting of a price row, within its bounds."""
    low, high = _COUNT_BOUNDS[field]
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise PriceTableError(
            f"{source}: models.{model}.{field}: expected a whole number, got {_shown(raw)}"
        )
    if not low <= raw <= high:
        raise PriceTableError(f"{source}: models.{model}.{field}: must be {low} to {high}")
    return raw


def _shown(raw: object) -> str:
    """``repr(raw)`` cut short (and an integer too long to print named as such)."""
    try:
        text = repr(raw)
    except ValueError:
        return "an integer of over 4300 digits"
    return text if len(text) <= 60 else f"{text[:57]}..."


def parse_price_table(data: dict[str, object], source: str) -> PriceTable:
    """Build a :class:`PriceTable` from the parsed TOML of a price file."""
    raw_models = data.get("models")
    if not isinstance(raw_models, dict) or not raw_models:
        raise PriceTableError(f'{source}: needs a [models."<model id>"] table per model')
    models: dict[str, ModelPrice] = {}
    for model, row in raw_models.items():
        if not model or len(model) > MAX_MODEL_ID_CHARS:
            raise PriceTableError(
                f"{source}: models.{model[:40]}: a model id has 1 to {MAX_MODEL_ID_CHARS} "
                "characters"
            )
        if not isinstance(row, dict):
            raise PriceTableError(f"{source}: models.{model} must be a table")
        missing = [f for f in _PRICE_FIELDS if f not in row]
        if missing:
            raise PriceTableError(f"{source}: models.{model} is missing {', '.join(missing)}")
        known = (*_PRICE_FIELDS, *_OPTIONAL_PRICE_FIELDS, *_COUNT_FIELDS)
        unknown = sorted(set(row) - set(known))
        if unknown:
            raise PriceTableError(
                f"{source}: models.{model}.{unknown[0]}: unknown key (expected {', '.join(known)})"
            )
        prices = {
            f: _usd_per_mtok_to_micro(source, model, f, row[f])
            for f in (*_PRICE_FIELDS, *_OPTIONAL_PRICE_FIELDS)
            if f in row
        }
        counts = {f: _count(source, model, f, row[f]) for f in _COUNT_FIELDS if f in row}
        models[model] = ModelPrice(model=model, **prices, **counts)
    return PriceTable(source=source, models=models)


def load_price_table(path: Path) -> PriceTable:
    """Read and validate a price table file (TOML, USD per million tokens)."""
    data = read_toml(
        path,
        lambda problem, err: PriceTableError(labelled_message("price table", path, problem, err)),
    )
    return parse_price_table(data, str(path))
