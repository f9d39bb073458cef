"""The controls store in Redis: for fleets that already run one.

Needs the ``redis`` package (the ``redis`` extra). The target is **one
non-cluster Redis** (a primary, with or without replicas): the scripts derive
most of their keys from the prefix instead of declaring them in ``KEYS`` (a
settlement learns its call's day and tenant only from the call's hash; ``prune``
walks indexes), which a single server allows and a cluster would not.

The invariants of :mod:`stores.controls.contract`, and why they hold here:

- **Atomic.** Every operation, reads included, is one Lua script (registered
  once, run with ``EVALSHA``). Redis runs a script to completion before any
  other command, so two workers reserving the last dollar are serialized.
- **Idempotent by key.** A call is one hash (``call:<call key>``); a breaker's
  report ids are a sorted set; bucket take ids and run records are keys. Each
  script looks before it counts.
- **Reservations expire.** Every open call is listed in its day's sorted set
  (and its tenant-day's), scored by its expiry. What a scope holds is summed
  over the members scored *after* now, so an expired reservation holds nothing
  without anyone deleting it.
- **Settlement is per attempt.** The call's hash keeps what each attempt was
  charged (money, tokens, source) next to the call's sum; a settlement charges an
  attempt ``max(0, new - charged)`` of its own fields, then the cumulative floor
  above the sum, if any.
- **Spend never passes a limit through reservations.** ``reserve`` checks
  ``spent + held + amount <= limit`` for each limited scope inside its script.
- **Bounded.** ``prune`` drops what :class:`Retention` says, counting removals
  by the same kinds as the SQL backends. Call hashes, take ids, breaker report
  sets and per-day open sets also carry a TTL a day past their retention: a
  safety net if ``prune`` never runs, never a replacement for it.
- **The store's clock.** Each script reads ``redis.call('TIME')`` once; expiry,
  cool-downs, refills and timestamps all use it.

The semantics are those of :mod:`stores.controls.sql.operations` (the reference): the
same answers, alert wording, dedup and ordering. Where a rule of
:mod:`stores.controls.rules` has to run inside a script (alert wording, the
breaker's state machine, the bucket refill, the outlier median) it is ported
to Lua line by line, with the constants rendered from the Python ones. The
scripts are package files, ``lua/<name>.lua`` (one per script) and
``lua/lib/*.lua`` (the prelude every script starts with, and one library per
concern: budgets, breakers, run admission); :mod:`stores.controls.redis.scripts`
reads and assembles them, :mod:`stores.controls.redis.replies` reads their
answers back.

Money is integer micro-dollars. Lua numbers are doubles, exact for integers far
beyond any amount here; integers are written with ``%d`` and times with
``%.17g`` (which round-trips a double), never with Lua's lossy ``tostring``.

Keys, under ``<prefix>:``:

- ``call:<call key>``: hash ``day tenant agent reserved charged <token fields>
  counted open expires touched attempts`` (``tenant`` absent for no tenant,
  ``agent``, the agent's scope, absent for an agent without a daily cap), and
  per charged attempt ``a:<n>:charged a:<n>:<token field> a:<n>:source``.
- ``open:<day>``, ``open:<day>:<tenant>`` and ``open-agent:<day>:<agent scope>``:
  sorted sets of open call keys by expiry; ``index:open-calls`` (by expiry) and
  ``index:closed-calls`` (by last touch) list every call, for ``prune``.
- ``budget:<day>:<scope>``: hash ``limit spent settled``; ``scopes:<day>``: the
  scopes with a budget row or alerts that day; ``index:days``: days with any
  ledger data (lexically ordered).
- ``rows:<day>``: set of cost row ids (a JSON list of tenant, team, agent,
  model, prompt version); ``row:<day>:<id>``: hash of the row's counters.
- ``alerts:<day>:<scope>``: list of alerts (JSON), oldest first;
  ``alerted:<day>:<scope>``: the budget alert kinds raised (raised once a day).
- ``run:<run key>``: hash ``team day cost ran_to_end at``; ``team-runs:<team>``:
  the team's runs that ran to the end, by time; ``index:runs``: every run.
- ``breaker:<key>``: hash of the breaker's row and settings;
  ``transitions:<key>``: list (JSON) trimmed to :data:`TRANSITIONS_MEMORY` by
  ``prune``; ``reports:<key>``: report ids by time; ``index:breakers``.
- ``bucket:<name>``: hash ``level updated``; ``take:<request id>`` with
  ``index:takes`` (by time).
- Run-start admission: ``run-starts:<tenant>``, ``run-running:<tenant>``,
  ``run-slot:<run key>`` (see ``lua/lib/run_admission.lua``).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from contracts.ledger import Alert, LedgerSummary
from money.pricing import TOKEN_FIELDS, TokenUsage
from stores.controls import rules
from stores.controls.contract import (
    DEFAULT_RETENTION,
    AdmitAnswer,
    AdmitRequest,
    BreakerAnswer,
    BucketTake,
    CallCharges,
    ControlsUnavailableError,
    PruneReport,
    Reservation,
    ReserveAnswer,
    Retention,
    RunRecord,
    RunStart,
    RunStartAnswer,
    SettleAnswer,
    Settlement,
    TakeAnswer,
)
from stores.controls.redis.replies import (
    breaker_request,
    read_alert,
    read_breaker_answer,
    read_call_charges,
    read_cost_rows,
    read_pairs,
    read_stored_alert,
    read_time,
    read_transition,
)
from stores.controls.redis.scripts import scripts
from teams.spec.breakers import BreakerSettings, BreakerStatus

KEY_PREFIX = "agent-teams:controls"
TIMEOUT_S = 5.0
"""Connect and command timeout."""
SAFETY_TTL_S = 86_400.0
"""TTLs outlast what retention keeps by this much: they back ``prune`` up, never replace it."""


def redacted(url: str) -> str:
    """``url`` with its password (in the user part or the query) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is not None:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}:***@{hostport}")
    if parts.query:
        query = [
            (name, "***" if name.lower() == "password" else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


class RedisControls:
    """A :class:`stores.controls.contract.ControlsStore` in one Redis (see module doc)."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = KEY_PREFIX,
        retention: Retention = DEFAULT_RETENTION,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        import redis.asyncio  # optional dependency: imported only when configured
        from redis import exceptions
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.location = redacted(url)
        self._prefix = prefix
        self._retention = retention
        # One immediate retry on a dropped connection (a pooled one Redis closed), none on
        # a timeout: an outage is reported within about one timeout.
        self._redis: Any = redis.asyncio.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1, supported_errors=(exceptions.ConnectionError,)),
        )
        self._scripts: dict[str, Any] = {
            name: self._redis.register_script(source) for name, source in scripts().items()
        }
        self._response_error: type[Exception] = exceptions.ResponseError
        # Unreachable, timed out, loading, a replica or out of memory: nothing can be done.
        self._outages: tuple[type[Exception], ...] = (
            exceptions.ConnectionError,
            exceptions.TimeoutError,
            exceptions.ReadOnlyError,
            exceptions.OutOfMemoryError,
            exceptions.MasterDownError,
            OSError,
        )
        self._call_keep_s = (
            max(retention.finished_calls_s, retention.expired_grace_s) + SAFETY_TTL_S
        )

    async def _run(self, script: str, request: dict[str, Any]) -> Any:
        """Run one script on ``request`` (``None`` fields left out: nil in Lua)."""
        payload = json.dumps(
            {name: value for name, value in request.items() if value is not None},
            ensure_ascii=False,
        )
        try:
            return await self._scripts[script](args=[self._prefix, payload])
        except self._outages as err:
            raise ControlsUnavailableError(f"redis controls store {self.location}: {err}") from err
        except self._response_error as err:
            if str(err).startswith("BUSY"):  # another script has held the server too long
                raise ControlsUnavailableError(
                    f"redis controls store {self.location}: {err}"
                ) from err
            raise

    async def admit(self, request: AdmitRequest) -> AdmitAnswer:
        """See :class:`ControlsStore`.

        Here the steps are separate scripts, each atomic, run in order; the first
        refusal stops them, as in one transaction. Between two steps another
        call may act, which changes no guarantee: a probe lease or a hold left
        by a step whose call then stops expires on its own.
        """
        breakers = [
            await self.breaker_admit(check.key, request.call_key, check.settings)
            for check in request.breakers
        ]
        if not all(answer.allowed for answer in breakers):
            return AdmitAnswer(refused_by="breaker", breakers=breakers)
        reservation = (
            await self.reserve(request.reservation) if request.reservation is not None else None
        )
        if reservation is not None and not reservation.granted:
            return AdmitAnswer(refused_by="budget", breakers=breakers, reservation=reservation)
        admitted = AdmitAnswer(breakers=breakers, reservation=reservation)
        for index, bucket in enumerate(request.takes):
            answer = await self.take(bucket)
            if not answer.granted:
                return admitted.refused_at_rate(index, answer)
        return admitted

    async def reserve(self, reservation: Reservation) -> ReserveAnswer:
        """See :class:`ControlsStore`."""
        granted, scope, reason, left, alerts, shed = await self._run(
            "reserve", reservation.model_dump() | {"call_keep_s": self._call_keep_s}
        )
        return ReserveAnswer(
            granted=bool(granted),
            refused_scope=scope,
            reason=reason,
            left_micro=read_pairs(left),
            alerts=[read_alert(a) for a in alerts],
            shed=bool(shed),
        )

    async def settle(self, settlement: Settlement) -> SettleAnswer:
        """See :class:`ControlsStore`."""
        request = settlement.model_dump(exclude={"key", "usage", "reports", "attempts"})
        request |= settlement.key.model_dump(exclude={"tenant"})
        request |= settlement.usage.model_dump(include=set(TOKEN_FIELDS))
        request["attempts"] = [
            charge.model_dump(mode="json") for charge in rules.charged_attempts(settlement.attempts)
        ]
        request["call_keep_s"] = self._call_keep_s
        charged, total, left, alerts, tokens, attempts = await self._run("settle", request)
        # Each report is its own script, after the charge (idempotent by call key).
        reports = [
            await self.breaker_report(
                report.key, settlement.call_key, report.success, report.settings
            )
            for report in settlement.reports
        ]
        return SettleAnswer(
            charged_micro=int(charged),
            total_micro=int(total),
            usage=TokenUsage(
                **{field: int(n) for field, n in zip(TOKEN_FIELDS, tokens, strict=True)}
            ),
            attempts=int(attempts),
            left_micro=read_pairs(left),
            alerts=[read_alert(a) for a in alerts],
            reports=reports,
        )

    async def call_charges(self, call_key: str) -> CallCharges | None:
        """See :class:`ControlsStore`."""
        return read_call_charges(call_key, await self._run("call_charges", {"call_key": call_key}))

    async def release(self, call_key: str) -> bool:
        """See :class:`ControlsStore`."""
        request = {"call_key": call_key, "call_keep_s": self._call_keep_s}
        return bool(await self._run("release", request))

    async def breaker_admit(
        self, key: str, request_id: str, settings: BreakerSettings
    ) -> BreakerAnswer:
        """See :class:`ControlsStore`."""
        reply = await self._run("breaker_admit", breaker_request(key, request_id, settings))
        return read_breaker_answer(reply)

    async def breaker_report(
        self, key: str, request_id: str, success: bool, settings: BreakerSettings
    ) -> BreakerAnswer:
        """See :class:`ControlsStore`."""
        request = breaker_request(key, request_id, settings) | {
            "success": success,
            "reports_keep_s": self._retention.reports_s + SAFETY_TTL_S,
        }
        return read_breaker_answer(await self._run("breaker_report", request))

    async def take(self, take: BucketTake) -> TakeAnswer:
        """See :class:`ControlsStore`."""
        request = take.model_dump() | {"takes_keep_s": self._retention.takes_s + SAFETY_TTL_S}
        granted, level_text = await self._run("take", request)
        level = float(level_text)
        if granted:
            return TakeAnswer(granted=True, level=level)
        wanted = min(take.tokens, take.capacity)
        return TakeAnswer(
            granted=False, retry_after_s=(wanted - level) / take.per_second, level=level
        )

    async def record_run(self, record: RunRecord) -> list[Alert]:
        """See :class:`ControlsStore`."""
        return [read_alert(a) for a in await self._run("record_run", record.model_dump())]

    async def admit_run(self, start: RunStart) -> RunStartAnswer:
        """See :class:`ControlsStore`."""
        request = start.model_dump() | {"slot_keep_s": self._call_keep_s}
        admitted, fresh, refused_by, limit, starts, running, retry = await self._run(
            "admit_run", request
        )
        return RunStartAnswer(
            admitted=bool(admitted),
            fresh=bool(fresh),
            refused_by=refused_by,
            limit=int(limit) if limit is not None else None,
            starts_in_window=int(starts),
            running=int(running),
            retry_after_s=float(retry),
        )

    async def end_run(self, run_key: str, *, started: bool = True) -> bool:
        """See :class:`ControlsStore`."""
        request = {"run_key": run_key, "started": started, "slot_keep_s": self._call_keep_s}
        return bool(await self._run("end_run", request))

    async def ledger(self, scope: str, day: str) -> LedgerSummary | None:
        """See :class:`ControlsStore`."""
        reply = await self._run("ledger", {"scope": scope, "day": day})
        if reply is None:
            return None
        limit, spent, settled, held, count, alerts, rows = reply
        cost_rows = read_cost_rows(rows, rules.tenant_of(scope))
        agent = rules.agent_of(scope)
        if agent is not None:
            # An agent's scope counts that agent's calls only (every tenant's).
            cost_rows = [r for r in cost_rows if (r.key.team, r.key.agent) == agent]
        return LedgerSummary(
            scope=scope,
            day=day,
            limit_micro=int(limit) if limit is not None else None,
            spent_micro=int(spent),
            reserved_micro=int(held),
            open_reservations=int(count),
            settled_calls=int(settled),
            alerts=[read_stored_alert(scope, day, json.loads(a)) for a in alerts],
            rows=cost_rows,
        )

    async def breaker(self, key: str) -> BreakerStatus | None:
        """See :class:`ControlsStore`."""
        reply = await self._run("breaker", {"key": key})
        if reply is None:
            return None
        state, failures, opened_at, probe_id, deadline, threshold, cool_down, transitions = reply
        return BreakerStatus(
            key=key,
            state=state,
            consecutive_failures=int(failures),
            opened_at=read_time(opened_at),
            probe_id=probe_id,
            probe_deadline=read_time(deadline),
            settings=BreakerSettings(
                failure_threshold=int(threshold), cool_down=timedelta(seconds=float(cool_down))
            ),
            transitions=[read_transition(json.loads(t)) for t in transitions],
        )

    async def prune(self) -> PruneReport:
        """See :class:`ControlsStore`."""
        removed = read_pairs(await self._run("prune", self._retention.model_dump()))
        # Run-start admission prunes in a script of its own (each atomic; see admit).
        runs = await self._run("prune_run_admission", self._retention.model_dump())
        for kind, count in zip(("run_starts", "run_slots", "run_tenants"), runs, strict=True):
            if int(count):
                removed[kind] = int(count)
        return PruneReport(removed=removed)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
