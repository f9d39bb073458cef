"""A team file's ``[notifications]`` table: where its runs' webhooks go.

The deployment sets webhooks up (``AGENT_TEAMS_WEBHOOK_URL`` and the secret
file, docs/notifications.md); a catalog team may send its own runs' webhooks
elsewhere. The secret is always the deployment's: a team file names no secret.
An inline spec's ``[notifications]`` is ignored (its runs use the deployment's
URL): a caller must not choose where a run's data goes, signed with the
deployment's key.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from teams.spec.fields import SpecModel

MAX_WEBHOOK_URL_CHARS = 2_000


class NotificationSpec(SpecModel):
    """Where this team's webhooks go (``[notifications]``)."""

    url: str | None = Field(default=None, max_length=MAX_WEBHOOK_URL_CHARS)
    """The receiver of this team's webhooks (``http``/``https``), instead of the
    deployment's ``AGENT_TEAMS_WEBHOOK_URL``; signed with the deployment's secret,
    and sent only where the worker has one. Ignored in an inline spec."""
    enabled: bool = True
    """``false``: this team's runs send no webhooks, wherever the deployment sends them
    (ignored in an inline spec)."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value
