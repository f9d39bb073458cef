"""``python -m bench`` (``make bench``): every section, one invocation, one report.

Figures are only compared within one invocation: every system runs on the
same server, provider and machine, interleaved. The report goes to stdout
and to ``--out`` (``results.md``, ``results.json``, ``chart.png``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from temporalio.client import Client

from bench import (
    chart,
    controls,
    cost,
    history,
    latency,
    recovery,
    rollback_timing,
    semantic_cache,
    streams,
    targets,
    throughput,
    tools,
)
from bench.environment import SERVER_MODE, machine, target
from bench.postgres_cluster import Unavailable, postgres_server
from bench.stats import Spread, Table
from bench.strain import redirect_stderr, strain_table
from bench.systems import (
    OPTIONAL,
    POSTGRESQL,
    PROJECT,
    SYSTEMS,
    TEMPORAL_LANGGRAPH,
    AsyncioSystem,
    BareTemporalSystem,
    Dropouts,
    ProjectSystem,
    System,
    controls_line,
    provider,
    temporal_systems,
)
from bench.workloads import (
    LATENCY_TABLE,
    CallPlan,
    bench_catalog,
    call_plan,
    task_of,
    workload_spec,
)
from teams.catalog import Catalog

_Key = TypeVar("_Key", bound=tuple[object, ...])

SECTIONS = (
    "latency",
    "throughput",
    "recovery",
    "rollback",
    "history",
    "tools",
    "streams",
    "cost",
    "controls",
    "semantic",
)
POSTGRES_SECTIONS = ("latency", "throughput", "controls", "semantic")
"""The sections with PostgreSQL rows: the cluster is started only for them."""
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "performance"


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--scale",
        type=float,
        default=float(os.environ.get("BENCH_SCALE", "0.1")),
        help="model latency scale (1 = the published figures; default 0.1 or $BENCH_SCALE)",
    )
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS", "3")))
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cost-requests", type=int, default=40)
    parser.add_argument("--repeat-share", type=float, default=0.3)
    parser.add_argument(
        "--server",
        choices=("dev", "configured"),
        default="dev",
        help="dev: a dev server of the bench's own (default); configured: the cluster "
        "TEMPORAL_ADDRESS / TEMPORAL_API_KEY / TEMPORAL_TLS_* / profiles name (no recovery "
        "section, no server CPU)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"--sections: unknown {', '.join(sorted(unknown))}; known: {SECTIONS}")
    if args.scale <= 0 or args.repeats < 1:
        parser.error("--scale must be > 0 and --repeats >= 1")
    return args


@dataclass(frozen=True)
class Systems:
    """The systems on one provider, in table order, and the two Temporal ones by name."""

    all: list[System]
    bare: BareTemporalSystem
    project: ProjectSystem

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.all]


@dataclass
class Context:
    """What every section's systems share: where to put files, and what could not run."""

    client: Client
    catalog: Catalog
    plans: dict[str, CallPlan]
    folder: Path
    stack: AsyncExitStack
    postgres_url: str | None
    skipped: dict[str, str]
    """System (or row) → why it was left out; each said once, when found."""

    def skip(self, what: str, why: str) -> None:
        if what not in self.skipped:
            self.skipped[what] = why
            print(f"{what}: skipped, {why}", flush=True)


async def _systems(context: Context, scale: float, label: str) -> Systems:
    from bench.langgraph_baseline import LangGraphSystem

    model = provider(scale)
    temporal = await context.stack.enter_async_context(
        temporal_systems(
            context.client, model, context.catalog, label, postgres_url=context.postgres_url
        )
    )
    graph = await context.stack.enter_async_context(
        LangGraphSystem.open(model, context.folder / f"langgraph-{label}.sqlite")
    )
    peers: list[System] = [graph]
    try:
        from bench.temporal_langgraph import TemporalLangGraphSystem
    except ImportError as err:
        context.skip(TEMPORAL_LANGGRAPH, f"temporalio-langgraph cannot be imported ({err})")
    else:
        peers.append(
            await context.stack.enter_async_context(
                TemporalLangGraphSystem.open(context.client, model, context.plans, label)
            )
        )
    systems: list[System] = [AsyncioSystem(model), *temporal.in_order(), *peers]
    return Systems(systems, temporal.bare, temporal.project)


def _by_key(spreads: Mapping[_Key, Spread]) -> dict[str, dict[str, float]]:
    """Spreads keyed ``a|b|c`` for JSON."""
    return {"|".join(map(str, key)): spread.as_dict() for key, spread in spreads.items()}


@contextmanager
def _timed(section: str, timings: dict[str, float]) -> Iterator[None]:
    """Time a section into ``timings`` and say when it is done."""
    began = time.perf_counter()
    yield
    timings[section] = time.perf_counter() - began
    print(f"{section}: {timings[section]:.0f}s", flush=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    # Kept whole on purpose: every section shares one server, one set of systems
    # (opened lazily, in one exit stack) and one report, and reads top to bottom
    # in report order; each ``if "<section>" in sections`` block is one section.
    sections = args.sections.split(",")
    tables: list[Table] = []
    data: dict[str, Any] = {}
    timings: dict[str, float] = {}
    lat = thr = ctl = None
    back: rollback_timing.RollbackResults | None = None
    rows: list[history.HistoryFigures] | None = None
    tool_figures: tools.ToolsResults | None = None
    stream_figures: streams.StreamsResults | None = None
    cost_rows: list[cost.CostFigures] | None = None
    cost_facts: dict[str, Any] | None = None
    skipped: dict[str, str] = {}
    dropouts = Dropouts(OPTIONAL)
    with tempfile.TemporaryDirectory(prefix="bench-") as work, ExitStack() as servers:
        folder = Path(work)
        catalog = bench_catalog(folder)
        plans = {w: call_plan(catalog, w) for w in ("research", "code-review", "code-review-seq")}
        research = workload_spec(catalog, "research")
        postgres: str | Unavailable = Unavailable("no section here has PostgreSQL rows")
        if any(section in POSTGRES_SECTIONS for section in sections):
            postgres = servers.enter_context(postgres_server())
        async with target(args.server) as where, AsyncExitStack() as stack:
            server = where.server
            context = Context(
                client=where.client,
                catalog=catalog,
                plans=plans,
                folder=folder,
                stack=stack,
                postgres_url=postgres if isinstance(postgres, str) else None,
                skipped=skipped,
            )
            if isinstance(postgres, Unavailable) and any(s in POSTGRES_SECTIONS for s in sections):
                context.skip(f"{POSTGRESQL} and the PostgreSQL controls row", postgres.reason)
            if "latency" in sections:
                with _timed("latency", timings):
                    timed = await _systems(context, args.scale, "lat")
                    lat = await latency.measure(
                        timed.all,
                        catalog,
                        plans,
                        scale=args.scale,
                        repeats=args.repeats,
                        concurrencies=(1, 20),
                        dropouts=dropouts,
                    )
                    tables += [
                        latency.latency_table(lat, timed.names),
                        latency.fan_out_table(lat, timed.names),
                    ]
                    data["latency"] = {
                        "paths": {k: asdict(v) for k, v in lat.paths.items()},
                        "runs": {
                            "|".join(map(str, k)): v.as_dict() for k, v in lat.spreads.items()
                        },
                    }
            if "throughput" in sections or "history" in sections:
                zero = await _systems(context, 0.0, "zero")
            if "throughput" in sections:
                with _timed("throughput", timings):
                    thr = await throughput.measure(
                        zero.all,
                        plans["research"],
                        research,
                        repeats=args.repeats,
                        concurrencies=(1, 10, 50),
                        server_pid=where.server_pid,
                        dropouts=dropouts,
                    )
                    tables.append(throughput.throughput_table(thr, zero.names))
                    data["throughput"] = _by_key(thr.spreads)
                    data["cpu_ms_per_run"] = {
                        name: {"bench_process": thr.cpu_ms[name].as_dict(), "server": cpu.as_dict()}
                        for name, cpu in thr.server_cpu_ms.items()
                    }
            if "recovery" in sections and server is None:
                context.skip("recovery", "it restarts the server: only with --server dev")
            if "recovery" in sections and server is not None:
                with _timed("recovery", timings):
                    rec = await recovery.measure(
                        server,
                        research,
                        task_of("research"),
                        scale=args.scale,
                        repeats=args.repeats,
                        folder=folder,
                    )
                    tables.append(recovery.recovery_table(rec))
                    data["recovery"] = {
                        "undisturbed": {k: v.as_dict() for k, v in rec.undisturbed.items()},
                        "disturbed": {k: v.as_dict() for k, v in rec.disturbed.items()},
                        "after_fault": {k: v.as_dict() for k, v in rec.after_fault.items()},
                    }
            if "rollback" in sections and server is None:
                context.skip("rollback", "it starts its own worker process: only with --server dev")
            if "rollback" in sections and server is not None:
                with _timed("rollback", timings):
                    back = await rollback_timing.measure(
                        server.client,
                        f"127.0.0.1:{server.port}",
                        folder,
                        repeats=args.repeats,
                    )
                    tables.append(rollback_timing.rollback_table(back))
                    data["rollback"] = {
                        "command_to_first_run_s": back.to_old.as_dict(),
                        "command_wall_s": back.command_wall_s.as_dict(),
                        "runs_started": back.runs_started,
                    }
            if "history" in sections:
                with _timed("history", timings):
                    rows = await history.measure(zero.project, zero.bare, catalog, plans)
                    tables.append(history.history_table(rows))
                    data["history"] = [asdict(r) for r in rows]
            if "tools" in sections:
                with _timed("tools", timings):
                    tool_figures = await tools.measure(where.client, catalog, repeats=args.repeats)
                    tables.append(tools.tools_table(tool_figures))
                    data["tools"] = {
                        "own_ms": {k: v.as_dict() for k, v in tool_figures.own_ms.items()},
                        "step_ms": {k: v.as_dict() for k, v in tool_figures.step_ms.items()},
                        "events_per_call": tool_figures.events,
                        "own_bytes": tool_figures.own_bytes,
                        "big_own_bytes": tool_figures.big_own_bytes,
                        "big_step_bytes": tool_figures.big_step_bytes,
                        "step_bytes": tool_figures.step_bytes,
                    }
            if "streams" in sections:
                with _timed("streams", timings):
                    stream_figures = await streams.measure(where.client, catalog)
                    tables.append(streams.streams_table(stream_figures))
                    for what, why in stream_figures.skipped.items():
                        context.skip(f"streams, {what}", why)
                    data["streams"] = {
                        "tokens": stream_figures.tokens,
                        "history_events_bytes": stream_figures.history,
                        "log_entries": stream_figures.log_entries,
                        "log_text_deltas": stream_figures.log_deltas,
                        "log_sealed_bytes": stream_figures.log_bytes,
                        "first_token_ms": {
                            f"{log_name}|{level}": asdict(q)
                            for (log_name, level), q in stream_figures.first_token_ms.items()
                        },
                        "skipped": stream_figures.skipped,
                    }
            if "cost" in sections:
                with _timed("cost", timings):
                    figures, facts = await cost.measure(
                        where.client,
                        provider(0.0),
                        catalog,
                        total=args.cost_requests,
                        repeat_share=args.repeat_share,
                    )
                    tables.append(cost.cost_table(figures, facts))
                    data["cost"] = {"rows": [asdict(r) for r in figures], **facts}
                    cost_rows, cost_facts = figures, facts
            if "controls" in sections:
                with _timed("controls", timings):
                    ctl = await asyncio.to_thread(
                        controls.measure,
                        context.postgres_url,
                        postgres.reason if isinstance(postgres, Unavailable) else None,
                        repeats=args.repeats,
                    )
                    tables.append(controls.controls_table(ctl))
                    data["controls"] = {
                        "pairs_per_s": {k: v.as_dict() for k, v in ctl.spreads.items()},
                        "skipped": ctl.skipped,
                        "processes": ctl.processes,
                        "in_flight_per_process": ctl.concurrency,
                        "entity_baseline": asdict(controls.ENTITY_BASELINE),
                    }
            if "semantic" in sections:
                with _timed("semantic", timings):
                    # Figures only, no target: how a lookup's cost grows with a scope.
                    lookup = await semantic_cache.measure_lookup(
                        workdir=context.folder / "semantic", postgres_url=context.postgres_url
                    )
                    tables.append(lookup.table())
                    data["semantic"] = lookup.model_dump(mode="json")
    found = [
        *targets.throughput_targets(thr),
        *targets.latency_targets(lat),
        *targets.peer_latency_targets(lat),
        targets.cpu_target(thr),
        targets.peer_cpu_target(thr),
        targets.rollback_target(back),
        *targets.history_targets(rows),
        *tools.tools_targets(tool_figures),
        *streams.streams_targets(stream_figures),
        *targets.controls_targets(ctl, controls.ENTITY_BASELINE),
        *cost.cost_targets(cost_rows, cost_facts),
    ]
    tables.append(targets.targets_table(found))
    data["targets"] = [asdict(t) | {"verdict": t.verdict} for t in found]
    skipped |= {name: f"dropped: {why}" for name, why in dropouts.reasons.items()}
    data["skipped"] = skipped
    return {
        "tables": tables,
        "data": data,
        "timings": timings,
        "latency": lat,
        "throughput": thr,
        "skipped": skipped,
    }


def _server_mode(args: argparse.Namespace) -> str:
    if args.server == "configured":
        return "the configured cluster (Temporal client configuration: TEMPORAL_*, profiles)"
    return SERVER_MODE


def header(args: argparse.Namespace) -> list[str]:
    latencies = ", ".join(f"{agent} {seconds}s" for agent, seconds in LATENCY_TABLE.items())
    return [
        f"Durable Agent Teams benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {machine(_server_mode(args)).line()}",
        f"model: simulated provider, latencies {latencies} (code reviewer 2.4s, merger 1.5s) "
        f"x{args.scale} latency scale",
        f"repeats: {args.repeats} after a warm-up; figures are median (min–max)",
        f"{PROJECT}: every control on: {controls_line()}",
    ]


def write(args: argparse.Namespace, report: dict[str, Any], lines: list[str]) -> None:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    tables: list[Table] = report["tables"]
    markdown = "\n\n".join(
        ["\n".join(f"{line}  " for line in lines), *(t.markdown() for t in tables)]
    )
    (out / "results.md").write_text(markdown + "\n", encoding="utf-8")
    data = {"header": lines, "timings_s": report["timings"], **report["data"]}
    (out / "results.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if report["latency"] is not None and report["throughput"] is not None:
        chart.draw(out / "chart.png", report["latency"], report["throughput"], SYSTEMS, lines[1])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    lines = header(args)
    print("\n".join(lines), flush=True)
    stderr_log = Path(tempfile.gettempdir()) / f"bench-stderr-{os.getpid()}.log"
    redirect_stderr(stderr_log)
    began = time.perf_counter()
    try:
        report = asyncio.run(run(args))
    except Exception as err:
        # stderr is the SDK's log now: say on stdout that (and where) the bench broke.
        print(f"\nbench failed: {type(err).__name__}: {err}", flush=True)
        print(f"the traceback is in {stderr_log}", flush=True)
        raise
    report["tables"].append(strain_table(stderr_log))
    lines += [f"skipped: {what}: {why}" for what, why in report["skipped"].items()]
    print()
    for table in report["tables"]:
        print(table.text(), end="\n\n")
    total = time.perf_counter() - began
    sections = ", ".join(f"{k} {v:.0f}s" for k, v in report["timings"].items())
    lines.append(f"bench time: {total:.0f}s ({sections})")
    write(args, report, lines)
    print(lines[-1])
    charted = report["latency"] is not None and report["throughput"] is not None
    print(f"wrote {args.out / 'results.md'}, results.json" + (" and chart.png" if charted else ""))
    print(f"the SDK's log of the run: {stderr_log}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # The SDK's runtime threads can abort interpreter exit; everything is shut down.
    os._exit(code)
