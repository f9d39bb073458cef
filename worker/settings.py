"""Worker settings, read once from the environment.

=============================  ==========================================  =================
Variable                       Meaning                                     Default
=============================  ==========================================  =================
``TEMPORAL_ADDRESS``           Temporal frontend host:port                 ``localhost:7233``
``TEMPORAL_NAMESPACE``         Namespace                                   ``default``
``AGENT_TEAMS_TASK_QUEUE``     Task queue for workflows and activities     ``agent-teams``
``AGENT_TEAMS_PROVIDER``       ``simulated`` or ``anthropic``              see below
``AGENT_TEAMS_TEAMS_DIR``      Extra team files, searched first            (shipped only)
``AGENT_TEAMS_PROMPTS_DIR``    Extra prompt files, searched first          (shipped only)
``AGENT_TEAMS_PRICES``         Price table file                            shipped table
``ANTHROPIC_API_KEY``          Anthropic key (or ``ANTHROPIC_API_KEY_FILE``)  unset
``ANTHROPIC_BASE_URL``         Messages API base URL                       api.anthropic.com
=============================  ==========================================  =================

The provider defaults to ``anthropic`` when ``ANTHROPIC_API_KEY`` is set and to
``simulated`` otherwise. The key itself is never stored in settings: only
whether one is present.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from teams.catalog import SHIPPED_PRICES, SHIPPED_PROMPTS_DIR, SHIPPED_TEAMS_DIR, Catalog
from teams.errors import AgentTeamsError
from teams.pricing import load_price_table

ProviderName = Literal["simulated", "anthropic"]
DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
DEFAULT_TASK_QUEUE = "agent-teams"


class SettingsError(AgentTeamsError):
    """An environment variable has an invalid value (the message names it)."""


class WorkerSettings(BaseModel):
    """Everything the worker needs to know about its environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temporal_address: str = DEFAULT_ADDRESS
    temporal_namespace: str = DEFAULT_NAMESPACE
    task_queue: str = DEFAULT_TASK_QUEUE
    provider: ProviderName = "simulated"
    provider_reason: str = "default"
    teams_dir: Path | None = None
    prompts_dir: Path | None = None
    prices_path: Path = SHIPPED_PRICES

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WorkerSettings:
        """Build settings from ``environ``; :class:`SettingsError` names a bad variable."""
        provider, reason = choose_provider(environ)
        values: dict[str, object] = {"provider": provider, "provider_reason": reason}
        for variable, field in _ENV_FIELDS.items():
            if environ.get(variable):
                values[field] = environ[variable]
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            variables = {field: var for var, field in _ENV_FIELDS.items()}
            variables["provider"] = "AGENT_TEAMS_PROVIDER"
            problems = [
                f"{variables.get(str(e['loc'][0]), str(e['loc'][0]))}: {e['msg']}"
                for e in err.errors()
            ]
            raise SettingsError("invalid worker settings: " + "; ".join(problems)) from err

    def catalog(self) -> Catalog:
        """The team catalog these settings describe (user dirs first)."""
        teams = ((self.teams_dir,) if self.teams_dir else ()) + (SHIPPED_TEAMS_DIR,)
        prompts = ((self.prompts_dir,) if self.prompts_dir else ()) + (SHIPPED_PROMPTS_DIR,)
        return Catalog(
            teams_dirs=teams, prompts_dirs=prompts, prices=load_price_table(self.prices_path)
        )


_ENV_FIELDS = {
    "TEMPORAL_ADDRESS": "temporal_address",
    "TEMPORAL_NAMESPACE": "temporal_namespace",
    "AGENT_TEAMS_TASK_QUEUE": "task_queue",
    "AGENT_TEAMS_TEAMS_DIR": "teams_dir",
    "AGENT_TEAMS_PROMPTS_DIR": "prompts_dir",
    "AGENT_TEAMS_PRICES": "prices_path",
}


def choose_provider(environ: Mapping[str, str]) -> tuple[str, str]:
    """Which provider to use, and why (for the start-up line and the CLI)."""
    explicit = environ.get("AGENT_TEAMS_PROVIDER", "").strip()
    if explicit:
        return explicit, "AGENT_TEAMS_PROVIDER"
    if environ.get("ANTHROPIC_API_KEY", "").strip():
        return "anthropic", "ANTHROPIC_API_KEY is set"
    if environ.get("ANTHROPIC_API_KEY_FILE", "").strip():
        return "anthropic", "ANTHROPIC_API_KEY_FILE is set"
    return "simulated", "ANTHROPIC_API_KEY is not set"


def load_api_key(environ: Mapping[str, str]) -> SecretStr:
    """The Anthropic key, from ``ANTHROPIC_API_KEY`` or the file ``ANTHROPIC_API_KEY_FILE``.

    The key is only ever held as a ``SecretStr`` and handed to the client; errors
    name the variable or file, never the value.
    """
    direct = environ.get("ANTHROPIC_API_KEY", "").strip()
    if direct:
        return SecretStr(direct)
    path = environ.get("ANTHROPIC_API_KEY_FILE", "").strip()
    if not path:
        raise SettingsError(
            "the anthropic provider needs ANTHROPIC_API_KEY or ANTHROPIC_API_KEY_FILE"
        )
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise SettingsError(f"ANTHROPIC_API_KEY_FILE: cannot read {path}: {err.strerror}") from None
    if not key:
        raise SettingsError(f"ANTHROPIC_API_KEY_FILE: {path} is empty")
    return SecretStr(key)
