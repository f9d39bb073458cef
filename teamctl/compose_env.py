"""``teamctl compose-env``: the secrets docker-compose refuses to start without.

docker-compose.yml has no default password and no default key: every secret
is a required variable (``${VAR:?...}``), so ``docker compose up`` on a fresh
clone stops with the name of the first missing one instead of starting a
stack anyone could log into. This command makes them once, for a local
stack:

- ``.env`` beside docker-compose.yml (mode 0600; compose reads it): random
  passwords for PostgreSQL, Redis and Grafana's admin, the codec server's
  token, and the paths of the key files below;
- ``deploy/secrets/codec.keys``: the payload encryption key ring;
- ``deploy/secrets/approvers.toml``: the approvers registry, one Ed25519 key
  pair per approver the shipped teams name (private keys under
  ``deploy/secrets/approvers/``: hand each to its approver, then delete it).

Nothing is overwritten: a second run refuses, because a new PostgreSQL
password would lock the stack out of its existing volume and a new key would
make older runs unreadable (rotate keys with ``teamctl keys codec --rotate``).
Both paths are in .gitignore. For a real deployment, put the same values in
your secret store and pass them as environment variables instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from errors import AgentTeamsError
from security.keyring import write_key_file
from security.signing_keys import registry_line, write_key_pair

SECRETS_DIR = Path("deploy/secrets")
ENV_FILE = Path(".env")
PASSWORD_VARIABLES = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "GRAFANA_ADMIN_PASSWORD")
"""Random passwords compose requires (one per service that has a login)."""


class ComposeEnvError(AgentTeamsError):
    """The compose secrets already exist, or a file could not be written."""


@dataclass(frozen=True)
class ComposeSecrets:
    """What :func:`make_compose_env` wrote (paths only: no secret values)."""

    env_file: Path
    key_file: Path
    approvers_file: Path
    private_keys: tuple[Path, ...]


def make_compose_env(root: Path, approvers: Sequence[str]) -> ComposeSecrets:
    """Write ``.env`` and ``deploy/secrets/`` under ``root``; refuse if any exists."""
    if not approvers:
        raise ComposeEnvError("name at least one approver (the approvers registry is required)")
    env_file, folder = root / ENV_FILE, root / SECRETS_DIR
    for existing in (env_file, folder):
        if existing.exists():
            raise ComposeEnvError(
                f"{existing} already exists; refusing to replace compose secrets "
                "(a new database password would lock the stack out of its volume). "
                "Remove it yourself to start over."
            )
    folder.mkdir(mode=0o700, parents=True)
    key_file = folder / "codec.keys"
    write_key_file(key_file, rotate=False)
    lines, private = [], []
    for name in dict.fromkeys(approvers):  # de-duplicated, order kept
        key_path, pub_path = write_key_pair(folder / "approvers", name)
        lines.append(registry_line(name, pub_path.read_text(encoding="ascii").strip()))
        private.append(key_path)
    approvers_file = folder / "approvers.toml"
    approvers_file.write_text(_registry_text(lines), encoding="utf-8")
    env_text = _env_text(key_file.relative_to(root), approvers_file.relative_to(root))
    _write_private(env_file, env_text)
    return ComposeSecrets(env_file, key_file, approvers_file, tuple(private))


def _registry_text(lines: Iterable[str]) -> str:
    header = (
        "# Approvers registry (AGENT_TEAMS_APPROVERS_FILE): public keys only.\n"
        "# Add people with `teamctl keys new --as NAME --out DIR`.\n"
    )
    return header + "[approvers]\n" + "".join(f"{line}\n" for line in lines)


def _env_text(key_file: Path, approvers_file: Path) -> str:
    values = {name: secrets.token_urlsafe(24) for name in PASSWORD_VARIABLES}
    values["AGENT_TEAMS_CODEC_TOKEN"] = secrets.token_urlsafe(32)
    values["AGENT_TEAMS_ENCRYPTION_KEY_FILE"] = f"./{key_file}"
    values["AGENT_TEAMS_APPROVERS_FILE"] = f"./{approvers_file}"
    body = "".join(f"{name}={value}\n" for name, value in values.items())
    return "# Made by `teamctl compose-env`; secret: mode 0600, never commit it.\n" + body


def _write_private(path: Path, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as err:
        raise ComposeEnvError(f"cannot write {path}: {err.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
