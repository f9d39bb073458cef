"""Worker logs: one JSON object per line (or plain text), never a secret.

A JSON line has ``ts`` (UTC, ISO 8601, milliseconds), ``level``, ``logger`` and
``message``, then whichever of these the record knows:

- from Temporal's ``activity.logger``/``workflow.logger`` (the ``temporal_activity``
  and ``temporal_workflow`` record attributes): ``workflow_id`` (the run's
  correlation id), ``run_id``, ``workflow_type``, ``activity_id``,
  ``activity_type``, ``attempt`` (the activity attempt, or in workflow logs the
  workflow task attempt), ``task_queue``, ``namespace``, and ``update_id`` /
  ``update_name`` inside an update handler;
- from the project (``extra=``): ``team``, ``agent``, ``stage``;
- ``exception`` (the formatted traceback) when the record has one.

Workflow logs are skipped while a workflow replays (the SDK's
``workflow.logger`` default, kept), so a replay never repeats a line.

Secrets and PII: a filter on the handler rewrites every record before it is
formatted, replacing the configured secret values (the Anthropic key) with
``[REDACTED]`` and everything :mod:`security.pii.redaction` recognizes (e-mail addresses,
phone and card numbers, IBANs, national ids, IP addresses, API-key shapes) with
its placeholder (``[EMAIL]``), in the message, its arguments and any traceback,
whichever logger wrote it. That holds with ``AGENT_TEAMS_LOG_PROMPTS`` too.

Prompts are not logged unless ``AGENT_TEAMS_LOG_PROMPTS`` asks: below INFO, the
handler drops the records of the loggers that write request bodies (the
Anthropic SDK's, httpx's, and the Temporal SDK's payload dumps), even when
``ANTHROPIC_LOG=debug`` set the SDK's own logger to DEBUG.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from temporalio import activity, workflow

from security.pii.redaction import redact as redact_pii
from worker.settings import LogFormat, LogLevel

REDACTED = "[REDACTED]"
ANTHROPIC_KEY = re.compile(r"sk-ant-[A-Za-z0-9_-]+")
MIN_SECRET_LENGTH = 8
"""Shorter configured values are not redacted: they would blank ordinary words."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PAYLOAD_LOGGER = "temporalio.worker"
"""The SDK's DEBUG lines here dump activations and activity completions, payloads
(tasks, prompts, answers) included: they follow the prompts switch, not the level."""
PROMPT_LOGGERS = ("anthropic", "httpx", "httpx2", "httpcore", PAYLOAD_LOGGER)
"""Loggers whose DEBUG lines carry request or payload bodies (prompts, answers)."""
PROJECT_FIELDS = ("team", "agent", "stage")
_ACTIVITY_FIELDS = {
    "workflow_id": "workflow_id",
    "workflow_run_id": "run_id",
    "workflow_type": "workflow_type",
    "activity_id": "activity_id",
    "activity_type": "activity_type",
    "attempt": "attempt",
    "task_queue": "task_queue",
    "namespace": "namespace",
}
_WORKFLOW_FIELDS = {
    "workflow_id": "workflow_id",
    "run_id": "run_id",
    "workflow_type": "workflow_type",
    "attempt": "attempt",
    "task_queue": "task_queue",
    "namespace": "namespace",
    "update_id": "update_id",
    "update_name": "update_name",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module docstring for fields)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_temporal_fields(record))
        for name in PROJECT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def _temporal_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for attribute, names in (
        ("temporal_workflow", _WORKFLOW_FIELDS),
        ("temporal_activity", _ACTIVITY_FIELDS),
    ):
        details = getattr(record, attribute, None)
        if isinstance(details, Mapping):
            for key, name in names.items():
                if details.get(key) is not None:
                    fields[name] = details[key]
    return fields


class RedactSecrets(logging.Filter):
    """Replace secret values and Anthropic-shaped keys with ``[REDACTED]``.

    Put on a handler, it sees every record the handler writes, whichever
    logger made it.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )
        self._tracebacks = logging.Formatter()

    def redact(self, text: str) -> str:
        """``text`` without any secret or PII."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return redact_pii(ANTHROPIC_KEY.sub(REDACTED, text))

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place; never drops it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad format arguments: show them raw, redacted
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._tracebacks.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class QuietPromptLoggers(logging.Filter):
    """Drop DEBUG records of :data:`PROMPT_LOGGERS`: they write whole prompts.

    On the handler, so it holds whatever level a library gives its own logger
    (``ANTHROPIC_LOG=debug`` sets the SDK's to DEBUG when it is imported).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record unless it is a prompt logger's below INFO."""
        if record.levelno >= logging.INFO:
            return True
        return not any(
            record.name == name or record.name.startswith(f"{name}.") for name in PROMPT_LOGGERS
        )


def secrets_in(environ: Mapping[str, str]) -> list[str]:
    """The secret values the worker may hold: the Anthropic key, inline or from its file."""
    found = [environ.get("ANTHROPIC_API_KEY", "").strip()]
    path = environ.get("ANTHROPIC_API_KEY_FILE", "").strip()
    if path:
        try:
            found.append(Path(path).read_text(encoding="utf-8").strip())
        except OSError:
            pass  # the provider reports an unreadable key file, with its name
    return [secret for secret in found if secret]


def configure_logging(
    *,
    log_format: LogFormat,
    level: LogLevel,
    secrets: Iterable[str] = (),
    log_prompts: bool = False,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) in ``log_format``, secrets redacted.

    Called once when the worker starts (never on import). In JSON the Temporal
    loggers stop appending their details to the message, since the same
    details are fields of the line. Without ``log_prompts`` the SDK's
    payload-dumping loggers stay at INFO or above even when ``level`` is DEBUG.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    if not log_prompts:
        handler.addFilter(QuietPromptLoggers())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for previous in list(root.handlers):
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level)
    for name in PROMPT_LOGGERS:
        logging.getLogger(name).setLevel(
            logging.NOTSET if log_prompts else max(root.level, logging.INFO)
        )
    # Warnings become log records too, so every line of the process has one format.
    logging.captureWarnings(True)
    if log_format == "json":
        activity.logger.activity_info_on_message = False
        workflow.logger.workflow_info_on_message = False
    return handler
