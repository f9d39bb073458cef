"""The workflow sandbox our workers and replayers run, and one sandbox entry per batch saved.

:func:`workflow_runner` is the sandbox configuration: the SDK's default
restrictions with our statically checked deterministic modules passed through
(re-importing them per run is slow, and their pydantic classes must be the
worker's own objects).

**Why a runner of our own.** Before the SDK hands a batch of payloads to the
codec (decoding an activation, encoding a completion: three passes each way),
it asks the workflow instance for the serialization context of the command the
batch belongs to, and a sandboxed instance answers that only from inside the
sandbox: swapping ``sys.modules``, ``__import__`` and every restricted builtin
in and out. That was 63 of the 88 sandbox entries of a research run and about
a quarter of the worker's CPU (``python -m bench.profile``, issue 26), spent to
compute a value nobody reads when the codec ignores context.

**Why no builtins restriction.** The SDK's default restrictions forbid
``open``, ``input`` and ``breakpoint`` at run time, and to enforce that it swaps
those builtins, with ``isinstance`` and ``issubclass`` (wrapped to unwrap its
proxies), for thread-local wrappers on every sandbox entry: about a thousand
wrapped ``isinstance`` calls per research run, and a tenth of the worker's CPU
under ``python -m bench.profile`` (issue 26). Our workflow code is passed
through, so those wrappers never see a proxy of ours, and the calls they guard
are refused statically in ``workflows/`` instead (ruff's banned-api and the I/O
builtins check of ``tests/test_determinism_check.py``). :data:`RESTRICTIONS`
is the default without its ``__builtins__`` entry; every other module
restriction stays.

The context of those passes reaches only the codec and external storage (the
payload converter runs inside the sandbox, with the workflow's own context,
untouched by this). So when the worker's codec ignores context (no codec, one
that is not ``WithSerializationContext``, or one whose ``with_context`` returns
itself) and no external storage is configured, :class:`CodecContextFreeRunner`
answers "no context" without entering the sandbox: the SDK then encodes with the
worker's converter, which is what the context would have given it anyway.
Every other call (activations, the deadlock detector's thread id, the info) goes
to the sandboxed instance unchanged; a codec that does use context keeps the
SDK's path (:func:`codec_ignores_context` is checked per worker).
"""

from __future__ import annotations

import dataclasses

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import (
    DataConverter,
    SerializationContext,
    StorageDriverStoreContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker._command_aware_visitor import CommandInfo  # the ABC's own annotation
from temporalio.worker.workflow_sandbox import (
    SandboxedWorkflowRunner,
    SandboxRestrictions,
)
from temporalio.workflow import Info

PASSTHROUGH_MODULES = (
    # Our contracts and pure helpers: deterministic, import-side-effect free,
    # and shared with the worker so pydantic classes are the same objects.
    "teams",
    # Moved out of teams/ (prices, budgets, gold sets, prompt rendering, metric
    # names, the error base): passed through as they were there. money.pricing
    # resolves its prices file at import, which the sandbox refuses.
    "errors",
    "evaluation",
    "fleet",
    "money",
    "prompting",
    "telemetry",
    "activities",
    "providers",
    "workflows",
    "security",
    # Third-party modules the contracts use; re-importing them per run is slow.
    # cryptography verifies approval signatures (deterministic, pure CPU).
    "cryptography",
    "pydantic",
    "pydantic_core",
    "annotated_types",
)


def _without_builtins(restrictions: SandboxRestrictions) -> SandboxRestrictions:
    """``restrictions`` without their run-time check of builtins (the module docstring says why)."""
    members = restrictions.invalid_module_members
    children = {name: m for name, m in members.children.items() if name != "__builtins__"}
    return dataclasses.replace(
        restrictions,
        invalid_module_members=dataclasses.replace(members, children=children),
    )


RESTRICTIONS: SandboxRestrictions = _without_builtins(
    SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
)
"""The sandbox's restrictions: the SDK's default, our modules passed through, builtins unwrapped."""

_PROBE = WorkflowSerializationContext(namespace="agent-teams-probe", workflow_id="probe")
"""A context to ask a codec whether it would change with one."""


def codec_ignores_context(converter: DataConverter) -> bool:
    """Whether the per-command context of codec passes cannot change ``converter``'s output.

    True with no external storage and a codec that is absent, not
    ``WithSerializationContext``, or returns itself from ``with_context``.
    """
    if converter.external_storage is not None:
        return False
    codec = converter.payload_codec
    if codec is None or not isinstance(codec, WithSerializationContext):
        return True
    return codec.with_context(_PROBE) is codec


def workflow_runner(converter: DataConverter | None = None) -> SandboxedWorkflowRunner:
    """The sandbox configuration shared by the worker and the replayer.

    With the ``converter`` the worker encodes with, and a codec that ignores
    context: :class:`CodecContextFreeRunner` (the same sandbox, fewer entries).
    """
    if converter is not None and codec_ignores_context(converter):
        return CodecContextFreeRunner(restrictions=RESTRICTIONS)
    return SandboxedWorkflowRunner(restrictions=RESTRICTIONS)


class CodecContextFreeRunner(SandboxedWorkflowRunner):
    """The SDK's sandbox, whose instances answer the codec's context question outside it.

    Only for a worker whose codec ignores context (:func:`codec_ignores_context`);
    the module docstring says why the answer is the same.
    """

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        """A sandboxed instance, wrapped (:class:`_CodecContextFreeInstance`)."""
        return _CodecContextFreeInstance(super().create_instance(det))


class _CodecContextFreeInstance(WorkflowInstance):
    """A sandboxed instance; the codec passes' context questions answered here, not in it."""

    def __init__(self, sandboxed: WorkflowInstance) -> None:
        self._sandboxed = sandboxed

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        """The sandboxed instance's activation, unchanged."""
        return self._sandboxed.activate(act)

    def get_serialization_context(
        self, command_info: CommandInfo | None
    ) -> SerializationContext | None:
        """No context: the codec ignores it, so the worker's converter is the right one."""
        return None

    def get_external_store_context(
        self, command_info: CommandInfo | None
    ) -> StorageDriverStoreContext:
        """No target: this runner is only used without external storage."""
        return StorageDriverStoreContext(target=None)

    def get_info(self) -> Info:
        """The sandboxed instance's info."""
        return self._sandboxed.get_info()

    def get_thread_id(self) -> int | None:
        """The sandboxed instance's thread (the deadlock detector reads its frames)."""
        return self._sandboxed.get_thread_id()
