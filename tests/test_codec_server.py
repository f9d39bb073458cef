"""The codec server (teamctl.codec_server): the remote codec protocol over real HTTP,
and the real ``temporal`` CLI decoding an encrypted history through it."""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from security.codec import ENCODING, EncryptionCodec
from security.keyring import KeyRing, new_key_line
from teamctl.codec_server import (
    CodecServer,
    CodecServerError,
    codec_server_from_env,
    new_token,
    run_codec_server,
)
from teamctl.devserver import temporal_binary
from tests.support import awaiting_approval, client_with_keys, running_worker, start

TOKEN = "test-token-" + "0123456789abcdef"
ORIGIN = "http://localhost:8233"
SECRET = "walrus-ultramarine-5521 confidential task text"


@pytest.fixture(scope="module")
def keyring() -> KeyRing:
    return KeyRing.from_text(new_key_line("codec-test"))


@pytest.fixture
def server(keyring: KeyRing) -> Iterator[CodecServer]:
    with CodecServer(keyring, token=TOKEN, allowed_origins=[ORIGIN], max_body_bytes=64_000) as s:
        yield s


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    server: CodecServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    port = int(server.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        sent = {"Content-Type": "application/json", **(headers or {})}
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


def as_json(payloads: list[Payload]) -> bytes:
    """The protocol's body, built by hand (not with the server's own helper)."""
    return json.dumps(
        {
            "payloads": [
                {
                    "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                    "data": base64.b64encode(p.data).decode(),
                }
                for p in payloads
            ]
        }
    ).encode()


def from_json(document: dict[str, Any]) -> list[Payload]:
    return [
        Payload(
            metadata={k: base64.b64decode(v) for k, v in p.get("metadata", {}).items()},
            data=base64.b64decode(p.get("data", "")),
        )
        for p in document["payloads"]
    ]


def plain(value: object) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([value])[0]


BEARER = {"Authorization": f"Bearer {TOKEN}"}


# --- the protocol ----------------------------------------------------------------------


async def test_decode_with_bearer_token_returns_the_exact_payload(
    server: CodecServer, keyring: KeyRing
) -> None:
    originals = [plain({"task": SECRET}), plain(b"\x00\xffbinary"), plain(None)]
    encrypted = await EncryptionCodec(keyring).encode(originals)
    reply = request(server, "POST", "/decode", as_json(encrypted), BEARER)
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["cache-control"] == "no-store"
    decoded = from_json(reply.json())
    assert [p.SerializeToString() for p in decoded] == [p.SerializeToString() for p in originals]


async def test_decode_with_the_token_in_the_path(server: CodecServer, keyring: KeyRing) -> None:
    original = plain(SECRET)
    encrypted = await EncryptionCodec(keyring).encode([original])
    assert server.ui_endpoint == f"{server.url}/{TOKEN}"
    reply = request(server, "POST", f"/{TOKEN}/decode", as_json(encrypted))
    assert reply.status == 200
    assert from_json(reply.json()) == [original]
    # Only the last segment names the operation, so a trailing slash on the
    # UI's endpoint setting (".../<token>/" + "/decode") still works.
    assert request(server, "POST", f"/{TOKEN}//decode", as_json(encrypted)).status == 200
    # The UI may forward its user's OIDC token too: the path token still decides.
    oidc = {"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.user.token"}
    assert request(server, "POST", f"/{TOKEN}/decode", as_json(encrypted), oidc).status == 200


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/decode", {}),
        ("/decode", {"Authorization": "Bearer wrong-token-0123456789"}),
        ("/decode", {"Authorization": f"Basic {TOKEN}"}),
        ("/decode", {"Authorization": f"Bearer {TOKEN[:-1]}"}),
        ("/wrong-token-0123456789/decode", {}),
        (f"/{TOKEN}x/decode", {}),
        ("/encode", {}),
    ],
)
async def test_without_the_right_token_the_answer_is_401_and_no_data(
    server: CodecServer, keyring: KeyRing, path: str, headers: dict[str, str]
) -> None:
    encrypted = await EncryptionCodec(keyring).encode([plain(SECRET)])
    reply = request(server, "POST", path, as_json(encrypted), headers)
    assert reply.status == 401
    assert reply.json() == {"error": "unauthorized"}
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert b"payloads" not in reply.body and SECRET.encode() not in reply.body


def test_preflight_from_an_allowed_origin_gets_cors_headers(server: CodecServer) -> None:
    reply = request(
        server,
        "OPTIONS",
        f"/{TOKEN}/decode",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        },
    )
    assert reply.status == 204
    assert reply.body == b""
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    assert reply.headers["access-control-allow-methods"] == "POST, OPTIONS"
    assert reply.headers["access-control-allow-headers"] == (
        "Content-Type, Authorization, X-Namespace"
    )
    assert reply.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in reply.headers["vary"]


def test_preflight_from_another_origin_gets_no_cors_headers(server: CodecServer) -> None:
    reply = request(
        server,
        "OPTIONS",
        "/decode",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert reply.status == 204
    assert not any(name.startswith("access-control-") for name in reply.headers)


def test_private_network_preflight_is_allowed_for_allowed_origins(server: CodecServer) -> None:
    reply = request(
        server,
        "OPTIONS",
        "/decode",
        headers={"Origin": ORIGIN, "Access-Control-Request-Private-Network": "true"},
    )
    assert reply.headers["access-control-allow-private-network"] == "true"


async def test_post_answers_carry_cors_headers_for_allowed_origins_only(
    server: CodecServer, keyring: KeyRing
) -> None:
    body = as_json(await EncryptionCodec(keyring).encode([plain(SECRET)]))
    allowed = request(server, "POST", f"/{TOKEN}/decode", body, {"Origin": ORIGIN})
    assert allowed.status == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = request(server, "POST", f"/{TOKEN}/decode", body, {"Origin": "http://localhost:9999"})
    assert other.status == 200  # curl-like clients are fine; a browser would block reading it
    assert "access-control-allow-origin" not in other.headers


def test_oversize_body_is_413(server: CodecServer) -> None:
    body = json.dumps({"payloads": [{"data": "A" * 70_000}]}).encode()
    reply = request(server, "POST", "/decode", body, BEARER)
    assert reply.status == 413
    assert "body over 64000 bytes" in reply.json()["error"]


def test_a_huge_declared_length_is_refused_before_reading(server: CodecServer) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("POST", "/decode")
        connection.putheader("Authorization", f"Bearer {TOKEN}")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(10**12))
        connection.endheaders()
        assert connection.getresponse().status == 413
    finally:
        connection.close()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"payloads": 3}',
        b'{"payloads": [null]}',
        b'{"payloads": [{"metadata": {"encoding": 5}}]}',
        b'{"nothing": []}',
    ],
)
def test_malformed_body_is_400(server: CodecServer, body: bytes) -> None:
    reply = request(server, "POST", "/decode", body, BEARER)
    assert reply.status == 400
    assert "error" in reply.json()


def test_non_json_content_type_is_415(server: CodecServer) -> None:
    reply = request(
        server, "POST", "/decode", b'{"payloads": []}', {**BEARER, "Content-Type": "text/plain"}
    )
    assert reply.status == 415


def test_unknown_path_is_404(server: CodecServer) -> None:
    assert request(server, "POST", "/decrypt", b"{}", BEARER).status == 404
    assert request(server, "OPTIONS", "/", headers={"Origin": ORIGIN}).status == 404


async def test_undecryptable_payload_is_400_naming_the_key(server: CodecServer) -> None:
    foreign = KeyRing.from_text(new_key_line("other-key"))
    encrypted = await EncryptionCodec(foreign).encode([plain(SECRET)])
    reply = request(server, "POST", "/decode", as_json(encrypted), BEARER)
    assert reply.status == 400
    assert "'other-key'" in reply.json()["error"]


def test_encode_then_decode_round_trip(server: CodecServer) -> None:
    originals = [plain({"task": SECRET}), plain([1, 2, 3])]
    encoded = request(server, "POST", "/encode", as_json(originals), BEARER)
    assert encoded.status == 200
    assert SECRET.encode() not in encoded.body
    encrypted = from_json(encoded.json())
    assert all(p.metadata["encoding"] == ENCODING for p in encrypted)
    decoded = request(server, "POST", f"/{TOKEN}/decode", encoded.body)
    assert from_json(decoded.json()) == originals


def test_decode_passes_plain_payloads_through_and_empty_lists_work(server: CodecServer) -> None:
    reply = request(server, "POST", "/decode", as_json([plain("old, unencrypted")]), BEARER)
    assert from_json(reply.json()) == [plain("old, unencrypted")]
    empty = request(server, "POST", "/decode", b'{"payloads": []}', BEARER)
    assert empty.json() == {"payloads": []}


@pytest.mark.parametrize("operation", ["encode", "decode"])
@pytest.mark.parametrize("body", [b"{}", b'{"payloads": []}', b" { } "])
def test_no_payloads_is_an_empty_list_not_an_error(
    server: CodecServer, operation: str, body: bytes
) -> None:
    # Protobuf JSON leaves an empty repeated field out: the temporal CLI sends `{}`
    # for a query without --input.
    reply = request(server, "POST", f"/{operation}", body, BEARER)
    assert (reply.status, reply.json()) == (200, {"payloads": []})
    in_path = request(server, "POST", f"/{TOKEN}/{operation}", body)
    assert (in_path.status, in_path.json()) == (200, {"payloads": []})


def test_no_payloads_still_needs_the_token(server: CodecServer) -> None:
    assert request(server, "POST", "/encode", b"{}").status == 401


async def test_logs_name_no_token_and_no_payload(
    server: CodecServer, keyring: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    encrypted = await EncryptionCodec(keyring).encode([plain(SECRET)])
    with caplog.at_level(logging.DEBUG):
        request(server, "POST", f"/{TOKEN}/decode", as_json(encrypted))
        request(server, "POST", "/decode", as_json(encrypted), BEARER)
        request(server, "POST", "/decode", as_json(encrypted))
    text = caplog.text
    assert "codec POST decode -> 200" in text and "codec POST decode -> 401" in text
    assert TOKEN not in text and SECRET not in text


# --- configuration ---------------------------------------------------------------------


def test_weak_or_path_unsafe_tokens_and_bad_origins_are_refused(keyring: KeyRing) -> None:
    for token in ("", "short", "has a space but long enough", "slash/in/the/token/xx"):
        with pytest.raises(CodecServerError, match="at least 16 characters") as caught:
            CodecServer(keyring, token=token, allowed_origins=[])
        assert token not in str(caught.value) or not token
    for origin in ("*", "localhost:8233", "http://localhost:8233/path"):
        with pytest.raises(CodecServerError, match="scheme://host"):
            CodecServer(keyring, token=new_token(), allowed_origins=[origin])


def test_run_codec_server_refuses_to_start_without_a_token() -> None:
    environ = {"AGENT_TEAMS_ENCRYPTION_KEYS": new_key_line("k")}
    with pytest.raises(CodecServerError, match="AGENT_TEAMS_CODEC_TOKEN is not set"):
        run_codec_server(port=0, environ=environ, out=io.StringIO())
    with pytest.raises(CodecServerError, match="AGENT_TEAMS_CODEC_TOKEN is not set"):
        run_codec_server(port=0, environ={**environ, "AGENT_TEAMS_CODEC_TOKEN": ""})


def test_server_from_env_and_its_banner_never_show_the_token() -> None:
    environ = {
        "AGENT_TEAMS_ENCRYPTION_KEYS": f"{new_key_line('new')}\n{new_key_line('old')}",
        "AGENT_TEAMS_CODEC_TOKEN": TOKEN,
        "AGENT_TEAMS_CODEC_ALLOWED_ORIGINS": "https://cloud.temporal.io, http://localhost:8080/",
    }
    server = codec_server_from_env(environ, port=0)
    try:
        banner = server.banner()
        assert server.url in banner and "keys: new, old" in banner
        assert "http://localhost:8080, https://cloud.temporal.io" in banner
        assert f'--ui-codec-endpoint "{server.url}/$AGENT_TEAMS_CODEC_TOKEN"' in banner
        assert '--codec-auth "Bearer $AGENT_TEAMS_CODEC_TOKEN"' in banner
        assert TOKEN not in banner
    finally:
        server.stop()
    default = codec_server_from_env({**environ, "AGENT_TEAMS_CODEC_ALLOWED_ORIGINS": ""}, port=0)
    try:
        assert "http://127.0.0.1:8233, http://localhost:8233" in default.banner()
    finally:
        default.stop()


async def test_serve_forever_on_a_thread_of_its_own_stops_on_stop(keyring: KeyRing) -> None:
    server = CodecServer(keyring, token=TOKEN, allowed_origins=[])
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        reply = await asyncio.to_thread(
            request, server, "POST", "/decode", b'{"payloads":[]}', BEARER
        )
        assert reply.status == 200
    finally:
        server.stop()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_stop_without_start_returns_at_once(keyring: KeyRing) -> None:
    CodecServer(keyring, token=TOKEN, allowed_origins=[]).stop()


def test_run_codec_server_refuses_to_start_without_keys() -> None:
    with pytest.raises(Exception, match="no encryption keys"):
        run_codec_server(port=0, environ={"AGENT_TEAMS_CODEC_TOKEN": TOKEN}, out=io.StringIO())


# --- end to end: the real temporal CLI ---------------------------------------------------


@dataclass
class EchoInput:
    task: str


@activity.defn(name="codec_test_shout")
async def shout(text: str) -> str:
    return text.upper()


@activity.defn(name="codec_test_refuse")
async def refuse(text: str) -> str:
    raise ApplicationError(f"refused: {text}", non_retryable=True, type="Refused")


@workflow.defn(name="CodecTestWorkflow")
class CodecTestWorkflow:
    """Input, activity input/output, a memo and a failure message, all with user text."""

    @workflow.run
    async def run(self, request: EchoInput) -> str:
        workflow.upsert_memo({"task": request.task})
        try:
            await workflow.execute_activity(
                refuse, request.task, start_to_close_timeout=timedelta(seconds=30)
            )
        except ActivityError:
            pass  # the failure (its message quotes the task) is in history
        return await workflow.execute_activity(
            shout, request.task, start_to_close_timeout=timedelta(seconds=30)
        )


def history_payloads(document: Any) -> list[Payload]:
    """Every payload in ``temporal workflow show --output json`` (bytes are base64 there)."""
    if isinstance(document, dict):
        metadata = document.get("metadata")
        if isinstance(metadata, dict) and "encoding" in metadata:
            return from_json({"payloads": [document]})
        return [p for value in document.values() for p in history_payloads(value)]
    if isinstance(document, list):
        return [p for item in document for p in history_payloads(item)]
    return []


async def temporal_cli(*args: str, tmp_path: Path, check: bool = True) -> tuple[int, str]:
    """Run the real ``temporal`` CLI, isolated from any TEMPORAL_* settings of the host."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    environ["TEMPORAL_CONFIG_FILE"] = str(tmp_path / "no-temporal-config.toml")
    environ["HOME"] = str(tmp_path)
    process = await asyncio.create_subprocess_exec(
        str(temporal_binary()),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=environ,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    output = stdout.decode()
    if check:
        assert process.returncode == 0, output
    return process.returncode or 0, output


async def show_json(*args: str, tmp_path: Path) -> tuple[str, list[Payload]]:
    _, output = await temporal_cli(*args, "--output", "json", tmp_path=tmp_path)
    return output, history_payloads(json.loads(output))


async def test_temporal_cli_decodes_an_encrypted_history_through_the_server(
    env: WorkflowEnvironment, keyring: KeyRing, server: CodecServer, tmp_path: Path
) -> None:
    # The session's dev server, reached by a client with the encrypting converter.
    client = client_with_keys(env, keyring)
    task_queue = f"codec-{uuid.uuid4().hex[:12]}"
    workflow_id = f"codec-e2e-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[CodecTestWorkflow],
        activities=[shout, refuse],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        result = await client.execute_workflow(
            CodecTestWorkflow.run,
            EchoInput(task=SECRET),
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=60),
        )
    assert result == SECRET.upper()

    address = env.client.service_client.config.target_host
    show = ("workflow", "show", "--address", address, "--workflow-id", workflow_id)
    codec = ("--codec-endpoint", server.url, "--codec-auth", f"Bearer {TOKEN}")

    # Without the codec: only ciphertext, in JSON and in the detailed text view.
    raw, payloads = await show_json(*show, tmp_path=tmp_path)
    # workflow input, memo, 2 activity inputs, a failure, activity and workflow results
    assert len(payloads) >= 7
    assert all(p.metadata["encoding"] == ENCODING for p in payloads)
    assert not any(b"walrus" in p.data.lower() for p in payloads)
    assert "walrus" not in raw.lower()  # nor in failure messages, which are plain strings
    assert "refused:" not in raw and "Encoded failure" in raw  # the type stays: "Refused"
    _, text = await temporal_cli(*show, "--detailed", tmp_path=tmp_path)
    assert "walrus" not in text.lower() and "binary/encrypted" in text

    # With it: the CLI posts each payload to /decode and shows the plaintext.
    _, decoded = await show_json(*show, *codec, tmp_path=tmp_path)
    data = [p.data for p in decoded]
    assert json.dumps({"task": SECRET}, separators=(",", ":")).encode() in data  # workflow input
    assert json.dumps(SECRET).encode() in data  # activity input
    assert json.dumps(SECRET.upper()).encode() in data  # activity and workflow result
    _, text = await temporal_cli(*show, "--detailed", *codec, tmp_path=tmp_path)
    assert SECRET in text and SECRET.upper() in text

    # A wrong token decodes nothing: the server answers 401, the CLI gives up
    # (it retries until its deadline) and prints no plaintext.
    wrong = ("--codec-endpoint", server.url, "--codec-auth", "Bearer wrong-token-0123456789")
    status, text = await temporal_cli(
        *show, "--detailed", *wrong, "--command-timeout", "3s", tmp_path=tmp_path, check=False
    )
    assert status != 0
    assert "walrus" not in text.lower()


async def test_temporal_cli_queries_status_without_input_through_the_server(
    env: WorkflowEnvironment, keyring: KeyRing, server: CodecServer, tmp_path: Path
) -> None:
    # A real team run, encrypted, waiting for its editor: `status` takes no argument,
    # so the CLI sends its empty argument list through /encode as `{}`.
    client = client_with_keys(env, keyring)
    task_queue = f"codec-query-{uuid.uuid4().hex[:12]}"
    async with running_worker(client, task_queue):
        handle = await start(client, task_queue, "research", SECRET)
        await awaiting_approval(handle)
        address = env.client.service_client.config.target_host
        query = ("workflow", "query", "--address", address, "--workflow-id", handle.id)
        codec = ("--codec-endpoint", server.url, "--codec-auth", f"Bearer {TOKEN}")

        _, output = await temporal_cli(*query, "--type", "status", *codec, tmp_path=tmp_path)

        await handle.terminate("test over")
    assert '"phase":"awaiting_approval"' in output.replace(" ", "")
    assert handle.id in output
