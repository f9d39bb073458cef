"""The blob store: large values outside history, sealed, content-addressed, checked on read."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path

import pytest
from temporalio.contrib.aws.s3driver import S3StorageDriver, S3StorageDriverClient

from security.keyring import KeyRing, write_key_file
from stores.blobs import FILE_DRIVER, BlobError, Blobs, FileStorageDriver, open_blobs

pytestmark = pytest.mark.unit

SECRET = b"the refund for order A-1001 was approved by dana@example.com"


@pytest.fixture
def keyring(tmp_path: Path) -> KeyRing:
    path = tmp_path / "codec.key"
    write_key_file(path, rotate=False, key_id="key-a")
    return KeyRing.from_file(path)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


async def test_a_value_is_stored_once_sealed_and_read_back(
    tmp_path: Path, keyring: KeyRing
) -> None:
    blobs = Blobs(FileStorageDriver(tmp_path / "blobs"), keyring)
    ref = await blobs.put(SECRET)
    again = await blobs.put(SECRET)
    assert (ref.driver, ref.size) == (FILE_DRIVER, len(SECRET))
    assert await blobs.get(ref) == SECRET
    # Sealed with a fresh nonce each time: two blobs, which do not reveal they are equal.
    assert ref.sha256 == again.sha256 and ref.claim != again.claim
    stored = _files(tmp_path / "blobs")
    assert len(stored) == 2
    for path in stored:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert SECRET not in path.read_bytes() and b"dana" not in path.read_bytes()
    assert await blobs.get(again) == SECRET


async def test_without_keys_values_are_plaintext_and_readable(tmp_path: Path) -> None:
    blobs = Blobs(FileStorageDriver(tmp_path / "blobs"), None)
    ref = await blobs.put(SECRET)
    again = await blobs.put(SECRET)
    assert ref == again
    (stored,) = _files(tmp_path / "blobs")
    assert SECRET in stored.read_bytes()
    assert await blobs.get(ref) == SECRET


async def test_a_corrupted_or_missing_blob_is_an_error_never_a_wrong_value(
    tmp_path: Path, keyring: KeyRing
) -> None:
    blobs = Blobs(FileStorageDriver(tmp_path / "blobs"), keyring)
    ref = await blobs.put(SECRET)
    (stored,) = _files(tmp_path / "blobs")
    data = bytearray(stored.read_bytes())
    data[-1] ^= 1
    stored.write_bytes(bytes(data))
    with pytest.raises(BlobError, match=f"^blob {ref.claim['sha256'][:12]} in .* is corrupted$"):
        await blobs.get(ref)
    stored.unlink()
    with pytest.raises(BlobError, match=f"^blob {ref.claim['sha256'][:12]} is not in "):
        await blobs.get(ref)


async def test_a_blob_sealed_under_another_ring_is_refused_by_key_id(
    tmp_path: Path, keyring: KeyRing
) -> None:
    ref = await Blobs(FileStorageDriver(tmp_path / "blobs"), keyring).put(SECRET)
    other = tmp_path / "other.key"
    write_key_file(other, rotate=False, key_id="key-b")
    reader = Blobs(FileStorageDriver(tmp_path / "blobs"), KeyRing.from_file(other))
    with pytest.raises(BlobError, match="key 'key-a', which is not in the key ring"):
        await reader.get(ref)


async def test_a_ref_of_another_store_names_both(tmp_path: Path) -> None:
    ref = await Blobs(FileStorageDriver(tmp_path / "a", name="store-a"), None).put(SECRET)
    with pytest.raises(BlobError, match="is in store 'store-a'; this worker reads"):
        await Blobs(FileStorageDriver(tmp_path / "a"), None).get(ref)


class _Bucket(S3StorageDriverClient):
    """An S3 bucket in memory: the S3 driver's own key scheme, without AWS."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    async def put_object(self, *, bucket: str, key: str, data: bytes) -> None:
        self.objects[(bucket, key)] = data

    async def object_exists(self, *, bucket: str, key: str) -> bool:
        return (bucket, key) in self.objects

    async def get_object(self, *, bucket: str, key: str) -> bytes:
        return self.objects[(bucket, key)]

    def describe(self) -> Mapping[str, str]:
        return {}


async def test_temporals_s3_driver_stores_sealed_blobs(keyring: KeyRing) -> None:
    bucket = _Bucket()
    blobs = Blobs(S3StorageDriver(client=bucket, bucket="agent-teams"), keyring)
    ref = await blobs.put(SECRET)
    assert ref.driver == "aws.s3driver"
    assert ref.claim["bucket"] == "agent-teams"
    ((where, data),) = bucket.objects.items()
    assert where == ("agent-teams", ref.claim["key"])
    assert SECRET not in data
    assert await blobs.get(ref) == SECRET


async def test_the_url_chooses_the_store(tmp_path: Path) -> None:
    blobs = await open_blobs(f"file:{tmp_path / 'b'}", None)
    assert blobs.driver.name() == FILE_DRIVER
    with pytest.raises(BlobError, match="neither file:PATH nor s3://BUCKET"):
        await open_blobs("ftp://x", None)
