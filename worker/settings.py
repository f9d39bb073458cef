"""Worker settings, read once from the environment.

Every variable, its default and its meaning is in ``docs/operations.md`` (a test
checks that each ``AGENT_TEAMS_*`` variable read here is documented there); a bad
value stops the worker at start with the variable named.

The Temporal connection (address, namespace, TLS, mTLS, API key, profiles) is
Temporal's standard client configuration: ``TEMPORAL_*`` variables and the config
file, read by :func:`worker.connection.connect_config`.

The provider defaults to ``anthropic`` when ``ANTHROPIC_API_KEY`` is set and to
``simulated`` otherwise. The key itself is never stored in settings: only
whether one is present.

Traces are exported over OTLP/HTTP when ``OTEL_TRACES_EXPORTER=otlp`` or, with
the variable unset, when an OTLP endpoint is set; to stdout (one JSON span per
line) with ``console``; and not at all by default. The exporter reads the other
standard ``OTEL_EXPORTER_OTLP_*`` variables (headers, timeout, certificates)
itself. Logs never carry the API key (a filter redacts it and anything shaped
like an Anthropic key) and carry prompts only with ``AGENT_TEAMS_LOG_PROMPTS``.

``AGENT_TEAMS_DEPLOYMENT_NAME`` and ``AGENT_TEAMS_BUILD_ID`` (both or neither)
turn on Temporal's Worker Versioning: the worker polls as that Worker Deployment
Version, and a run stays on the version it started on (docs/rollouts.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from temporalio.common import WorkerDeploymentVersion

from contracts.approvals import ApprovalMode
from contracts.notifications import DEFAULT_WEBHOOK_ATTEMPTS, MAX_WEBHOOK_ATTEMPTS, WebhookSettings
from contracts.run_interface import DEFAULT_TASK_QUEUE
from errors import AgentTeamsError
from evaluation.gold_sets import SHIPPED_GOLD_DIR
from fleet.daily_budgets import DailyBudgets, load_budgets
from money.pricing import SHIPPED_PRICES, load_price_table
from security.approvers import ApproverRegistry
from stores.blobs import DEFAULT_BLOB_URL
from stores.controls.factory import DEFAULT_CONTROLS_URL
from streams.log import DEFAULT_RETENTION_S, DEFAULT_STREAM_URL
from teams.catalog import (
    SHIPPED_PROMPTS_DIR,
    SHIPPED_TEAMS_DIR,
    Catalog,
)
from teams.policy import RequestPolicy
from teams.releases import PINS_FILE
from teams.spec.breakers import BreakerSettings
from teams.spec.durations import Duration
from teams.spec.fields import Slug
from worker.deployment import Deployment

ProviderName = Literal["simulated", "anthropic"]
LogFormat = Literal["json", "text"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
TracesExporter = Literal["otlp", "console", "none"]
EmbedderName = Literal["voyage", "lexical", "off"]
DEFAULT_CACHE_URL = "sqlite:///.temporal/response-cache.sqlite"
WORKER_SERVICE_NAME = "agent-teams-worker"
DEFAULT_OTLP_TRACES_ENDPOINT = "http://localhost:4318/v1/traces"
"""The OTLP/HTTP default of the OpenTelemetry specification."""
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")
_VERSIONING_VARIABLES = ("AGENT_TEAMS_DEPLOYMENT_NAME", "AGENT_TEAMS_BUILD_ID")


class SettingsError(AgentTeamsError):
    """An environment variable has an invalid value (the message names it)."""


class TracingSettings(BaseModel):
    """Where spans go, from the standard ``OTEL_*`` variables (worker and CLI alike)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exporter: TracesExporter = "none"
    endpoint: str | None = None
    """The full OTLP/HTTP traces URL (``.../v1/traces``), for ``otlp``."""
    service_name: str = WORKER_SERVICE_NAME

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, service_name: str) -> TracingSettings:
        """Read ``OTEL_*``; ``service_name`` is used when ``OTEL_SERVICE_NAME`` is unset."""
        name = environ.get("OTEL_SERVICE_NAME", "").strip() or service_name
        if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return cls(exporter="none", service_name=name)
        endpoint = _traces_endpoint(environ)
        chosen = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
        if not chosen:
            chosen = "otlp" if endpoint else "none"
        if chosen == "none":
            return cls(exporter="none", service_name=name)
        if chosen == "console":
            return cls(exporter="console", service_name=name)
        if chosen == "otlp":
            return cls(
                exporter="otlp",
                endpoint=endpoint or DEFAULT_OTLP_TRACES_ENDPOINT,
                service_name=name,
            )
        raise SettingsError(
            f"invalid telemetry settings: OTEL_TRACES_EXPORTER: {chosen!r} is not one of "
            "otlp, console, none"
        )


def _traces_endpoint(environ: Mapping[str, str]) -> str | None:
    """The traces URL: the signal's own variable as is, or the base URL + ``/v1/traces``."""
    for variable, suffix in (
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "/v1/traces"),
    ):
        value = environ.get(variable, "").strip()
        if value:
            _check_url(variable, value)
            return value.rstrip("/") + suffix if suffix else value
    return None


def _check_url(variable: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(
            f"invalid telemetry settings: {variable}: {value!r} is not an http(s) URL"
        )


TEAM_PROMPTS_FOLDER = "prompts"
"""The folder of a teams folder (``AGENT_TEAMS_TEAMS_DIR``) its prompts are looked for in."""


class WorkerSettings(BaseModel):
    """Everything the worker needs to know about its environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task_queue: str = DEFAULT_TASK_QUEUE
    provider: ProviderName = "simulated"
    provider_reason: str = "default"
    teams_dir: Path | None = None
    prompts_dir: Path | None = None
    gold_dir: Path | None = None
    prices_path: Path = SHIPPED_PRICES
    calls_task_queue: str | None = None
    calls_per_second: float | None = Field(default=None, gt=0, le=100_000)
    max_concurrent_calls: int = Field(default=100, ge=1, le=10_000)
    tokens_per_minute: dict[str, Annotated[int, Field(ge=1, le=10**12)]] = Field(
        default_factory=dict
    )
    budgets_path: Path | None = None
    cache_url: str = DEFAULT_CACHE_URL
    embedder: EmbedderName | None = None
    """The semantic cache's embedder (``AGENT_TEAMS_EMBEDDER``); None: ``voyage`` when a
    Voyage key is set (``VOYAGE_API_KEY`` or ``VOYAGE_API_KEY_FILE``), else ``off``."""
    semantic_cache_url: str | None = None
    """Where semantic cache entries live (``AGENT_TEAMS_SEMANTIC_CACHE_URL``); None: the
    response cache's URL (another table or keys of the same store)."""
    voyage_model: str = Field(default="voyage-3.5", min_length=1, max_length=100)
    voyage_dimensions: int = Field(default=1024, ge=1, le=4096)
    voyage_base_url: str = "https://api.voyageai.com"
    stream_url: str = DEFAULT_STREAM_URL
    """Where runs' live streams go (``AGENT_TEAMS_STREAM_URL``; ``off``: nowhere)."""
    stream_retention_s: float = Field(default=DEFAULT_RETENTION_S, gt=0, le=90 * 86_400)
    controls_url: str = DEFAULT_CONTROLS_URL
    controls_outage: Literal["fail", "wait"] = "fail"
    breaker_failures: int = Field(default=5, ge=1, le=1_000)
    breaker_cool_down: Duration = Field(
        default=BreakerSettings().cool_down, gt=timedelta(0), le=timedelta(days=1)
    )
    cost_controls: bool = True
    inline_specs: bool = True
    """Dev convenience (the worker warns at start-up): production sets it false."""
    tenants: list[Slug] | None = None
    default_tenant: Slug | None = None
    """Where a request without a tenant is charged (must be in ``tenants`` if listed)."""
    require_encrypted_input: bool = False
    """Refuse inputs and decisions that reach the worker unencrypted (encryption on)."""
    toolsets: str = ""
    """``MODULE:ATTRIBUTE`` of each Python toolset of the user's, comma-separated."""
    tool_secrets_dir: Path | None = None
    """The folder of the tools' secret files (one file per secret, named after it)."""
    files_root: Path | None = None
    """The folder the ``files`` toolset reads (not offered without one)."""
    shop_db: Path = Path(".temporal/shop.sqlite")
    """The demo ``shop`` toolset's orders database (created on first use)."""
    blob_url: str = DEFAULT_BLOB_URL
    """Where large tool results and tool conversations live (``file:PATH`` or ``s3://BUCKET``)."""
    approvals: ApprovalMode = "open"
    approvers_path: Path | None = None
    webhook_url: str | None = None
    """Where every run's webhooks go, unless its team file names another (``[notifications]``)."""
    webhook_secret_file: Path | None = None
    """The file holding the webhooks' HMAC secret (required for any webhook)."""
    webhook_attempts: int = Field(default=DEFAULT_WEBHOOK_ATTEMPTS, ge=1, le=MAX_WEBHOOK_ATTEMPTS)
    """Delivery attempts of one webhook before it is a dead letter."""
    ui_url: str | None = None
    """The Temporal UI's base URL, for the link in each webhook."""
    log_format: LogFormat = "json"
    log_level: LogLevel = "INFO"
    log_prompts: bool = False
    metrics_address: str | None = None
    """``host:port`` of the Prometheus endpoint (SDK and project metrics), if any."""
    otlp_metrics_endpoint: str | None = None
    """Push the same metrics over OTLP/HTTP instead (a full ``.../v1/metrics`` URL)."""
    tracing: TracingSettings = TracingSettings()
    deployment_name: str | None = Field(default=None, max_length=255)
    """The Worker Deployment (Worker Versioning) this worker belongs to, with ``build_id``."""
    build_id: str | None = Field(default=None, max_length=255)
    """This worker's code within ``deployment_name``; a new one for every rollout."""
    skip_era_check: bool = False
    """Start unversioned even if open runs need a retired era (``worker/era_check.py``)."""

    @field_validator("deployment_name")
    @classmethod
    def _no_dot(cls, value: str | None) -> str | None:
        # A version is named "<deployment>.<build id>" and read back at the first
        # dot (WorkerDeploymentVersion.from_canonical_string): a dot in the
        # deployment name would name another deployment.
        if value is not None and "." in value:
            raise ValueError(f"{value!r} contains '.' (versions are named <deployment>.<build id>)")
        return value

    @field_validator("default_tenant")
    @classmethod
    def _default_tenant_listed(cls, value: str | None, info: ValidationInfo) -> str | None:
        tenants = info.data.get("tenants")
        if value is not None and tenants is not None and value not in tenants:
            raise ValueError(
                f"{value!r} is not in AGENT_TEAMS_TENANTS ({', '.join(tenants)}): "
                "the default tenant must be one of them"
            )
        return value

    @field_validator("metrics_address")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _HOST_PORT.match(value)
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise ValueError(f"{value!r} is not host:port (e.g. 0.0.0.0:9464)")
        return value

    @field_validator("otlp_metrics_endpoint", "webhook_url", "ui_url", "voyage_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{value!r} is not an http(s) URL")
        return value

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
        if "tenants" in values:
            values["tenants"] = [t.strip() for t in str(values["tenants"]).split(",") if t.strip()]
        for field in ("deployment_name", "build_id"):
            if field in values:  # blank counts as unset, as _check_versioning reads it
                values[field] = str(values[field]).strip() or None
        if "log_level" in values:
            values["log_level"] = str(values["log_level"]).strip().upper()
        values["tracing"] = TracingSettings.from_env(environ, service_name=WORKER_SERVICE_NAME)
        _check_versioning(environ)
        if values.get("webhook_url") and not values.get("webhook_secret_file"):
            raise SettingsError(
                "invalid worker settings: AGENT_TEAMS_WEBHOOK_SECRET_FILE: required when "
                "AGENT_TEAMS_WEBHOOK_URL is set (webhooks are always signed)"
            )
        if values.get("metrics_address") and values.get("otlp_metrics_endpoint"):
            raise SettingsError(
                "invalid worker settings: AGENT_TEAMS_METRICS_ADDRESS and "
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: set one (metrics go to one place)"
            )
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
        budgets = load_budgets(self.budgets_path)
        return Deployment(
            task_queue=self.task_queue,
            calls_task_queue=self.calls_task_queue,
            calls_per_second=self.calls_per_second,
            max_concurrent_calls=self.max_concurrent_calls,
            tokens_per_minute=self.tokens_per_minute,
            cost_controls=self.cost_controls,
            budgets=budgets,
            model_breaker=BreakerSettings(
                failure_threshold=self.breaker_failures, cool_down=self.breaker_cool_down
            ),
            controls_outage=self.controls_outage,
            policy=self.request_policy(budgets),
            approval_mode=self.approvals,
            approvers=ApproverRegistry.load(self.approvers_path) if self.approvers_path else None,
            webhooks=WebhookSettings(
                url=self.webhook_url, attempts=self.webhook_attempts, ui_url=self.ui_url
            ),
            webhook_secret=(
                load_webhook_secret(self.webhook_secret_file) if self.webhook_secret_file else None
            ),
            version=self.worker_version(),
        )

    def request_policy(self, budgets: DailyBudgets) -> RequestPolicy:
        """What callers may ask for, with the tenants the budgets file names."""
        return RequestPolicy(
            inline_specs=self.inline_specs,
            tenants=frozenset(self.tenants) if self.tenants is not None else None,
            budget_tenants=frozenset(budgets.tenants_micro),
            tenant_budgets=bool(budgets.tenants_micro) or budgets.default_tenant_micro is not None,
            default_tenant=self.default_tenant,
            require_encrypted_input=self.require_encrypted_input,
        )

    def worker_version(self) -> WorkerDeploymentVersion | None:
        """The worker's Worker Deployment Version, or None: an unversioned worker."""
        if self.deployment_name is None or self.build_id is None:
            return None
        return WorkerDeploymentVersion(self.deployment_name, self.build_id)

    def catalog(self) -> Catalog:
        """The team catalog these settings describe (user dirs first)."""
        teams = ((self.teams_dir,) if self.teams_dir else ()) + (SHIPPED_TEAMS_DIR,)
        # A teams folder brings its prompts (<teams dir>/prompts): one setting for a
        # team of one's own, read by teamctl and the workers alike.
        own = (self.teams_dir / TEAM_PROMPTS_FOLDER,) if self.teams_dir else ()
        prompts = ((self.prompts_dir,) if self.prompts_dir else ()) + own + (SHIPPED_PROMPTS_DIR,)
        gold = ((self.gold_dir,) if self.gold_dir else ()) + (SHIPPED_GOLD_DIR,)
        return Catalog(
            teams_dirs=teams,
            prompts_dirs=prompts,
            prices=load_price_table(self.prices_path),
            pins_file=self.teams_dir / PINS_FILE if self.teams_dir else None,
            gold_dirs=gold,
        )


_ENV_FIELDS = {
    "AGENT_TEAMS_TASK_QUEUE": "task_queue",
    "AGENT_TEAMS_TEAMS_DIR": "teams_dir",
    "AGENT_TEAMS_PROMPTS_DIR": "prompts_dir",
    "AGENT_TEAMS_GOLD_DIR": "gold_dir",
    "AGENT_TEAMS_PRICES": "prices_path",
    "AGENT_TEAMS_CALLS_TASK_QUEUE": "calls_task_queue",
    "AGENT_TEAMS_CALLS_PER_SECOND": "calls_per_second",
    "AGENT_TEAMS_MAX_CONCURRENT_CALLS": "max_concurrent_calls",
    "AGENT_TEAMS_TOKENS_PER_MINUTE": "tokens_per_minute",
    "AGENT_TEAMS_BUDGETS": "budgets_path",
    "AGENT_TEAMS_CACHE_URL": "cache_url",
    "AGENT_TEAMS_EMBEDDER": "embedder",
    "AGENT_TEAMS_SEMANTIC_CACHE_URL": "semantic_cache_url",
    "AGENT_TEAMS_VOYAGE_MODEL": "voyage_model",
    "AGENT_TEAMS_VOYAGE_DIMENSIONS": "voyage_dimensions",
    "AGENT_TEAMS_VOYAGE_BASE_URL": "voyage_base_url",
    "AGENT_TEAMS_STREAM_URL": "stream_url",
    "AGENT_TEAMS_STREAM_RETENTION_S": "stream_retention_s",
    "AGENT_TEAMS_CONTROLS_URL": "controls_url",
    "AGENT_TEAMS_CONTROLS_OUTAGE": "controls_outage",
    "AGENT_TEAMS_BREAKER_FAILURES": "breaker_failures",
    "AGENT_TEAMS_BREAKER_COOL_DOWN": "breaker_cool_down",
    "AGENT_TEAMS_COST_CONTROLS": "cost_controls",
    "AGENT_TEAMS_INLINE_SPECS": "inline_specs",
    "AGENT_TEAMS_TENANTS": "tenants",
    "AGENT_TEAMS_DEFAULT_TENANT": "default_tenant",
    "AGENT_TEAMS_REQUIRE_ENCRYPTED_INPUT": "require_encrypted_input",
    "AGENT_TEAMS_TOOLSETS": "toolsets",
    "AGENT_TEAMS_TOOL_SECRETS_DIR": "tool_secrets_dir",
    "AGENT_TEAMS_FILES_ROOT": "files_root",
    "AGENT_TEAMS_SHOP_DB": "shop_db",
    "AGENT_TEAMS_BLOB_URL": "blob_url",
    "AGENT_TEAMS_APPROVALS": "approvals",
    "AGENT_TEAMS_APPROVERS_FILE": "approvers_path",
    "AGENT_TEAMS_WEBHOOK_URL": "webhook_url",
    "AGENT_TEAMS_WEBHOOK_SECRET_FILE": "webhook_secret_file",
    "AGENT_TEAMS_WEBHOOK_ATTEMPTS": "webhook_attempts",
    "AGENT_TEAMS_UI_URL": "ui_url",
    "AGENT_TEAMS_LOG_FORMAT": "log_format",
    "AGENT_TEAMS_LOG_LEVEL": "log_level",
    "AGENT_TEAMS_LOG_PROMPTS": "log_prompts",
    "AGENT_TEAMS_METRICS_ADDRESS": "metrics_address",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "otlp_metrics_endpoint",
    "AGENT_TEAMS_DEPLOYMENT_NAME": "deployment_name",
    "AGENT_TEAMS_BUILD_ID": "build_id",
    "AGENT_TEAMS_SKIP_ERA_CHECK": "skip_era_check",
}


def _check_versioning(environ: Mapping[str, str]) -> None:
    """Both versioning variables or neither: half a version would silently run unversioned."""
    missing = [v for v in _VERSIONING_VARIABLES if not environ.get(v, "").strip()]
    if len(missing) == 1:
        given = next(v for v in _VERSIONING_VARIABLES if v not in missing)
        raise SettingsError(
            f"invalid worker settings: {missing[0]}: required when {given} is set "
            "(Worker Versioning needs both, or neither for an unversioned worker)"
        )


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


def load_webhook_secret(path: Path) -> SecretStr:
    """The webhooks' HMAC secret, from its file (surrounding whitespace dropped).

    Held only as a ``SecretStr``; errors name the variable and the file, never the value.
    """
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise SettingsError(
            f"AGENT_TEAMS_WEBHOOK_SECRET_FILE: cannot read {path}: {err.strerror}"
        ) from None
    if not secret:
        raise SettingsError(f"AGENT_TEAMS_WEBHOOK_SECRET_FILE: {path} is empty")
    return SecretStr(secret)
