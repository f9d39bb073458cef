"""Connecting to Temporal, the same way everywhere (worker, CLI, codec server, bench).

Connection settings come from Temporal's standard client configuration
(:mod:`temporalio.envconfig`): ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``,
``TEMPORAL_API_KEY``, ``TEMPORAL_TLS``, ``TEMPORAL_TLS_CLIENT_CERT_PATH``,
``TEMPORAL_TLS_CLIENT_KEY_PATH``, ``TEMPORAL_TLS_SERVER_CA_CERT_PATH``,
``TEMPORAL_TLS_SERVER_NAME``, ``TEMPORAL_GRPC_META_*``, and profiles in the
config file (``TEMPORAL_CONFIG_FILE``, ``TEMPORAL_PROFILE``). So TLS, mTLS and a
Temporal Cloud API key work with no code change, and the ``temporal`` CLI reads
the same settings. An explicit address or namespace (``teamctl --address``)
overrides them. Without any, the local dev server: ``localhost:7233``, ``default``.
:func:`connect` reads the process environment (connection settings and
encryption keys) unless given ``environ`` (``environ={}`` for none) or
``config`` and ``converter``: a script gets what ``teamctl`` gets.

Every client uses the project's data converter (:func:`project_data_converter`:
pydantic models, and the AES-256-GCM payload codec whenever
``AGENT_TEAMS_ENCRYPTION_KEY_FILE`` or ``AGENT_TEAMS_ENCRYPTION_KEYS`` names keys),
so payloads cross the client/workflow/activity boundaries intact, are encrypted
in history, and replays decode them the same way. Tracing and the
runtime are optional and off by default: a client given a tracer provider
carries the SDK's tracing interceptor, and every worker built from it inherits
the interceptor (see :mod:`worker.telemetry`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import TracerProvider
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfig, ClientConnectConfig
from temporalio.runtime import Runtime

from errors import AgentTeamsError
from security.codec import client_data_converter, data_converter
from security.keyring import load_keyring
from worker.telemetry import tracing_interceptor

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"


class ConnectionSettingsError(AgentTeamsError):
    """The Temporal client configuration is invalid (the message names the setting)."""


def project_data_converter(environ: Mapping[str, str], *, lenient: bool = False) -> DataConverter:
    """The data converter of client, worker and replayer: pydantic, encrypted when keyed.

    Workers pass ``lenient``: a payload that does not decrypt reaches the
    workflow as a marker it refuses, instead of failing the workflow task.

    Raises :class:`security.keyring.KeyRingError` (naming the file or variable,
    never a key) when the keys are set but unusable: encryption never turns
    itself off silently.
    """
    keyring = load_keyring(environ)
    if lenient:
        return data_converter(keyring, lenient=True)
    return client_data_converter(keyring)


def connect_config(
    environ: Mapping[str, str],
    *,
    address: str | None = None,
    namespace: str | None = None,
) -> ClientConnectConfig:
    """The client settings ``environ`` describes, with ``address``/``namespace`` overrides."""
    try:
        config = ClientConfig.load_client_connect_config(
            profile=environ.get("TEMPORAL_PROFILE") or None,
            config_file=environ.get("TEMPORAL_CONFIG_FILE") or None,
            override_env_vars=dict(environ),
        )
    except FileNotFoundError as err:
        raise ConnectionSettingsError(
            f"Temporal client configuration: cannot read {err.filename}: {err.strerror}"
        ) from None
    except (OSError, ValueError, RuntimeError) as err:
        raise ConnectionSettingsError(f"Temporal client configuration: {err}") from None
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config.setdefault("namespace", DEFAULT_NAMESPACE)
    if address:
        config["target_host"] = address
    if namespace:
        config["namespace"] = namespace
    return config


def describe(config: ClientConnectConfig) -> str:
    """``host:port (namespace ns, TLS, API key)``: for start-up lines, no secrets."""
    tls = config.get("tls")
    security = ["mTLS" if _has_client_cert(tls) else "TLS"] if tls else ["no TLS"]
    if config.get("api_key"):
        security.append("API key")
    return (
        f"{config.get('target_host', DEFAULT_ADDRESS)} (namespace "
        f"{config.get('namespace', DEFAULT_NAMESPACE)}, {', '.join(security)})"
    )


def _has_client_cert(tls: Any) -> bool:
    return bool(getattr(tls, "client_cert", None))


async def connect(
    address: str | None = None,
    namespace: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config: ClientConnectConfig | None = None,
    converter: DataConverter | None = None,
    runtime: Runtime | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Client:
    """A Temporal client with the project's data converter, set up as ``teamctl`` is.

    ``config`` (from :func:`connect_config`) or ``environ`` (default: the
    process environment, as ``teamctl`` reads it) gives the connection settings
    (TLS, API key, profile); ``address``/``namespace`` override them.
    ``converter`` defaults to :func:`project_data_converter` of ``environ``
    (the same default): the encryption keys ``AGENT_TEAMS_ENCRYPTION_KEY_FILE``
    or ``AGENT_TEAMS_ENCRYPTION_KEYS`` name, so a script's payloads are
    encrypted wherever ``teamctl``'s are. Pass ``environ={}`` for neither.
    ``runtime`` carries the process's telemetry (the worker's metrics
    endpoint); ``tracer_provider`` turns tracing on for this client and its
    workers.
    """
    # Read at call time, never at import: the process's settings as they are now.
    environment = os.environ if environ is None else environ
    settings: ClientConnectConfig = (
        ClientConnectConfig(**config)
        if config is not None
        else connect_config(environment, address=address, namespace=namespace)
    )
    if config is not None and address:
        settings["target_host"] = address
    if config is not None and namespace:
        settings["namespace"] = namespace
    interceptors = [tracing_interceptor(tracer_provider)] if tracer_provider is not None else []
    return await Client.connect(
        **settings,
        data_converter=converter or project_data_converter(environment),
        interceptors=interceptors,
        runtime=runtime,
    )
