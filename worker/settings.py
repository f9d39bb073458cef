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
``AGENT_TEAMS_CALLS_TASK_QUEUE``  Task queue of model calls                ``agent-calls``
``AGENT_TEAMS_CALLS_PER_SECOND``  Fleet-wide model calls started per second  unlimited
``AGENT_TEAMS_MAX_CONCURRENT_CALLS``  Model calls in flight on this worker  ``100``
``AGENT_TEAMS_TOKENS_PER_MINUTE``  ``model=tokens,...`` (``*`` any model)  unlimited
``AGENT_TEAMS_BUDGETS``        Daily budgets file (TOML)                   tracked, no limit
``AGENT_TEAMS_CACHE_URL``      ``sqlite:///path``, ``redis://...``, ``postgresql://...`` or ``off``
``AGENT_TEAMS_COST_CONTROLS``  ``false``: no shared ledgers or breakers    ``true``
``AGENT_TEAMS_ENTITY_PREFIX``  Prefix of ledger/breaker workflow ids       empty
=============================  ==========================================  =================

The provider defaults to ``anthropic`` when ``ANTHROPIC_API_KEY`` is set and to
``simulated`` otherwise. The key itself is never stored in settings: only
whether one is present.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from teams.budgets import load_budgets
from teams.catalog import SHIPPED_PRICES, SHIPPED_PROMPTS_DIR, SHIPPED_TEAMS_DIR, Catalog
from teams.errors import AgentTeamsError
from teams.pricing import load_price_table
from worker.deployment import DEFAULT_CALLS_TASK_QUEUE, DEFAULT_TASK_QUEUE, Deployment

ProviderName = Literal["simulated", "anthropic"]
DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
DEFAULT_CACHE_URL = "sqlite:///.temporal/response-cache.sqlite"


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
    calls_task_queue: str = DEFAULT_CALLS_TASK_QUEUE
    calls_per_second: float | None = Field(default=None, gt=0)
    max_concurrent_calls: int = Field(default=100, ge=1)
    tokens_per_minute: dict[str, int] = Field(default_factory=dict)
    budgets_path: Path | None = None
    cache_url: str = DEFAULT_CACHE_URL
    entity_prefix: str = ""
    cost_controls: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WorkerSettings:
        """Build settings from ``environ``; :class:`SettingsError` names a bad variable."""
        provider, reason = choose_provider(environ)
        values: dict[str, object] = {"provider": provider, "provider_reason": reason}
        for variable, field in _ENV_FIELDS.items():
            if environ.get(variable):
                values[field] = environ[variable]
        if "tokens_per_minute" in values:
            values["tokens_per_minute"] = _parse_limits(str(values["tokens_per_minute"]))
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

    def deployment(self) -> Deployment:
        """The fleet-level settings the worker's two task queues run with."""
        return Deployment(
            task_queue=self.task_queue,
            calls_task_queue=self.calls_task_queue,
            calls_per_second=self.calls_per_second,
            max_concurrent_calls=self.max_concurrent_calls,
            tokens_per_minute=self.tokens_per_minute,
            entity_prefix=self.entity_prefix,
            cost_controls=self.cost_controls,
            budgets=load_budgets(self.budgets_path),
        )

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
    "AGENT_TEAMS_CALLS_TASK_QUEUE": "calls_task_queue",
    "AGENT_TEAMS_CALLS_PER_SECOND": "calls_per_second",
    "AGENT_TEAMS_MAX_CONCURRENT_CALLS": "max_concurrent_calls",
    "AGENT_TEAMS_TOKENS_PER_MINUTE": "tokens_per_minute",
    "AGENT_TEAMS_BUDGETS": "budgets_path",
    "AGENT_TEAMS_CACHE_URL": "cache_url",
    "AGENT_TEAMS_ENTITY_PREFIX": "entity_prefix",
    "AGENT_TEAMS_COST_CONTROLS": "cost_controls",
}


def _parse_limits(text: str) -> object:
    """``claude-sonnet-4-6=80000,*=200000`` → ``{"claude-sonnet-4-6": 80000, "*": 200000}``."""
    limits: dict[str, str] = {}
    for part in text.split(","):
        model, _, value = part.strip().partition("=")
        if not model or not value:
            return text  # let validation name the variable and the problem
        limits[model.strip()] = value.strip()
    return limits


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
