"""The activity stubs (contracts/activities.py) and the implementations the worker registers.

Workflows start activities through the stubs, so a stub and its implementation
must agree on the name (the history's activity type) and on the annotations (the
stub's return type decodes the result): a drift here is a replay break or a
result decoded into the wrong model. And a stub must never be what a worker runs.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client

from contracts import activities as stubs
from contracts.activities import STUBS
from stores.controls.sql.sqlite import SqliteControls
from teams.catalog import Catalog
from tests.tool_kit import ToolKit, tool_box
from worker.deployment import Deployment


def _name(fn: Callable[..., Any]) -> str:
    definition = activity._Definition.from_callable(fn)
    assert definition is not None, f"{fn!r} is not an activity"
    assert definition.name is not None
    return definition.name


def _shape(fn: Callable[..., Any]) -> tuple[list[tuple[str, Any]], Any]:
    """(parameter names and annotations, return annotation), ``self`` left out."""
    hints = typing.get_type_hints(fn)
    params = [(name, hints.get(name)) for name in inspect.signature(fn).parameters]
    return params, hints.get("return")


def _registered(client: Client, controls: SqliteControls, tmp_path: Path) -> dict[str, Any]:
    """Every activity the worker registers (both queues), by name, tools and controls on."""
    from worker.main import build_workers

    workers = build_workers(
        client,
        Deployment(task_queue="stubs", calls_task_queue="stubs-calls"),
        provider=_provider(),
        catalog=Catalog.shipped(),
        controls=controls,
        tools=tool_box(ToolKit(), tmp_path),
    )
    registered: dict[str, Any] = {}
    for worker in workers:
        for fn in worker.config(active_config=True)["activities"]:
            name = _name(fn)
            assert name not in registered or registered[name] == fn, f"{name} registered twice"
            registered[name] = fn
    return registered


def _provider() -> Any:
    from providers.simulated.provider import SimulatedConfig, SimulatedProvider

    return SimulatedProvider(SimulatedConfig())


def test_each_stub_is_named_by_its_constant() -> None:
    names = [_name(stub) for stub in STUBS]
    assert len(set(names)) == len(names)
    for stub in STUBS:
        # The batch steps' summaries show the stub's __name__ as the activity's name.
        assert stub.__name__ == _name(stub)
        assert getattr(stubs, _name(stub).upper()) == _name(stub)


async def test_a_stub_never_runs() -> None:
    for stub in STUBS:
        params = list(inspect.signature(stub).parameters)
        assert len(params) == 1, f"{stub.__name__}: one input"
        with pytest.raises(NotImplementedError, match="the worker registers"):
            await stub(None)  # type: ignore[arg-type]


async def test_the_worker_registers_an_implementation_for_every_stub_and_no_stub(
    client: Client, controls: SqliteControls, tmp_path: Path
) -> None:
    registered = _registered(client, controls, tmp_path)
    stubbed = {_name(stub): stub for stub in STUBS}
    assert set(registered) == set(stubbed), (
        f"no implementation: {set(stubbed) - set(registered)}; "
        f"no stub: {set(registered) - set(stubbed)}"
    )
    for name, stub in stubbed.items():
        implementation = registered[name]
        assert implementation is not stub
        assert getattr(implementation, "__module__", "") != stubs.__name__, name
        assert _shape(implementation) == _shape(stub), name
