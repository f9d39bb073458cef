"""Rate-limit token buckets in SQL: one take per request id."""

from __future__ import annotations

from stores.controls import rules
from stores.controls.contract import BucketTake, TakeAnswer
from stores.controls.sql.tx import Tx


def take(tx: Tx, request: BucketTake) -> TakeAnswer:
    """See :meth:`ControlsStore.take`."""
    tx.run(
        "INSERT INTO ctl_buckets (bucket, level, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (bucket) DO NOTHING",
        request.bucket,
        request.capacity,
        tx.now,
    )
    row = tx.one(
        "SELECT level, updated_at FROM ctl_buckets WHERE bucket = ?" + tx.for_update,
        request.bucket,
    )
    assert row is not None  # inserted just above, in this transaction
    level = rules.bucket_level(row[0], row[1], request.capacity, request.per_second, tx.now)
    if tx.one("SELECT 1 FROM ctl_takes WHERE request_id = ?", request.request_id) is not None:
        return TakeAnswer(granted=True, level=level)  # this attempt took its share already
    wanted = min(request.tokens, request.capacity)
    granted = level >= wanted
    if granted:
        level -= wanted
        tx.run("INSERT INTO ctl_takes (request_id, at) VALUES (?, ?)", request.request_id, tx.now)
    tx.run(
        "UPDATE ctl_buckets SET level = ?, updated_at = ? WHERE bucket = ?",
        level,
        tx.now,
        request.bucket,
    )
    if granted:
        return TakeAnswer(granted=True, level=level)
    return TakeAnswer(
        granted=False, retry_after_s=(wanted - level) / request.per_second, level=level
    )
