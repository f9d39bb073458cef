"""Validation errors as one ``field: problem`` line each, naming list items by name.

``agents[1] (writer).max_tokens: Input should be ...`` reads better than
pydantic's ``agents.1.max_tokens``: team files and gold sets name their list
items (``name``, ``id``), so the path says which one.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def describe_errors(
    err: ValidationError, data: object, *, label_key: str = "name", empty: str = "(spec)"
) -> list[str]:
    """One line per error of ``err``, raised while validating ``data``."""
    raw = data if isinstance(data, dict) else {}
    return [
        f"{field_path(e['loc'], raw, label_key=label_key, empty=empty)}: "
        f"{str(e['msg']).removeprefix('Value error, ')}"
        for e in err.errors()
    ]


def field_path(
    loc: tuple[int | str, ...],
    data: dict[str, Any],
    *,
    label_key: str = "name",
    empty: str = "(spec)",
) -> str:
    """``loc`` as ``items[1] (label).field``, the label read from ``data`` at that item."""
    parts: list[str] = []
    node: Any = data
    for index, part in enumerate(loc):
        if isinstance(part, int) and parts:
            parts[-1] += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            label = node.get(label_key) if isinstance(node, dict) else None
            if isinstance(label, str):
                parts[-1] += f" ({label})"
            continue
        # Discriminated unions put the tag ("gate", "fan_out"...) in the path:
        # skip it, the item's label already says which one this is.
        previous = loc[index - 1] if index else None
        if isinstance(previous, int) and isinstance(node, dict) and node.get("kind") == part:
            continue
        parts.append(str(part))
        node = node.get(part) if isinstance(node, dict) else None
    return ".".join(parts) or empty
