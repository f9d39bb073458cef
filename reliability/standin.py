"""The Messages API the ``anthropic`` workers call: the tests' stand-in, failing on plan.

The loopback stand-in of the test suite (``tests/messages_standin.py``) is used
as it is: the real ``anthropic`` SDK in the workers talks to it over HTTP. It is
imported by name (:func:`standin_module`), not statically, so that ``mypy
--strict`` on this package does not check a test module held to the tests'
rules; everything it hands over is typed at this boundary. The
fault plan is a script of steps in front of its default answers, one per
fault kind, whose matchers share one draw per request
(:meth:`reliability.faults.FaultPlan.draw`); a last step paces every answer's
stream (so a killed worker can die mid-stream, as it would on the real API).

The stand-in records every request and the usage of every answer it gave,
and whether it wrote the whole answer: that is the provider's own count of
what it answered and billed (a whole answer's usage; a stream its killed client
left mid-way, the prompt and the output written by then).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import Any

from money.pricing import PriceTable, TokenUsage
from reliability.faults import RETRY_AFTER_S, ChaosFault, FaultPlan
from reliability.tally import ProviderTally, billed_micro

Request = dict[str, Any]
"""A request body as the stand-in hands it to matchers and answers."""
Matcher = Callable[[Request], bool]

STANDIN_MODULE = "tests.messages_standin"
UNLIMITED = 10**12
"""``times`` of a step that never runs out."""
CHUNK_S_PER_SCALE = 0.25
"""Seconds between streamed chunks at latency scale 1 (a text answer is ~15 chunks)."""


def standin_module() -> ModuleType:
    """The test suite's stand-in module (run from a checkout: ``tests`` is not installed)."""
    return importlib.import_module(STANDIN_MODULE)


def step(**fields: Any) -> Any:
    """A stand-in ``Step`` (a scripted reply for the requests its matcher accepts)."""
    return standin_module().Step(**fields)


def any_request(_: Request) -> bool:
    """A matcher accepting every request."""
    return True


def call_key(request: Request) -> str:
    """What identifies one call across its attempts: the request, minus ``stream``."""
    body = {key: value for key, value in request.items() if key != "stream"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class FaultDraws:
    """One draw per request, shared by the matchers of every fault step.

    The stand-in asks its steps' matchers in order, under its lock, for each
    request; the first to match is used. Each matcher here answers "is this
    request's fault mine?", so at most one does.
    """

    def __init__(self, plan: FaultPlan) -> None:
        self._plan = plan
        self._sent: Counter[str] = Counter()
        self._last: tuple[Request, ChaosFault | None] | None = None
        self.injected: Counter[ChaosFault] = Counter()

    def fault_of(self, request: Request) -> ChaosFault | None:
        """The fault drawn for ``request`` (drawn on the first question about it)."""
        if self._last is not None and self._last[0] is request:
            return self._last[1]
        key = call_key(request)
        fault = self._plan.draw(key, self._sent[key], structured=bool(request.get("tools")))
        self._sent[key] += 1
        self._last = (request, fault)
        if fault is not None:
            self.injected[fault] += 1
        return fault

    def matcher(self, kind: ChaosFault) -> Matcher:
        """A step matcher: whether ``kind`` is this request's fault."""
        return lambda request: self.fault_of(request) is kind


def fault_step(kind: ChaosFault, draws: FaultDraws, *, timeout_s: float) -> Any:
    """The stand-in step injecting ``kind`` (``timeout_s``: longer than any request timeout)."""
    match = draws.matcher(kind)
    if kind is ChaosFault.RATE_LIMIT:
        return step(
            match=match,
            status=429,
            error_type="rate_limit_error",
            message="chaos: rate limit exceeded",
            headers={"retry-after": f"{RETRY_AFTER_S:g}"},
            times=UNLIMITED,
        )
    if kind is ChaosFault.OVERLOADED:
        return step(
            match=match, status=529, error_type="overloaded_error", message="chaos", times=UNLIMITED
        )
    if kind is ChaosFault.SERVER_ERROR:
        return step(
            match=match, status=500, error_type="api_error", message="chaos", times=UNLIMITED
        )
    if kind is ChaosFault.CONNECTION_RESET:
        return step(match=match, reset=True, times=UNLIMITED)
    if kind is ChaosFault.TIMEOUT:
        # Silent until long after the client gave up; then an error, never an answer.
        return step(
            match=match,
            delay_s=timeout_s,
            status=504,
            error_type="timeout_error",
            message="chaos: no answer",
            times=UNLIMITED,
        )
    return step(match=match, answer=malformed_answer, times=UNLIMITED)


def malformed_answer(request: Request) -> dict[str, Any]:
    """A forced tool call whose input fails validation (the simulated provider's kind)."""
    tool = request["tools"][0]["name"]
    broken = {"score": "high", "passed": "perhaps"} if tool == "review_verdict" else {"route": 7}
    block = {"type": "tool_use", "id": "toolu_chaos", "name": tool, "input": broken}
    return {"content": [block], "stop_reason": "tool_use"}


class FaultyMessagesAPI:
    """The stand-in with a fault plan in front; :meth:`tally` counts what it answered."""

    def __init__(self, plan: FaultPlan, *, latency_scale: float, timeout_s: float) -> None:
        self.draws = FaultDraws(plan)
        self.standin: Any = standin_module().MessagesStandIn()
        steps = [fault_step(kind, self.draws, timeout_s=timeout_s) for kind in plan.kinds]
        chunk_s = CHUNK_S_PER_SCALE * latency_scale
        if chunk_s > 0:
            steps.append(step(match=any_request, chunk_delay_s=chunk_s, times=UNLIMITED))
        self.standin.script(*steps)

    def start(self) -> FaultyMessagesAPI:
        """Listen on a free loopback port."""
        self.standin.start()
        return self

    def stop(self) -> None:
        """Stop listening (requests still sleeping in a timeout fault are abandoned)."""
        self.standin.stop()

    @property
    def url(self) -> str:
        """The base URL the workers' ``ANTHROPIC_BASE_URL`` points at."""
        return str(self.standin.url)

    def tally(self, prices: PriceTable) -> ProviderTally:
        """Answers given (by call), what they were billed at ``prices``, faults injected."""
        records = [record for record in self.standin.messages() if record.usage is not None]
        bills = [
            (
                record.delivered,
                billed_micro(prices, str(record.body["model"]), TokenUsage.model_validate(billed)),
            )
            for record in records
            if (billed := record.billed) is not None
        ]
        cut = [micro for delivered, micro in bills if not delivered]
        return ProviderTally(
            provider="anthropic",
            answers=dict(Counter(call_key(record.body) for record in records)),
            faults={kind.value: count for kind, count in self.draws.injected.items()},
            delivered=len(bills) - len(cut),
            cut_short=len(cut),
            billed_micro=sum(micro for _, micro in bills),
            cut_short_micro=sum(cut),
        )
