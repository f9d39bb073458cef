"""Worker and teamctl on a TLS-only Temporal endpoint that demands a client
certificate (mTLS), configured only through Temporal's standard client settings
(``TEMPORAL_TLS_*``): they run a team end to end; a client without the
certificate, or without TLS, is refused."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from tests.processes import ROOT, address_of, polled, run_async, worker_process
from tests.tls_proxy import Certificates, TlsProxy, make_certificates
from worker.connection import connect, connect_config, describe

BILLING = "My invoice shows a double charge for the annual plan; please refund one of them."


@pytest.fixture
async def proxy(env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[TlsProxy]:
    certificates = make_certificates(tmp_path)
    running = await TlsProxy(certificates, address_of(env)).start()
    running.certificates = certificates  # type: ignore[attr-defined]
    yield running
    await running.stop()


def _tls_environment(proxy: TlsProxy) -> dict[str, str]:
    certs: Certificates = proxy.certificates  # type: ignore[attr-defined]
    return {
        "TEMPORAL_ADDRESS": proxy.address,
        "TEMPORAL_NAMESPACE": "default",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certs.ca),
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(certs.client_cert),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(certs.client_key),
    }


async def test_configured_worker_and_teamctl_run_a_team_over_mtls(
    env: WorkflowEnvironment, task_queue: str, proxy: TlsProxy, tmp_path: Path
) -> None:
    settings = _tls_environment(proxy)
    log = tmp_path / "worker.log"
    worker = worker_process(env, task_queue, log, **settings)
    try:
        await polled(env.client, task_queue)  # teamctl run says so when no worker polls yet
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TEMPORAL_"))
        }
        environ = [f"{k}={v}" for k, v in {**inherited, **settings}.items()]
        teamctl = str(Path(sys.executable).parent / "teamctl")
        run_id = f"mtls-{task_queue}"
        code, _, err = await run_async(
            "env", *environ,
            teamctl, "--task-queue", task_queue, "run", "support", BILLING, "--id", run_id,
        )  # fmt: skip
        assert (code, err) == (0, ""), err
        code, out, err = await run_async("env", *environ, teamctl, "result", run_id, "--json")
    finally:
        worker.send_signal(signal.SIGTERM)
        # Off the event loop: the proxy runs on it, and the worker's shutdown goes through it.
        await asyncio.to_thread(worker.wait, 30)
    assert (code, err) == (0, ""), (out, err, log.read_text()[-2000:])
    result = json.loads(out)
    assert result["status"] == "COMPLETED"
    assert [c["agent"] for c in result["calls"]] == ["router", "billing-specialist"]
    ready = [line for line in log.read_text().splitlines() if "worker ready" in line]
    assert ready and f"on {proxy.address} (namespace default, mTLS)" in ready[0]


async def test_an_unconfigured_client_is_refused(proxy: TlsProxy) -> None:
    settings = _tls_environment(proxy)
    # No TLS at all.
    with pytest.raises(RuntimeError):
        await Client.connect(proxy.address)
    # TLS, trusting the CA, but without a client certificate.
    certs: Certificates = proxy.certificates  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        await Client.connect(
            proxy.address, tls=TLSConfig(server_root_ca_cert=certs.ca.read_bytes())
        )
    # The standard settings make the difference.
    config = connect_config(settings)
    assert describe(config) == f"{proxy.address} (namespace default, mTLS)"
    client = await connect(config=config)
    assert (await client.count_workflows()).count >= 0


def test_a_missing_certificate_file_names_it() -> None:
    from worker.connection import ConnectionSettingsError

    with pytest.raises(ConnectionSettingsError) as raised:
        connect_config(
            {
                "TEMPORAL_TLS_CLIENT_CERT_PATH": "/nonexistent/client.pem",
                "TEMPORAL_TLS_CLIENT_KEY_PATH": "/nonexistent/client.key",
            }
        )
    assert "/nonexistent/client" in str(raised.value)
    assert ROOT.exists()
