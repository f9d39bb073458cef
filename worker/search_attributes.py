"""Register the project's custom search attributes on a namespace.

The worker does this at start-up (idempotently), the dev server gets them on its
command line, and the tests register them on both test servers, so a run never
upserts an attribute the server does not know (which would stall its workflow
task).
"""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.service import RPCError, RPCStatusCode

from contracts.search_attributes import SEARCH_ATTRIBUTES
from errors import AgentTeamsError


class SearchAttributeSetupError(AgentTeamsError):
    """The namespace lacks the project's search attributes and this client may not add them."""


_CLI_TYPE = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
}


def dev_server_args() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    args: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}={_CLI_TYPE[key.indexed_value_type]}"]
    return args


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Add whichever attributes the namespace lacks; return their names."""
    known = await _known_attributes(client, namespace)
    missing = {
        key.name: IndexedValueType.ValueType(int(key.indexed_value_type))
        for key in SEARCH_ATTRIBUTES
        if key.name not in known
    }
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
        except RPCError as err:
            if err.status in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED):
                # Temporal Cloud: attributes are a namespace setting (tcld or the web UI).
                hint = _setup_hint(namespace, sorted(missing), err)
                raise SearchAttributeSetupError(hint) from None
            if err.status is not RPCStatusCode.ALREADY_EXISTS:
                raise
    return sorted(missing)


def _setup_hint(namespace: str, missing: list[str], err: RPCError) -> str:
    types = {key.name: _CLI_TYPE[key.indexed_value_type] for key in SEARCH_ATTRIBUTES}
    flags = " ".join(f"--sa '{name}={types[name]}'" for name in missing)
    return (
        f"namespace {namespace!r} lacks the search attributes {', '.join(missing)} "
        f"and this client may not add them ({err.message}). Add them once, e.g. on Temporal "
        f"Cloud: tcld namespace search-attributes add --namespace {namespace} {flags}"
    )


async def _known_attributes(client: Client, namespace: str) -> set[str]:
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    except RPCError as err:
        # The time-skipping test server can add attributes but not list them.
        if err.status is RPCStatusCode.UNIMPLEMENTED:
            return set()
        raise
    return set(existing.custom_attributes) | set(existing.system_attributes)
