"""Payloads without default values: the project's pydantic payload converter.

Pydantic's converter writes every field of a model, so each agent call's input
and result carried dozens of ``null``, ``false``, ``[]`` and default prices into
history (issue 26). This converter writes a model without the fields whose value
is their default (pydantic's ``exclude_defaults``); reading is pydantic's,
unchanged, so the defaults fill back in and every value reads back equal.

Invariants:

- **Union tags stay.** A field whose type is a single-value ``Literal`` with a
  default (``kind: Literal["errored"] = "errored"``) is a discriminated union's
  tag: it is always written, at any depth, or the union could not be read back.
- **Old payloads read as before.** Payloads written with every field (histories
  recorded before this converter, clients on pydantic's own converter) decode the
  same: a field that is present wins over its default.
- **A default is part of the wire format.** A payload in history that omits a
  field reads it as the field's default *of the code that reads it*: changing a
  contract field's default changes what recorded histories mean, so a new
  behaviour gets a new field (or a patch), never a new default.

Everything that is not a pydantic model (plain values, ``RawValue``, ``None``,
bytes) converts exactly as pydantic's converter converts it.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import SchemaSerializer, to_json, to_jsonable_python
from pydantic_core.core_schema import any_schema
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter, PydanticPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)


class CompactJSONPayloadConverter(PydanticJSONPlainPayloadConverter):
    """``json/plain`` as pydantic writes it, without default values (union tags kept)."""

    def __init__(self) -> None:
        super().__init__()
        self._any = SchemaSerializer(any_schema())

    def to_payload(self, value: Any) -> Payload | None:
        """``value`` as compact JSON: fields at their default left out, tags kept."""
        data = self._any.to_python(value, mode="json", exclude_defaults=True)
        _restore_tags(value, data)
        return Payload(metadata={"encoding": self.encoding.encode()}, data=to_json(data))


class CompactPayloadConverter(PydanticPayloadConverter):
    """Pydantic's payload converter, its JSON written by :class:`CompactJSONPayloadConverter`.

    Every instance shares one JSON converter (:func:`_shared_json`), as they
    share the SDK's other encoding converters.
    """

    def __init__(self) -> None:
        json_converter = _shared_json()
        CompositePayloadConverter.__init__(
            self,
            *(
                json_converter if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            ),
        )


@functools.cache
def _shared_json() -> CompactJSONPayloadConverter:
    """The one JSON converter of every :class:`CompactPayloadConverter`.

    The SDK builds a payload converter for each workflow activation (a data
    converter with the workflow's context is a copy, and a copy builds its
    converter anew before it is replaced): 32 a research run, each building two
    pydantic serializers and an empty type-adapter cache, 12 µs (issue 26). The
    converter holds no state of a conversion: its serializers are immutable, and
    its type-adapter cache is thread-safe and only ever adds the adapter a hint
    always gets, so sharing it also shares that cache.
    """
    return CompactJSONPayloadConverter()


compact_data_converter = DataConverter(payload_converter_class=CompactPayloadConverter)
"""Pydantic's data converter (no codec, default failures) with compact payloads."""


def _restore_tags(value: Any, data: Any) -> None:
    """Put back, in ``data`` (``value`` dumped), every union tag ``exclude_defaults`` left out.

    Walks ``value`` and ``data`` side by side: models (their fields, by the name they
    are written under), lists, tuples and dicts (in order). Where the two do not
    match in shape (a model with its own serializer), the walk stops there. A model
    field whose annotation cannot hold a tagged model is not walked
    (:func:`_walk_plan`): most fields are text and numbers.
    """
    if isinstance(value, BaseModel):
        if not isinstance(data, dict):
            return
        tags, walked = _walk_plan(type(value))
        for name, key in tags:
            if key not in data:
                data[key] = to_jsonable_python(getattr(value, name))
        for name, key in walked:
            if key in data:
                _restore_tags(getattr(value, name), data[key])
    elif isinstance(value, list | tuple):
        if isinstance(data, list) and len(data) == len(value):
            for item, dumped in zip(value, data, strict=True):
                _restore_tags(item, dumped)
    elif isinstance(value, dict):
        if isinstance(data, dict) and len(data) == len(value):
            for item, dumped in zip(value.values(), data.values(), strict=True):
                _restore_tags(item, dumped)


_Plan = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]


@functools.lru_cache(maxsize=1024)
def _walk_plan(model: type[BaseModel]) -> _Plan:
    """``model``'s tags (name, key), and the fields (name, key) that may hold a tagged model."""
    keyed = _keys(model)
    tags = tuple((name, keyed[name]) for name in _tags(model))
    walked = tuple(
        (name, key)
        for name, key in keyed.items()
        if _may_hold_tags(model.model_fields[name].annotation, frozenset())
    )
    return tags, walked


_LEAVES = (str, bytes, int, float, bool, type(None), Decimal, datetime, date, time, timedelta)
"""Annotations whose values are never models."""


def _may_hold_tags(annotation: Any, seen: frozenset[type]) -> bool:
    """Whether a value of ``annotation`` can be, or contain, a model with a union tag.

    Unknown shapes (``Any``, ``object``, type variables, classes we cannot see
    into) answer yes: skipping a tag would lose it, walking costs only time.
    """
    if annotation is None or annotation is type(None):
        return False
    origin = get_origin(annotation)
    if origin is Literal:
        return False
    if origin is Annotated:
        return _may_hold_tags(get_args(annotation)[0], seen)
    if origin is not None:
        args = get_args(annotation)
        if origin in (type, ClassVar):
            return False
        return not args or any(_may_hold_tags(arg, seen) for arg in args if arg is not Ellipsis)
    if isinstance(annotation, type):
        if issubclass(annotation, Enum) or issubclass(annotation, _LEAVES):
            return False
        if issubclass(annotation, BaseModel):
            if annotation in seen:
                return False  # a cycle: what it holds is answered where it was first met
            if _tags(annotation):
                return True
            inner = seen | {annotation}
            return any(
                _may_hold_tags(f.annotation, inner) for f in annotation.model_fields.values()
            )
    return True


@functools.lru_cache(maxsize=1024)
def _keys(model: type[BaseModel]) -> dict[str, str]:
    """Each field's name, and the key it is written under."""
    by_alias = bool(model.model_config.get("serialize_by_alias"))
    return {
        name: (field.serialization_alias or field.alias or name) if by_alias else name
        for name, field in model.model_fields.items()
        if not field.exclude
    }


@functools.lru_cache(maxsize=1024)
def _tags(model: type[BaseModel]) -> tuple[str, ...]:
    """``model``'s fields that tag it in a union: a single-value ``Literal`` with a default."""
    return tuple(
        name
        for name, field in model.model_fields.items()
        if not field.exclude
        and not field.is_required()
        and get_origin(field.annotation) is Literal
        and len(get_args(field.annotation)) == 1
    )
