"""What ``teamctl`` prints for the user to type next: commands that work as printed.

Invariants:

- ``teamctl`` is named as it was invoked (``.venv/bin/teamctl``, not a bare
  ``teamctl`` that is not on PATH), with the ``--address``/``--namespace`` it was
  given; the ``temporal`` CLI likewise (the one installed beside it, with the
  same flags after its arguments).
- A ``temporal`` command that writes to a run's history (start, signal, update)
  carries the codec flags whenever this client encrypts payloads, so what it
  writes is encrypted too. The codec server's address comes from the
  ``temporal`` CLI's own setting, ``TEMPORAL_CODEC_ENDPOINT``; where it is not
  set, no such command is printed, only ``teamctl``'s (which encrypts by itself).
- A secret never appears: ``--codec-auth`` refers to where the token is
  (``$TEMPORAL_CODEC_AUTH``, ``Bearer $AGENT_TEAMS_CODEC_TOKEN``, or ``Bearer
  $(cat .temporal/codec-token)`` after ``make demo``).
- Where the run's approvals must be signed, every decision hint carries
  ``--key`` (an unsigned decision would only be refused).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from contracts.approvals import PendingApproval
from contracts.run_interface import APPROVE_SIGNAL, REJECT_SIGNAL, REQUEST_CHANGES_SIGNAL

CODEC_ENDPOINT_ENV = "TEMPORAL_CODEC_ENDPOINT"
"""The ``temporal`` CLI's codec server setting (``--codec-endpoint``), read here too."""

CODEC_AUTH_ENV = "TEMPORAL_CODEC_AUTH"
"""The ``temporal`` CLI's codec authorization setting (``--codec-auth``)."""

TOKEN_ENV = "AGENT_TEAMS_CODEC_TOKEN"
"""The codec server's token variable (:data:`teamctl.codec_server.TOKEN_ENV`)."""

DEMO_TOKEN_FILE = Path(".temporal/codec-token")
"""The token file ``make demo`` makes (:data:`teamctl.demo.TOKEN_FILE`); ``make server``
and ``make worker`` use it."""

NO_CODEC_NOTE = (
    f"(the temporal CLI would write plaintext here: set {CODEC_ENDPOINT_ENV} to the codec "
    "server's URL to have its command printed)"
)


def invoked_as(
    argv0: str | None = None, *, cwd: Path | None = None, executable: str | None = None
) -> str:
    """How to call this ``teamctl`` again from the user's shell.

    As typed when it was a path (``.venv/bin/teamctl``); an absolute path as
    relative to the working folder when under it; ``teamctl`` beside the
    interpreter when this is not the ``teamctl`` script (``python -m teamctl.demo``).
    """
    raw = Path(sys.argv[0] if argv0 is None else argv0)
    if raw.name != "teamctl":
        raw = Path(executable or sys.executable).parent / "teamctl"
    if not raw.is_absolute():
        return shlex.quote(str(raw) if len(raw.parts) > 1 else raw.name)
    here = (cwd or Path.cwd()).resolve()
    try:
        return shlex.quote(str(raw.relative_to(here)))
    except ValueError:
        return shlex.quote(str(raw))


@dataclass(frozen=True)
class CodecFlags:
    """The ``temporal`` CLI flags that send payloads through the codec server (no secrets)."""

    endpoint: str
    auth: str
    """A shell expression for the header value: a variable, never the token itself."""

    def text(self) -> str:
        """`` --codec-endpoint URL --codec-auth "..."`` (with a leading space)."""
        return f' --codec-endpoint {shlex.quote(self.endpoint)} --codec-auth "{self.auth}"'


def codec_flags(environ: Mapping[str, str], *, cwd: Path | None = None) -> CodecFlags | None:
    """The codec flags ``environ`` configures (``TEMPORAL_CODEC_ENDPOINT``), or None.

    The token is referred to where it is: ``TEMPORAL_CODEC_AUTH``, else
    ``AGENT_TEAMS_CODEC_TOKEN``, else the token file ``make demo`` made in the
    working folder (read by the shell when the command runs, never here).
    """
    endpoint = environ.get(CODEC_ENDPOINT_ENV, "").strip()
    if not endpoint:
        return None
    if environ.get(CODEC_AUTH_ENV, "").strip():
        return CodecFlags(endpoint, f"${CODEC_AUTH_ENV}")
    if not environ.get(TOKEN_ENV, "").strip() and ((cwd or Path.cwd()) / DEMO_TOKEN_FILE).is_file():
        return CodecFlags(endpoint, f"Bearer $(cat {DEMO_TOKEN_FILE})")
    return CodecFlags(endpoint, f"Bearer ${TOKEN_ENV}")


@dataclass(frozen=True)
class Hints:
    """How to print the commands a user types next, for this invocation and deployment."""

    program: str
    """``teamctl`` as invoked, with its connection flags."""
    temporal: str
    """The ``temporal`` CLI installed beside it."""
    connection: str
    """The connection flags ``teamctl`` was given (`` --address X``), for ``temporal`` too."""
    encrypted: bool
    """This client encrypts payloads (it has the key ring)."""
    codec: CodecFlags | None

    @classmethod
    def of(
        cls,
        *,
        address: str | None = None,
        namespace: str | None = None,
        encrypted: bool,
        environ: Mapping[str, str] | None = None,
        argv0: str | None = None,
    ) -> Hints:
        """The hints of this process: its name, the connection flags it got, the codec."""
        program = invoked_as(argv0)
        connection = "".join(
            f" {flag} {shlex.quote(value)}"
            for flag, value in (("--address", address), ("--namespace", namespace))
            if value
        )
        return cls(
            program=program + connection,
            temporal=_temporal_beside(program),
            connection=connection,
            encrypted=encrypted,
            codec=codec_flags(os.environ if environ is None else environ),
        )

    def teamctl(self, arguments: str) -> str:
        """``teamctl ARGUMENTS`` as this user calls it."""
        return f"{self.program} {arguments}"

    def temporal_write(self, arguments: str) -> str | None:
        """``temporal ARGUMENTS`` for a command that writes to history, or None.

        With the codec flags when this client encrypts; None when it encrypts
        and no codec server is configured (the command would write plaintext).
        """
        command = f"{self.temporal} {arguments}{self.connection}"
        if not self.encrypted:
            return command
        if self.codec is None:
            return None
        return command + self.codec.text()


def _temporal_beside(program: str) -> str:
    """The ``temporal`` CLI installed beside ``teamctl`` (with the project), else ``temporal``."""
    folder = Path(shlex.split(program)[0]).parent
    beside = folder / "temporal"
    if str(folder) not in ("", ".") and beside.exists():
        return shlex.quote(str(beside))
    return "temporal"


def key_file_of(approver: str) -> str:
    """The private key file ``teamctl keys new --as APPROVER`` writes (in the folder given)."""
    return f"{approver}.key"


def approval_hint(
    workflow_id: str,
    pending: PendingApproval,
    waiting_for: str | None,
    hints: Hints,
    *,
    signed: bool,
) -> list[str]:
    """The lines ``teamctl run`` prints when a run waits for a decision: how to make it."""
    who = pending.approvers[0]
    key = f" --key {key_file_of(who)}" if signed else ""
    lines = [
        f"waiting for {waiting_for or 'approval'} (deadline {pending.deadline.isoformat()})",
        "  approve: "
        + hints.teamctl(f"approve {workflow_id} --as {who}{key} --comment 'looks good'"),
        "  reject:  " + hints.teamctl(f"reject {workflow_id} --as {who}{key} --comment 'why'"),
    ]
    if pending.changes_left:
        lines.append(
            "  changes: "
            + hints.teamctl(f"changes {workflow_id} --as {who}{key} --comment 'what to change'")
            + f"  ({pending.changes_left} left)"
        )
    if signed:
        lines.append(
            "  or:      "
            + hints.teamctl(f"sign {workflow_id} --as {who}{key}")
            + "  (prints the signed temporal commands)"
        )
        keys = hints.teamctl(f"keys new --as {who} --out DIR")
        lines.append(
            f"  (this run takes signed decisions only: {key_file_of(who)} is {who}'s private "
            f"key, from `{keys}`)"
        )
        return lines
    payload = json.dumps({"approver": who, "comment": "looks good"})
    signal = hints.temporal_write(
        f"workflow signal --workflow-id {workflow_id} --name approve --input '{payload}'"
    )
    lines.append(f"  or:      {signal}" if signal is not None else f"  {NO_CODEC_NOTE}")
    return lines


SIGNALS = {"approve": APPROVE_SIGNAL, "reject": REJECT_SIGNAL, "changes": REQUEST_CHANGES_SIGNAL}
"""The signal that carries each decision."""


def signed_commands(
    workflow_id: str, decision: str, signal_json: str, update_json: str, hints: Hints
) -> list[str]:
    """The ``temporal`` commands that send a signed decision (or why none is printed)."""
    signal = hints.temporal_write(
        f"workflow signal --workflow-id {workflow_id} --name {SIGNALS[decision]} "
        f"--input '{signal_json}'"
    )
    update = hints.temporal_write(
        f"workflow update execute --workflow-id {workflow_id} --name decide --input '{update_json}'"
    )
    if signal is None or update is None:
        return [f"  {NO_CODEC_NOTE}"]
    return [f"  {signal}", f"  {update}"]
