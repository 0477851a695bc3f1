"""The batch jobs' objects in the datasets storage (Django's ``default`` storage): S3 or local files.

Django's storage API opens whole files (django-storages' ``S3File`` downloads the object before the first read);
batch scoring needs byte ranges, streams, overwrites and S3's server-side copy, so this module talks to the
storage's own client for them. Every other module goes through here: it is the seam faults are injected at.
"""

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from typing import IO, Any

from django.core.files.storage import storages

logger = logging.getLogger(__name__)

# S3 refuses an UploadPartCopy source under 5 MiB for every part but the last.
S3_MIN_PART_BYTES = 5 * 1024 * 1024
STREAM_BLOCK_BYTES = 1 << 20
# An upload followed to S3 goes in parts of this size (10 000 parts: up to 80 GiB).
FOLLOW_PART_BYTES = 8 * 1024 * 1024


def _storage() -> Any:
    return storages["default"]


def is_s3() -> bool:
    return hasattr(_storage(), "bucket_name")


def _s3() -> tuple[Any, str]:
    storage = _storage()
    return storage.connection.meta.client, storage.bucket_name


def _key(name: str) -> str:
    return _storage()._normalize_name(name)


def exists(name: str) -> bool:
    return bool(_storage().exists(name))


def size(name: str) -> int:
    return int(_storage().size(name))


def open_range(name: str, start: int = 0, end: int | None = None) -> Any:
    """A stream of bytes ``[start, end)`` of the object (to its end without ``end``), read as it is consumed."""
    if end is not None and end <= start:
        return _Bytes(b"")
    if is_s3():
        client, bucket = _s3()
        ranged = f"bytes={start}-{'' if end is None else end - 1}"
        return client.get_object(Bucket=bucket, Key=_key(name), Range=ranged)["Body"]
    stream = open(_storage().path(name), "rb")  # noqa: SIM115 - closed by its reader
    stream.seek(start)
    return stream if end is None else _Limited(stream, end - start)


def read_range(name: str, start: int, end: int) -> bytes:
    with open_range(name, start, end) as stream:
        return stream.read()


def iter_blocks(name: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    stream = open_range(name, start, end)
    try:
        while block := stream.read(STREAM_BLOCK_BYTES):
            yield block
    finally:
        stream.close()


def put_file(name: str, path: str) -> None:
    """Store the local file at ``path`` as ``name``, replacing any object of that name (a redone chunk's part)."""
    if is_s3():
        client, bucket = _s3()
        client.upload_file(path, bucket, _key(name), Config=_storage().transfer_config)
        return
    target = _storage().path(name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    partial = f"{target}.{os.getpid()}.partial"
    shutil.copyfile(path, partial)
    os.replace(partial, target)


def put_stream(name: str, stream: Any) -> None:
    """Store what ``stream`` yields as ``name`` (S3: a multipart upload of its blocks), replacing any object."""
    if is_s3():
        client, bucket = _s3()
        client.upload_fileobj(stream, bucket, _key(name), Config=_storage().transfer_config)
        return
    target = _storage().path(name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    partial = f"{target}.{os.getpid()}.partial"
    with open(partial, "wb") as out:
        shutil.copyfileobj(stream, out, STREAM_BLOCK_BYTES)
    os.replace(partial, target)


def download(name: str) -> str:
    """The object in a local temporary file; the caller removes it."""
    handle, path = tempfile.mkstemp(prefix="mds-batch-")
    with os.fdopen(handle, "wb") as out:
        for block in iter_blocks(name):
            out.write(block)
    return path


def delete(name: str) -> None:
    _storage().delete(name)


def concatenate(names: list[str], target: str) -> str:
    """Store the objects ``names`` one after the other as ``target``; returns how: ``copy`` (S3 multipart upload
    of server-side part copies: no byte passes through this process), ``mixed`` (the same, but runs of parts
    under S3's 5 MiB minimum are read through this process and uploaded as one part each), ``stream`` (every
    byte through this process) or ``local`` (files appended)."""
    if is_s3():
        sized = [(name, size(name)) for name in names]
        sized = [(name, length) for name, length in sized if length > 0]  # an empty part adds nothing
        groups = _join_groups(sized)
        if any(_copied(group, last=i == len(groups) - 1) for i, group in enumerate(groups)):
            return _s3_multipart_join(groups, target)
    put_stream(target, _Chained(names))
    return "stream" if is_s3() else "local"


def _join_groups(sized: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    """The parts of a multipart join: a part of at least 5 MiB alone (copied), else a run of neighbours that
    together reach 5 MiB (or end the file), uploaded as one part."""
    groups: list[list[tuple[str, int]]] = []
    run: list[tuple[str, int]] = []
    run_bytes = 0
    for name, length in sized:
        if not run and length >= S3_MIN_PART_BYTES:
            groups.append([(name, length)])
            continue
        run.append((name, length))
        run_bytes += length
        if run_bytes >= S3_MIN_PART_BYTES:
            groups.append(run)
            run, run_bytes = [], 0
    if run:
        groups.append(run)
    return groups


def _copied(group: list[tuple[str, int]], *, last: bool) -> bool:
    """A group S3 copies server-side: one part, of 5 MiB or more unless it ends the file."""
    return len(group) == 1 and (group[0][1] >= S3_MIN_PART_BYTES or last)


def _s3_multipart_join(groups: list[list[tuple[str, int]]], target: str) -> str:
    client, bucket = _s3()
    key = _key(target)
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)
    streamed = False
    try:
        parts = []
        for number, group in enumerate(groups, start=1):
            common = {"Bucket": bucket, "Key": key, "UploadId": upload["UploadId"], "PartNumber": number}
            if _copied(group, last=number == len(groups)):
                copied = client.upload_part_copy(**common, CopySource={"Bucket": bucket, "Key": _key(group[0][0])})
                etag = copied["CopyPartResult"]["ETag"]
            else:
                streamed = True
                with tempfile.TemporaryFile(prefix="mds-batch-join-") as run:
                    for name, _ in group:
                        for block in iter_blocks(name):
                            run.write(block)
                    run.seek(0)
                    etag = client.upload_part(**common, Body=run)["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
        )
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
        raise
    return "mixed" if streamed else "copy"


class FollowedUpload:
    """A local file stored on S3 as it is written: a thread sends each part of ``FOLLOW_PART_BYTES`` of a multipart
    upload as soon as the writer has flushed it, so the object is complete shortly after the last byte is written.
    Nothing is visible under ``name`` until ``complete()``; ``abort()`` (also after a failure) leaves nothing."""

    def __init__(self, name: str, path: str):
        self.name, self.path = name, path
        self._written, self._ended, self._cancelled, self._completed = 0, False, False, False
        self._changed = threading.Condition()
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._send, name="batch-upload-follow", daemon=True)
        self._thread.start()

    def written(self, size: int) -> None:
        """The file holds (flushed) its first ``size`` bytes."""
        with self._changed:
            self._written = size
            self._changed.notify()

    def complete(self) -> None:
        """Wait for the last part, then make the object (the file is whole: its writer is done)."""
        with self._changed:
            self._ended = True
            self._changed.notify()
        self._thread.join()
        if self._error is not None:
            self.abort()
            raise self._error
        client, bucket = _s3()
        if self._upload_id is None:
            client.put_object(Bucket=bucket, Key=_key(self.name), Body=b"")
        else:
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=_key(self.name),
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._completed = True

    def abort(self) -> None:
        """Stop sending and drop the parts sent; nothing is stored. Does nothing once completed."""
        if self._completed:
            return
        with self._changed:
            self._cancelled = True
            self._changed.notify()
        self._thread.join()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            client, bucket = _s3()
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=_key(self.name), UploadId=upload_id)
            except Exception as exc:  # S3 down: its lifecycle rule for incomplete uploads removes the parts
                logger.warning("Could not abort the upload of %s: %s", self.name, exc)

    def _next_part(self, sent: int) -> int:
        """The size of the next part to send once it is written (0: nothing more), or -1 when cancelled."""
        with self._changed:
            self._changed.wait_for(lambda: self._cancelled or self._ended or self._written - sent >= FOLLOW_PART_BYTES)
            if self._cancelled:
                return -1
            return min(FOLLOW_PART_BYTES, self._written - sent)

    def _send(self) -> None:
        client, bucket = _s3()
        try:
            with open(self.path, "rb") as source:
                sent = 0
                while (size := self._next_part(sent)) > 0:
                    if self._upload_id is None:
                        created = client.create_multipart_upload(Bucket=bucket, Key=_key(self.name))
                        self._upload_id = created["UploadId"]
                    number = len(self._parts) + 1
                    source.seek(sent)
                    answer = client.upload_part(
                        Bucket=bucket,
                        Key=_key(self.name),
                        UploadId=self._upload_id,
                        PartNumber=number,
                        Body=source.read(size),
                    )
                    self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                    sent += size
        except BaseException as exc:  # handed to complete(), which raises it in the request
            self._error = exc


def upload_follow(name: str, path: str) -> FollowedUpload | None:
    """A ``FollowedUpload`` of the file at ``path`` to ``name`` on S3; ``None`` on local storage (embedded mode),
    where the file is copied once whole."""
    return FollowedUpload(name, path) if is_s3() else None


class _Bytes:
    def __init__(self, data: bytes):
        self._data = data

    def read(self, n: int = -1) -> bytes:
        data, self._data = (self._data, b"") if n is None or n < 0 else (self._data[:n], self._data[n:])
        return data

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        pass


class _Limited:
    """At most ``remaining`` bytes of a local file."""

    def __init__(self, stream: IO[bytes], remaining: int):
        self._stream, self._remaining = stream, remaining

    def read(self, n: int = -1) -> bytes:
        n = self._remaining if n is None or n < 0 else min(n, self._remaining)
        data = self._stream.read(n) if n > 0 else b""
        self._remaining -= len(data)
        return data

    def close(self) -> None:
        self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _Chained:
    """The objects ``names`` read one after the other as one stream."""

    def __init__(self, names: list[str]):
        self._names = list(names)
        self._current: Any = None

    def read(self, n: int = -1) -> bytes:
        """Exactly ``n`` bytes unless the last object ends first: s3transfer takes a short read for the end."""
        n = STREAM_BLOCK_BYTES if n is None or n < 0 else n
        pieces: list[bytes] = []
        wanted = n
        while wanted > 0:
            if self._current is None:
                if not self._names:
                    break
                self._current = open_range(self._names.pop(0))
            data = self._current.read(wanted)
            if not data:
                self._current.close()
                self._current = None
                continue
            pieces.append(data)
            wanted -= len(data)
        return b"".join(pieces)
