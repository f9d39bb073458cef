"""The suite, phase by phase: a no-fault baseline, then the chaos (or the soak).

Each phase has worker pools of its own (one per provider, on its own task
queue, started with the phase's fault plan in their environment) and, for the
``anthropic`` provider, a Messages API stand-in of its own. Runs start at a
steady rate; the approver approves what waits; in the chaos phase the
disruptor kills workers and restarts the server while the runs are started.
Both phases share the dev server, the controls store (its ledgers are the
suite's alone) and the simulated provider's journal.

Nothing outside the suite's folder is touched: the server, the workers and the
stand-in listen on free loopback ports, and only processes the suite started
are stopped or killed, by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client

from reliability.approver import Approver
from reliability.disruptions import Disruption, Disruptor
from reliability.faults import FaultPlan, longest_attempt_s, team_agents
from reliability.figures import ChaosFigures, PaidTwice, paid_twice
from reliability.journal import read_journal
from reliability.ledger_totals import charged_attempts, days_between, ledger_total
from reliability.memory import WARMUP_SHARE, MemorySample, MemoryTrend, memory_trend, rss_mib
from reliability.run_driver import RunRecord, drive, patiently
from reliability.server import ChaosServer
from reliability.standin import FaultyMessagesAPI
from reliability.suite_settings import ChaosSettings
from reliability.tally import ProviderTally
from reliability.workers import WorkerPool
from reliability.workload import TEAMS, RunPlan, plan_runs
from teams.catalog import Catalog

STRIPPED_PREFIXES = ("ANTHROPIC_", "AGENT_TEAMS_", "SIM_", "TEMPORAL_", "OTEL_", "CHAOS_", "SOAK")
"""The caller's settings of these kinds never reach the suite's workers."""
STANDIN_KEY = "sk-ant-chaos-standin"
"""What the workers authenticate to the loopback stand-in with (not a real key)."""
SAMPLE_EVERY_S = 2.0
PROGRESS_EVERY_S = 10.0
TIMEOUT_MARGIN_S = 10.0
"""A stand-in timeout fault stays silent this much longer than any request timeout."""


@dataclass
class PhaseOutcome:
    """What one phase did."""

    records: list[RunRecord] = field(default_factory=list)
    standin: ProviderTally | None = None
    disruptions: list[Disruption] = field(default_factory=list)
    approvals: int = 0
    worker_exits: list[str] = field(default_factory=list)
    """Workers that exited on their own (and were started again)."""
    diagnoses: dict[str, str] = field(default_factory=dict)
    """Stuck runs: workflow id → what they were waiting for."""


@dataclass(frozen=True)
class ChaosReport:
    """The suite's outcome: its settings, when and how long, and the figures."""

    settings: ChaosSettings
    began_at: datetime
    duration_s: float
    figures: ChaosFigures
    approvals: int
    diagnoses: dict[str, str]
    folder: Path


class Suite:
    """One invocation of the suite, in ``folder`` (logs, server and store files)."""

    def __init__(
        self, settings: ChaosSettings, folder: Path, *, say: Callable[[str], None] = print
    ) -> None:
        self.settings = settings
        self.folder = folder
        self.say = say
        self.catalog = Catalog.shipped()
        self.server = ChaosServer(folder)
        self.journal = folder / "simulated-journal.jsonl"
        self.controls = folder / "controls.sqlite"
        self.began = time.monotonic()
        self.samples: list[MemorySample] = []
        self.ended = 0
        self.window_began_s = 0.0
        """When the latest phase began starting runs, in seconds since the suite began."""

    async def run(self) -> ChaosReport:
        """Both phases, then the figures; everything started is stopped on the way out."""
        began_at = datetime.now(UTC)
        client = await self.server.start()
        try:
            baseline = PhaseOutcome()
            if self.settings.baseline_runs:
                quiet = FaultPlan(0.0, self.settings.fault_kinds, self.settings.seed)
                baseline = await self.phase(client, "baseline", self.settings.baseline_runs, quiet)
            chaos_plan = FaultPlan(
                self.settings.fault_share, self.settings.fault_kinds, self.settings.seed
            )
            phase = "soak" if self.settings.soak_mode else "chaos"
            chaos = await self.phase(client, phase, self.settings.chaos_runs, chaos_plan)
        finally:
            self.server.stop()
        days = days_between(began_at.date(), datetime.now(UTC).date())
        records = [*baseline.records, *chaos.records]
        figures = ChaosFigures(
            chaos=chaos.records,
            baseline=baseline.records,
            paid=self._paid(records, [baseline, chaos]),
            tallies=self._tallies([baseline, chaos]),
            ledger=await ledger_total(self.controls, days),
            disruptions=chaos.disruptions,
            worker_exits=baseline.worker_exits + chaos.worker_exits,
            memory=self._memory(),
            charged=await charged_attempts(self.controls, records, self.settings.providers),
        )
        return ChaosReport(
            settings=self.settings,
            began_at=began_at,
            duration_s=time.monotonic() - self.began,
            figures=figures,
            approvals=baseline.approvals + chaos.approvals,
            diagnoses=baseline.diagnoses | chaos.diagnoses,
            folder=self.folder,
        )

    async def phase(self, client: Client, name: str, count: int, plan: FaultPlan) -> PhaseOutcome:
        """Start ``count`` runs at the steady rate under ``plan`` (and the disruptions)."""
        standin = self._standin(plan) if "anthropic" in self.settings.providers else None
        queues: dict[str, str] = {p: f"chaos-{name}-{p}" for p in self.settings.providers}
        pools = [self._pool(name, p, queues[p], plan, standin) for p in self.settings.providers]
        disruptor = self._disruptor(name, pools, count)
        approver = Approver(client)
        background: list[asyncio.Task[None]] = []
        try:
            self.say(f"{name}: starting {len(pools) * self.settings.workers} workers")
            await asyncio.gather(*(pool.start() for pool in pools))
            background += [
                asyncio.create_task(approver.run()),
                asyncio.create_task(self._sample_memory(pools)),
                *(asyncio.create_task(pool.supervise()) for pool in pools),
            ]
            plans = plan_runs(count, phase=name, providers=self.settings.providers, queues=queues)
            records = await self._runs(client, name, plans, disruptor, background)
            diagnoses = {
                r.plan.workflow_id: await _waiting_for(client, r.plan.workflow_id)
                for r in records
                if r.stuck
            }
        finally:
            await _stop(background, pools, standin)
        return PhaseOutcome(
            records=records,
            standin=standin.tally(self.catalog.prices) if standin is not None else None,
            disruptions=disruptor.done,
            approvals=approver.approvals,
            worker_exits=[exit for pool in pools for exit in pool.exits],
            diagnoses=diagnoses,
        )

    def _pool(
        self,
        phase: str,
        provider: str,
        queue: str,
        plan: FaultPlan,
        standin: FaultyMessagesAPI | None,
    ) -> WorkerPool:
        environ = self.worker_environ(provider, queue, plan, standin)
        return WorkerPool(provider, environ, self.folder, size=self.settings.workers, phase=phase)

    def _disruptor(self, phase: str, pools: Sequence[WorkerPool], count: int) -> Disruptor:
        """The phase's kills and restarts: none in the baseline (nor, by settings, a soak)."""
        calm = phase == "baseline"
        return Disruptor(
            pools,
            self.server,
            kills=0 if calm else self.settings.planned_kills,
            restarts=0 if calm else self.settings.planned_restarts,
            window_s=count / self.settings.rate,
            seed=self.settings.seed,
        )

    async def _runs(
        self,
        client: Client,
        name: str,
        plans: Sequence[RunPlan],
        disruptor: Disruptor,
        background: list[asyncio.Task[None]],
    ) -> list[RunRecord]:
        """Start the runs at the rate while the disruptor works; every run's record."""
        began = time.monotonic()
        self.window_began_s = began - self.began
        disrupting = asyncio.create_task(disruptor.run(began))
        background.append(disrupting)
        tasks: list[asyncio.Task[RunRecord]] = []
        background.append(asyncio.create_task(self._progress(name, tasks, len(plans), disruptor)))
        for number, plan in enumerate(plans):
            await asyncio.sleep(max(0.0, began + number / self.settings.rate - time.monotonic()))
            task = asyncio.create_task(
                drive(
                    client,
                    plan,
                    began=self.began,
                    stuck_after_s=self.settings.stuck_after.total_seconds(),
                )
            )
            task.add_done_callback(self._count_end)
            tasks.append(task)
        records = await asyncio.gather(*tasks)
        await disrupting
        return list(records)

    def _count_end(self, _task: asyncio.Task[RunRecord]) -> None:
        self.ended += 1

    def worker_environ(
        self, provider: str, queue: str, plan: FaultPlan, standin: FaultyMessagesAPI | None
    ) -> dict[str, str]:
        """A worker's environment, as production configures one (plus the fault plan)."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_PREFIXES)}
        environ |= {
            "TEMPORAL_ADDRESS": self.server.address,
            "TEMPORAL_NAMESPACE": "default",
            "AGENT_TEAMS_TASK_QUEUE": queue,
            "AGENT_TEAMS_PROVIDER": provider,
            # Shared by every worker of the suite: the fleet's daily ledgers.
            "AGENT_TEAMS_CONTROLS_URL": f"sqlite:///{self.controls}",
            # Every answer from the model: a cache hit would hide a call.
            "AGENT_TEAMS_CACHE_URL": "off",
            "AGENT_TEAMS_LOG_FORMAT": "json",
        }
        if provider == "simulated":
            rules = plan.simulated_rules(team_agents(self.catalog, TEAMS))
            environ |= {
                "SIM_LATENCY_SCALE": str(self.settings.latency_scale),
                "SIM_FAULTS": json.dumps([rule.model_dump(mode="json") for rule in rules]),
                "SIM_SEED": self.settings.seed,
                "SIM_JOURNAL": str(self.journal),
            }
        elif standin is not None:
            environ |= {"ANTHROPIC_API_KEY": STANDIN_KEY, "ANTHROPIC_BASE_URL": standin.url}
        return environ

    def _standin(self, plan: FaultPlan) -> FaultyMessagesAPI:
        timeout_s = longest_attempt_s(self.catalog, TEAMS) + TIMEOUT_MARGIN_S
        return FaultyMessagesAPI(
            plan, latency_scale=self.settings.latency_scale, timeout_s=timeout_s
        ).start()

    async def _sample_memory(self, pools: Sequence[WorkerPool]) -> None:
        while True:
            at = time.monotonic() - self.began
            for pool in pools:
                for worker in pool.workers:
                    rss = rss_mib(worker.pid) if worker.alive else None
                    if rss is not None:
                        self.samples.append(MemorySample(at, worker.name, rss, self.ended))
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def _progress(
        self, name: str, tasks: Sequence[asyncio.Task[RunRecord]], count: int, disruptor: Disruptor
    ) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            done = sum(1 for t in tasks if t.done())
            self.say(
                f"{name}: {len(tasks)}/{count} started, {done} ended, "
                f"{disruptor.kills} kills, {disruptor.restarts} restarts"
            )

    def _tallies(self, phases: Sequence[PhaseOutcome]) -> list[ProviderTally]:
        tallies = []
        if "simulated" in self.settings.providers:
            tallies.append(read_journal(self.journal, self.catalog.prices))
        standins = [p.standin for p in phases if p.standin is not None]
        if standins:
            tallies.append(_merged(standins))
        return tallies

    def _paid(self, records: list[RunRecord], phases: Sequence[PhaseOutcome]) -> list[PaidTwice]:
        return [paid_twice(records, tally) for tally in self._tallies(phases)]

    def _memory(self) -> MemoryTrend | None:
        """The main phase's memory trend (in a soak: its steady window, after the warm-up)."""
        if not self.samples:
            return None
        start = self.window_began_s
        if not self.settings.soak_mode:
            return memory_trend(self.samples, since_s=start)
        window = self.settings.window_s
        return memory_trend(
            self.samples, since_s=start + WARMUP_SHARE * window, until_s=start + window
        )


async def _stop(
    background: Sequence[asyncio.Task[None]],
    pools: Sequence[WorkerPool],
    standin: FaultyMessagesAPI | None,
) -> None:
    """Cancel the phase's helpers, stop its workers (SIGTERM, in parallel) and stand-in."""
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    await asyncio.gather(*(asyncio.to_thread(pool.stop) for pool in pools))
    if standin is not None:
        standin.stop()


def _merged(tallies: Sequence[ProviderTally]) -> ProviderTally:
    """One provider's tallies of several phases (their calls never overlap)."""
    answers: dict[str, int] = {}
    faults: dict[str, int] = {}
    for tally in tallies:
        for key, count in tally.answers.items():
            answers[key] = answers.get(key, 0) + count
        for kind, count in tally.faults.items():
            faults[kind] = faults.get(kind, 0) + count
    return ProviderTally(
        provider=tallies[0].provider,
        answers=answers,
        faults=faults,
        delivered=sum(t.delivered for t in tallies),
        cut_short=sum(t.cut_short for t in tallies),
        billed_micro=sum(t.billed_micro for t in tallies),
        cut_short_micro=sum(t.cut_short_micro for t in tallies),
    )


async def _waiting_for(client: Client, workflow_id: str) -> str:
    """What a stuck run waits for: its pending activities, or its status."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(10):
            description = await patiently(client.get_workflow_handle(workflow_id).describe)
            pending = [
                f"{a.activity_type.name} attempt {a.attempt}: "
                + (a.last_failure.message or "no failure yet")
                for a in description.raw_description.pending_activities
            ]
            return "; ".join(pending) or f"no pending activity; status {description.status}"
    return "could not be described"
