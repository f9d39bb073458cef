"""``teamctl`` commands that run or set up the system: teams, keys, compose-env, dev-server.

None of them reaches a Temporal server; none prints private key material or
secret values (paths only).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from security.keyring import write_key_file
from security.signing_keys import registry_line, write_key_pair
from teamctl.cli.context import team_catalog
from teamctl.codec_server import codec_server_from_env
from teamctl.compose_env import make_compose_env
from teamctl.devserver import (
    CODEC_PORT_SETTING,
    dev_server_listeners,
    start_dev_server,
    wait_until_ready,
)
from teamctl.ports import check_ports_free
from teams.spec.team import ApprovalStage


def make_keys(args: argparse.Namespace) -> int:
    """``teamctl keys new|codec``: write key files (never printing private material)."""
    if args.key_kind == "new":
        key_path, pub_path = write_key_pair(args.out, args.approver)
        public = pub_path.read_text().strip()
        print(f"wrote {key_path} (private, mode 0600: give it to {args.approver} only)")
        print(f"wrote {pub_path}")
        print("add this line to the [approvers] table of AGENT_TEAMS_APPROVERS_FILE:")
        print(f"  {registry_line(args.approver, public)}")
        return 0
    write_key_file(args.out, rotate=args.rotate)
    verb = "added a new active key to" if args.rotate else "wrote"
    print(f"{verb} {args.out} (mode 0600); point AGENT_TEAMS_ENCRYPTION_KEY_FILE at it")
    return 0


def catalog_approvers() -> list[str]:
    """Every approver (and escalation approver) the shipped teams name, in order."""
    catalog = team_catalog()
    names: list[str] = []
    for team in catalog.team_names():
        for stage in catalog.load_team(team).stages:
            if isinstance(stage, ApprovalStage):
                names += [*stage.approvers, *stage.escalate_to]
    return list(dict.fromkeys(names))


def compose_env(root: Path, approvers: Sequence[str]) -> int:
    """``teamctl compose-env``: write .env and deploy/secrets/ (paths printed, never values)."""
    made = make_compose_env(root, approvers)
    print(f"wrote {made.env_file} (mode 0600): passwords, the codec token, key file paths")
    print(f"wrote {made.key_file} (mode 0600): the payload encryption key ring")
    print(f"wrote {made.approvers_file}: the approvers registry ({len(made.private_keys)} keys)")
    for key in made.private_keys:
        print(f"  private key {key}: give it to its approver, then delete it here")
    print("next: docker compose up -d --build")
    return 0


def list_teams() -> int:
    """``teamctl teams``: each shipped team and its description."""
    catalog = team_catalog()
    for name in catalog.team_names():
        spec = catalog.load_team(name)
        print(f"{name:<12} {spec.description}")
    return 0


async def dev_server(args: argparse.Namespace) -> int:
    """The dev server; with encryption keys and a codec token set, its UI decodes payloads."""
    codec = None
    extra: tuple[str, ...] = ()
    with_codec = bool(os.environ.get("AGENT_TEAMS_CODEC_TOKEN"))
    # Every port first: a busy one is a sentence before anything has started.
    check_ports_free(dev_server_listeners(args.port, args.ui_port, with_codec=with_codec))
    if with_codec:
        ui_origins = (f"http://localhost:{args.ui_port}", f"http://127.0.0.1:{args.ui_port}")
        codec = codec_server_from_env(
            os.environ,
            port=args.ui_port + 1,
            allowed_origins=ui_origins,
            port_setting=CODEC_PORT_SETTING,
        ).start()
        extra = ("--ui-codec-endpoint", codec.ui_endpoint)
    server = start_dev_server(
        port=args.port, ui_port=args.ui_port, db_file=args.db_file, extra_args=extra
    )
    try:
        await wait_until_ready(server, args.namespace or "default")
        print(f"Temporal dev server on {server.address}, UI {server.ui_url}, state {args.db_file}")
        if codec is not None:
            print(f"payloads decoded for the UI by the codec server on {codec.url}")
            # teamctl prints `temporal` commands with the codec flags only when it
            # knows the codec server (the temporal CLI's own setting, read by both).
            print(f"  for the temporal CLI: export TEMPORAL_CODEC_ENDPOINT={codec.url}")
        print("Ctrl-C to stop")
        await _until_exit_or_signal(server.process)
    finally:
        server.stop()
        if codec is not None:
            codec.stop()
    return 0


async def _until_exit_or_signal(process: subprocess.Popen[bytes]) -> None:
    """Wait until ``process`` exits or we get SIGINT/SIGTERM (then the caller stops it).

    Handled explicitly: a SIGTERM (systemd, docker stop) would otherwise end this
    process at once and leave the server it started running, and a shell starts
    background jobs with SIGINT ignored.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    exited = asyncio.ensure_future(asyncio.to_thread(process.wait))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((exited, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
