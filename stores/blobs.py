"""Large values outside history: tool results and agents' tool conversations.

A run that calls tools would otherwise carry every result through history twice
(as the tool's activity result, then in every later model turn's input), and its
history would grow quadratically towards Temporal's limits. Instead a large value
is written here once and history carries a :class:`contracts.tools.BlobRef`.

The storage is a Temporal external-storage driver
(:class:`temporalio.converter.StorageDriver`): :class:`FileStorageDriver` for one
host (development, ``make demo``), or the S3/GCS drivers in ``temporalio.contrib``
for a fleet, the same drivers the data converter can offload any oversized payload
to. Invariants:

- What is stored is sealed with the payload key ring, as history is
  (:class:`security.codec.EncryptionCodec`), so the blob store holds nothing a
  history would not; without keys it is plaintext, and said so at start-up.
- A blob is addressed by the SHA-256 of what is stored, and its ref also holds
  the SHA-256 of the value: a read checks both, so a corrupted or substituted
  blob is an error, never a wrong answer. (Sealing uses a fresh nonce, so the
  same value written twice is two blobs: equal values are not revealed.)
- Reads and writes are activities' work; workflow code only passes refs along.
- Blobs are never deleted by a run (a replay or a later turn may read them);
  a deployment expires them by age, as it does histories (docs/tools.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)

from contracts.tools import BlobRef
from errors import AgentTeamsError
from security.codec import EncryptionCodec, PayloadDecryptionError
from security.keyring import KeyRing
from security.private_files import PRIVATE_FILE_MODE, private_folder

log = logging.getLogger("stores.blobs")

FILE_DRIVER = "agent-teams.file"
"""The name :class:`FileStorageDriver` stores under (recorded in every ref)."""
DEFAULT_BLOB_URL = "file:.temporal/blobs"
"""Where a worker keeps blobs unless ``AGENT_TEAMS_BLOB_URL`` says otherwise."""

_BINARY = b"binary/plain"


class BlobError(AgentTeamsError):
    """A blob cannot be stored or read (missing, corrupted, or sealed under an unknown key)."""


class FileStorageDriver(StorageDriver):
    """Blobs as files in one folder (``<root>/<first two hex digits>/<sha256>``), mode 0600.

    For one host: every worker and client that reads a blob must see the folder.
    """

    def __init__(self, root: Path, *, name: str = FILE_DRIVER) -> None:
        self._root = root
        self._name = name

    def name(self) -> str:
        """The driver's name, recorded in each claim's ref."""
        return self._name

    async def store(
        self, context: StorageDriverStoreContext, payloads: Sequence[Payload]
    ) -> list[StorageDriverClaim]:
        """Write each payload (once per content) and claim it by its hash."""
        return [await asyncio.to_thread(self._write, p) for p in payloads]

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        """Read each claimed payload back, checking its hash."""
        return [await asyncio.to_thread(self._read, c) for c in claims]

    def _path(self, digest: str) -> Path:
        return self._root / digest[:2] / digest

    def _write(self, payload: Payload) -> StorageDriverClaim:
        data = payload.SerializeToString(deterministic=True)
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if not path.exists():
            private_folder(path.parent)
            # Written aside, then renamed: a reader never sees half a blob.
            partial = path.with_name(f".{digest}.{os.getpid()}.part")
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
            with os.fdopen(descriptor, "wb") as out:
                out.write(data)
            os.replace(partial, path)
        return StorageDriverClaim(claim_data={"sha256": digest})

    def _read(self, claim: StorageDriverClaim) -> Payload:
        digest = claim.claim_data.get("sha256", "")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise BlobError(f"blob claim {dict(claim.claim_data)!r} names no sha256")
        path = self._path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobError(f"blob {digest[:12]} is not in {self._root}") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise BlobError(f"blob {digest[:12]} in {self._root} is corrupted")
        payload = Payload()
        payload.ParseFromString(data)
        return payload


class Blobs:
    """Store and read large values through a driver, sealed with the key ring."""

    def __init__(
        self,
        driver: StorageDriver,
        keyring: KeyRing | None,
        *,
        closing: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._driver = driver
        self._codec = EncryptionCodec(keyring, compress=True) if keyring is not None else None
        self._closing = closing

    @property
    def driver(self) -> StorageDriver:
        """The storage driver (the data converter's external storage may share it)."""
        return self._driver

    async def aclose(self) -> None:
        """Release the driver's connections (an S3 client); once, when the worker stops."""
        if self._closing is not None:
            await self._closing()
            self._closing = None

    @property
    def sealed(self) -> bool:
        """Whether values are encrypted at rest."""
        return self._codec is not None

    async def put(self, data: bytes) -> BlobRef:
        """Store ``data``; the ref to read it back."""
        payload = Payload(metadata={"encoding": _BINARY}, data=data)
        if self._codec is not None:
            payload = self._codec.encrypt(payload)
        (claim,) = await self._driver.store(StorageDriverStoreContext(), [payload])
        return BlobRef(
            driver=self._driver.name(),
            claim=dict(claim.claim_data),
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )

    async def get(self, ref: BlobRef) -> bytes:
        """The bytes ``ref`` names; :class:`BlobError` if they are gone or not the same."""
        if ref.driver != self._driver.name():
            raise BlobError(
                f"blob {ref.sha256[:12]} is in store {ref.driver!r}; this worker reads "
                f"{self._driver.name()!r} (AGENT_TEAMS_BLOB_URL)"
            )
        (payload,) = await self._driver.retrieve(
            StorageDriverRetrieveContext(), [StorageDriverClaim(claim_data=ref.claim)]
        )
        if self._codec is not None:
            try:
                payload = self._codec.decrypt(payload)
            except PayloadDecryptionError as err:
                raise BlobError(f"blob {ref.sha256[:12]}: {err}") from None
        data = payload.data
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise BlobError(f"blob {ref.sha256[:12]} does not hold what its ref says")
        return data


async def open_blobs(url: str, keyring: KeyRing | None) -> Blobs:
    """The blob store ``url`` names: ``file:PATH`` (one host) or ``s3://BUCKET`` (a fleet).

    ``s3://`` needs ``aioboto3`` (and AWS's usual credentials in the environment).
    """
    closing: Callable[[], Awaitable[None]] | None = None
    if url.startswith("file:"):
        path = Path(url.removeprefix("file:").removeprefix("//"))
        driver: StorageDriver = FileStorageDriver(path)
    elif url.startswith("s3://"):
        driver, closing = await _s3_driver(url)
    else:
        raise BlobError(f"AGENT_TEAMS_BLOB_URL: {url!r} is neither file:PATH nor s3://BUCKET")
    if keyring is None:
        log.warning(
            "blobs (large tool results) are stored unencrypted in %s: set "
            "AGENT_TEAMS_ENCRYPTION_KEY_FILE to seal them as history is",
            url,
        )
    return Blobs(driver, keyring, closing=closing)


async def _s3_driver(url: str) -> tuple[StorageDriver, Callable[[], Awaitable[None]]]:
    bucket = url.removeprefix("s3://").strip("/")
    try:
        import aioboto3  # type: ignore[import-not-found,unused-ignore]  # optional: S3 fleets
        from temporalio.contrib.aws.s3driver import S3StorageDriver
        from temporalio.contrib.aws.s3driver.aioboto3 import new_aioboto3_client
    except ImportError as err:
        raise BlobError(
            f"AGENT_TEAMS_BLOB_URL={url}: the S3 driver needs aioboto3 (pip install aioboto3)"
        ) from err
    context = aioboto3.Session().client("s3")
    client = await context.__aenter__()

    async def closing() -> None:
        await context.__aexit__(None, None, None)

    return S3StorageDriver(client=new_aioboto3_client(client), bucket=bucket), closing
