"""The batch jobs' objects in the datasets storage (Django's ``default`` storage): S3 or local files.

Django's storage API opens whole files (django-storages' ``S3File`` downloads the object before the first read);
batch scoring needs byte ranges, streams, overwrites and S3's server-side copy, so this module talks to the
storage's own client for them. Every other module goes through here: it is the seam faults are injected at.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from django.core.files.storage import storages

# S3 refuses an UploadPartCopy source under 5 MiB for every part but the last.
S3_MIN_PART_BYTES = 5 * 1024 * 1024
STREAM_BLOCK_BYTES = 1 << 20


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
    of server-side part copies: no byte passes through this process), ``stream`` (re-written through this process
    in blocks: a part under S3's 5 MiB minimum), or ``local`` (files appended)."""
    if is_s3():
        sizes = [size(name) for name in names]
        if names and all(part >= S3_MIN_PART_BYTES for part in sizes[:-1]) and sizes[-1] > 0:
            _s3_copy_join(names, target)
            return "copy"
    put_stream(target, _Chained(names))
    return "stream" if is_s3() else "local"


def _s3_copy_join(names: list[str], target: str) -> None:
    client, bucket = _s3()
    upload = client.create_multipart_upload(Bucket=bucket, Key=_key(target))
    try:
        parts = []
        for number, name in enumerate(names, start=1):
            copied = client.upload_part_copy(
                Bucket=bucket,
                Key=_key(target),
                UploadId=upload["UploadId"],
                PartNumber=number,
                CopySource={"Bucket": bucket, "Key": _key(name)},
            )
            parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
        client.complete_multipart_upload(
            Bucket=bucket, Key=_key(target), UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
        )
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=_key(target), UploadId=upload["UploadId"])
        raise


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
