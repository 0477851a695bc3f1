"""Training CSVs arrive as a stream: measured (size ceiling, sha256, rows, UTF-8) and spooled to a temporary
file chunk by chunk, never held whole in the web process.

``DatasetUploadHandler`` does it while Django parses the multipart body, so an upload over
``MDS_TRAIN_MAX_UPLOAD_BYTES`` is refused (``413 too_large``) before the rest of it is read, and its partial
file is deleted at once. ``upload_stage`` does the same for a file that arrived otherwise (the admin's form,
a caller's file object).
"""

import contextlib
import tempfile
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.core.files import File
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from core.csvstream import CsvStreamDigest
from core.errors import TooLarge

# Multipart framing around the file (boundaries, part headers) besides the form fields themselves.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
COPY_CHUNK_BYTES = 1 << 20


@dataclass
class StagedUpload:
    """A measured CSV in a local temporary file, ready to be checked and sent to storage."""

    file: File
    size_bytes: int
    sha256: str
    n_rows: int
    owned: bool = False

    def close(self) -> None:
        """Remove a temporary file this module made (an upload's own is removed by Django after the request)."""
        if self.owned:
            with contextlib.suppress(OSError):
                self.file.close()


class StagedUploadedFile(TemporaryUploadedFile):
    """An uploaded file that carries its measurement as ``staged``."""

    staged: StagedUpload


class DatasetUploadHandler(FileUploadHandler):
    """Streams each uploaded file into a temporary file through a ``CsvStreamDigest``; the file it hands to the
    view carries its ``StagedUpload`` as ``staged``."""

    def __init__(self, request=None, *, max_bytes: int):
        super().__init__(request)
        self.max_bytes = max_bytes
        self.file: StagedUploadedFile | None = None
        self.digest: CsvStreamDigest | None = None

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        # A body declared over the limit plus the most the form fields may take is refused before a byte of it
        # is read (with form fields unlimited, only the file's own count decides).
        fields = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        ceiling = None if fields is None else self.max_bytes + fields + MULTIPART_OVERHEAD_BYTES
        if ceiling is not None and content_length and content_length > ceiling:
            raise TooLarge(
                f"The request has {content_length} bytes; a file of at most {self.max_bytes} is accepted.",
                extra={"size_bytes": content_length, "max_bytes": self.max_bytes},
            )
        return None

    def new_file(self, field_name, file_name, content_type, content_length, charset=None, content_type_extra=None):
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)
        self.file = StagedUploadedFile(file_name, content_type, 0, charset, content_type_extra)
        self.digest = CsvStreamDigest(max_bytes=self.max_bytes)

    def receive_data_chunk(self, raw_data, start):
        file, digest = self._current()
        try:
            digest.update(raw_data)
        except BaseException:
            self._discard()
            raise
        file.write(raw_data)
        return None

    def file_complete(self, file_size):
        file, digest = self._current()
        try:
            digest.finish()
        except BaseException:
            self._discard()
            raise
        file.seek(0)
        file.size = file_size
        file.staged = StagedUpload(file=file, size_bytes=file_size, sha256=digest.sha256, n_rows=digest.n_rows)
        return file

    def upload_interrupted(self):
        self._discard()

    def _current(self) -> tuple[StagedUploadedFile, CsvStreamDigest]:
        # Django opens a file (``new_file``) before it hands over the file's chunks.
        assert self.file is not None and self.digest is not None
        return self.file, self.digest

    def _discard(self) -> None:
        if self.file is not None:
            # Closing a named temporary file deletes it: nothing of a refused upload stays on disk.
            with contextlib.suppress(OSError):
                self.file.close()


def dataset_upload_handlers(request) -> list[FileUploadHandler]:
    return [DatasetUploadHandler(request, max_bytes=settings.MDS_TRAIN_MAX_UPLOAD_BYTES)]


def upload_stage(source: IO[bytes] | StagedUpload, *, max_bytes: int | None) -> StagedUpload:
    """``source`` measured in a temporary file of its own (``owned``), or its ``StagedUpload`` if it was
    streamed in by ``DatasetUploadHandler``.

    Raises:
        TooLarge: past ``max_bytes``, read no further; TableError: empty, not UTF-8, or binary.
    """
    if isinstance(source, StagedUpload):
        return source
    staged = getattr(source, "staged", None)
    if isinstance(staged, StagedUpload):
        return staged
    digest = CsvStreamDigest(max_bytes=max_bytes)
    spool = tempfile.NamedTemporaryFile(prefix="mds-upload-", suffix=".csv")
    try:
        if hasattr(source, "seek"):
            source.seek(0)
        while chunk := source.read(COPY_CHUNK_BYTES):
            digest.update(chunk)
            spool.write(chunk)
        digest.finish()
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return StagedUpload(
        file=File(spool, name="dataset.csv"),
        size_bytes=digest.size_bytes,
        sha256=digest.sha256,
        n_rows=digest.n_rows,
        owned=True,
    )
