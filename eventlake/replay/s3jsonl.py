"""`jsonl:s3://bucket/key`: JSON lines into one S3 object, which appears only when the replay
completes, and a replay killed on the way resumes exactly (every event once, in order).

The lines go into an S3 multipart upload. They are buffered in memory until the buffer holds a
part (`part_size`, 8 MiB; S3 refuses parts under 5 MiB except the last), which is then uploaded
whole; only then are its events durable, and the replay checkpoints them (`acknowledged`). The
checkpoint's `target` state names the upload, the parts done (number, ETag) and their bytes:

    send -> buffer -> [>= part_size] UploadPart n -> checkpoint (parts 1..n) -> send ...
    finish: UploadPart (the rest) -> CompleteMultipartUpload(parts 1..n+1) -> checkpoint (completed)
            (nothing uploaded yet: one PutObject of the buffer instead)

What a kill can leave, and why resuming is exact:
- killed before part n is uploaded: the buffer is lost; the checkpoint names parts 1..n-1 and
  the position after their last event, so the same events are read and buffered again.
- killed after part n, before its checkpoint: part n is in the upload but not in the
  checkpoint; it is uploaded again from the same events under the same number (S3 keeps the
  last), and CompleteMultipartUpload only ever names the checkpointed parts.
- resume checks the upload with ListParts: when it is gone (aborted, expired by a lifecycle
  rule, completed after its last checkpoint) or a part differs, it is aborted and the replay
  starts over from the first event (`resume` returns None), writing the object anew.

A failure that stops the replay does not abort the upload (a re-run with the same checkpoint
resumes it); the error says how to abort it. A bucket lifecycle rule
`AbortIncompleteMultipartUpload` removes uploads left behind (S3 bills their parts meanwhile).
Parts grow by `part_size` every 1,000 parts, so the 10,000 parts S3 allows hold 55,000 x
`part_size` (430 GiB with 8 MiB).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from eventlake.aws import Clients, error_code
from eventlake.replay.batch import Batch
from eventlake.replay.checkpoint import Checkpoint
from eventlake.replay.select import Position
from eventlake.replay.targets import DeliveryError, Target, TargetError

if TYPE_CHECKING:
    import pyarrow as pa
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

PART_SIZE = 8 * 1024 * 1024
"""Bytes buffered before a part is uploaded (the first 1,000 parts; see `_threshold`)."""
MIN_PART_SIZE = 5 * 1024 * 1024
"""S3's smallest part but the last (a test may lower it, with moto's S3_UPLOAD_PART_MIN_SIZE)."""
KIND = "s3-multipart"
"""The `kind` of this target's state in a checkpoint."""
CONTENT_TYPE = "application/x-ndjson"

_log = logging.getLogger(__name__)


class S3JsonlTarget(Target):
    """JSON lines into the S3 object `uri` (s3://bucket/key) through a multipart upload; see
    the module's docstring. `part_size` is the bytes buffered before a part is uploaded."""

    def __init__(self, uri: str, clients: Clients, *, part_size: int = PART_SIZE) -> None:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not uri.startswith("s3://") or not bucket or not key or key.endswith("/"):
            raise TargetError(f"target `jsonl:{uri}`: expected s3://bucket/key (an object, "
                              "not a folder)")
        if part_size < MIN_PART_SIZE:
            raise TargetError(f"target `jsonl:{uri}`: a part of {part_size} bytes is under "
                              f"S3's minimum of {MIN_PART_SIZE}")
        self.uri, self.bucket, self.key = uri, bucket, key
        self.clients = clients
        self.part_size = part_size
        self._reset()

    @property
    def name(self) -> str:
        return f"jsonl:{self.uri}"

    def describe(self) -> str:
        return self.name

    def _reset(self) -> None:
        self._upload_id: str | None = None
        self._parts: list[tuple[int, str]] = []
        self._bytes = 0
        """Bytes in the uploaded parts."""
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._pending: list[pa.ChunkedArray] = []
        """The event_ids of the buffered events (named when they cannot be delivered)."""
        self._count = 0
        self._last: Position | None = None
        self._durable = False
        """A part was uploaded since the last `acknowledged`."""
        self._completed = False

    # -- resuming -------------------------------------------------------------------------

    def start(self, checkpoint: Checkpoint | None) -> None:
        if self.resume(checkpoint) is not checkpoint:
            raise TargetError(f"{self.name}: the checkpoint's upload cannot be resumed; the "
                              "replay must start over (use `resume`)")

    def resume(self, checkpoint: Checkpoint | None) -> Checkpoint | None:
        """Continue the upload `checkpoint` names (checked with ListParts); None when it is
        gone or differs: it is aborted and the replay starts over."""
        self._reset()
        if checkpoint is None:
            return None
        state = checkpoint.target or {}
        if state.get("kind") != KIND:
            raise TargetError(f"the checkpoint was not written by a jsonl:s3:// target, so "
                              f"{self.name} cannot resume from it (use another --checkpoint)")
        if state.get("uri") != self.uri:
            raise TargetError(f"the checkpoint belongs to `jsonl:{state.get('uri')}`, not "
                              f"{self.name}: use another --checkpoint")
        try:
            completed = bool(state.get("completed"))
            upload_id = None if completed else str(state["upload_id"])
            parts = [(int(number), str(etag)) for number, etag in state.get("parts", [])]
            size = int(state["bytes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TargetError(f"the checkpoint's upload state {state!r} is malformed ({exc!r});"
                              " delete the checkpoint to replay from the start") from exc
        if upload_id is not None:
            problem = self._check(upload_id, parts)
            if problem is not None:
                _log.warning("%s: %s; aborting it and replaying from the start",
                             self.name, problem)
                self._abort(upload_id)
                return None
        self._upload_id, self._parts, self._bytes = upload_id, parts, size
        self._count, self._last, self._completed = checkpoint.count, checkpoint.position, completed
        return checkpoint

    def _check(self, upload_id: str, parts: Sequence[tuple[int, str]]) -> str | None:
        """What is wrong with the upload (ListParts against the checkpoint), or None."""
        listed: dict[int, str] = {}
        try:
            pages = self.clients.s3.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=self.key, UploadId=upload_id)
            for page in pages:
                listed.update((p["PartNumber"], _etag(p["ETag"]))
                              for p in page.get("Parts", []))
        except Exception as exc:
            if error_code(exc) in ("NoSuchUpload", "404"):
                return (f"the multipart upload `{upload_id}` is gone (aborted, expired by a "
                        "lifecycle rule, or completed after the last checkpoint)")
            raise
        for number, etag in parts:
            if listed.get(number) != _etag(etag):
                return (f"part {number} of the multipart upload `{upload_id}` is "
                        f"{'missing' if number not in listed else 'not the one checkpointed'}")
        return None

    def _abort(self, upload_id: str) -> None:
        try:
            self.clients.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key,
                                                   UploadId=upload_id)
        except Exception as exc:
            if error_code(exc) not in ("NoSuchUpload", "404"):
                raise

    # -- sending --------------------------------------------------------------------------

    def send(self, batch: Batch) -> int | None:
        if self._completed:
            raise TargetError(
                f"{self.name} was completed by an earlier run (its checkpoint says so) and the "
                f"selection now holds events after it (`{batch.rows.column('event_id')[0]}` "
                "...): an S3 object cannot be appended to; delete the checkpoint to write it "
                "anew")
        data = batch.lines(self.shape)
        self._buffer.append(data)
        self._buffered += len(data)
        self._pending.append(batch.rows.column("event_id"))
        self._count += len(batch)
        self._last = batch.last
        if self._buffered >= self._threshold():
            self._upload_part()
            self._durable = True
        return None

    def acknowledged(self, batch: Batch, count: int, offset: int | None) -> Checkpoint | None:
        """The checkpoint after a part was uploaded (its events are durable), else None."""
        if not self._durable:
            return None
        self._durable = False
        return self._checkpoint()

    def finish(self) -> Checkpoint | None:
        """Upload what is buffered and complete the upload (or PutObject the whole output when
        it is under a part): the object appears now. The checkpoint records completion."""
        if self._completed:
            return None
        data = b"".join(self._buffer)
        if self._upload_id is None:
            self._call("PutObject", self.clients.s3.put_object, Bucket=self.bucket,
                       Key=self.key, Body=data, ContentType=CONTENT_TYPE)
            self._bytes = len(data)
        else:
            if data:
                self._upload_part()
            parts: list[CompletedPartTypeDef] = [{"PartNumber": number, "ETag": etag}
                                                 for number, etag in self._parts]
            self._call("CompleteMultipartUpload", self.clients.s3.complete_multipart_upload,
                       Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                       MultipartUpload={"Parts": parts})
        self._completed = True
        self._clear_buffer()
        return self._checkpoint() if self._last is not None else None

    def close(self) -> None:
        """Drop the buffer. The upload is left as it is (a re-run resumes it)."""
        self._clear_buffer()

    # -- parts ----------------------------------------------------------------------------

    def _threshold(self) -> int:
        """Bytes for the next part: `part_size`, one more `part_size` every 1,000 parts."""
        return self.part_size * (1 + len(self._parts) // 1000)

    def _upload_part(self) -> None:
        if len(self._parts) >= 10_000:
            self._fail("UploadPart", "S3 allows 10,000 parts an upload and this output needs "
                       "more: replay a shorter time range into each object")
        if self._upload_id is None:
            created = self._call("CreateMultipartUpload",
                                 self.clients.s3.create_multipart_upload, Bucket=self.bucket,
                                 Key=self.key, ContentType=CONTENT_TYPE)
            self._upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        data = b"".join(self._buffer)
        uploaded = self._call("UploadPart", self.clients.s3.upload_part, Bucket=self.bucket,
                              Key=self.key, UploadId=self._upload_id, PartNumber=number,
                              Body=data)
        self._parts.append((number, str(uploaded["ETag"])))
        self._bytes += len(data)
        self._clear_buffer()

    def _clear_buffer(self) -> None:
        self._buffer, self._buffered, self._pending = [], 0, []

    def _checkpoint(self) -> Checkpoint:
        assert self._last is not None
        state: dict[str, Any] = {"kind": KIND, "uri": self.uri, "bytes": self._bytes}
        if self._completed:
            state["completed"] = True
        else:
            state["upload_id"] = self._upload_id
            state["parts"] = [[number, etag] for number, etag in self._parts]
        return Checkpoint(self._last.timestamp, self._last.event_id, self._count, None, state)

    def _call(self, operation: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        """`method(**kwargs)` (botocore retries transient failures); what still fails stops the
        replay as a DeliveryError naming the buffered events."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return method(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            self._fail(operation, str(exc), exc)

    def _fail(self, operation: str, reason: str,
              cause: BaseException | None = None) -> NoReturn:
        event_ids = [str(e) for ids in self._pending for e in ids.to_pylist()]
        kept = ""
        if self._upload_id is not None:
            kept = (f"; the multipart upload `{self._upload_id}` is kept so that a re-run with "
                    "the same --checkpoint resumes it. To give up instead: aws s3api "
                    f"abort-multipart-upload --bucket {self.bucket} --key {self.key} "
                    f"--upload-id {self._upload_id} (or let a lifecycle rule "
                    "AbortIncompleteMultipartUpload remove it)")
        raise DeliveryError(self.name, event_ids, f"{operation} failed: {reason}{kept}"
                            ) from cause


def _etag(etag: str) -> str:
    """An ETag without its quotes (S3 quotes them; some S3-compatible stores do not)."""
    return etag.strip('"')
