"""A ``multipart/form-data`` body that streams a file from disk instead of holding it in memory.

``requests`` builds its own multipart bodies in memory (the whole file as one bytes object). This body is a
file-like object with a known length, so ``requests`` sends a ``Content-Length`` header (servers behind WSGI
ignore chunked bodies) and reads it block by block; ``on_read`` sees every block go out, which is what the
upload progress bar follows.
"""

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


class StreamingMultipart:
    """Form fields, then one file part read from ``path`` as it is sent.

    Args:
        fields: plain form fields (name → value), sent before the file.
        file_field: the form field that carries the file.
        path: the file to send; it is opened on first read and closed at the end.
        content_type: the file part's content type.
        on_read: called with the byte count of every block handed to the connection.
    """

    def __init__(
        self,
        *,
        fields: dict[str, str],
        file_field: str,
        path: Path,
        content_type: str = "text/csv",
        on_read: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.boundary = uuid.uuid4().hex
        self.path = Path(path)
        self.on_read = on_read
        head = b"".join(self._field(name, value) for name, value in fields.items())
        file_name = self.path.name.replace('"', "")
        head += (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="{file_field}"; filename="{file_name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._parts: list[bytes | Path] = [head, self.path, tail]
        self.len = len(head) + os.path.getsize(self.path) + len(tail)
        self._file: BinaryIO | None = None
        self._pending = b""

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self.len

    def _field(self, name: str, value: str) -> bytes:
        return (f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n').encode()

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the body (``-1``: one block of at most 64 KiB, never the whole file)."""
        size = size if size and size > 0 else 64 * 1024
        while len(self._pending) < size and self._parts:
            part = self._parts[0]
            if isinstance(part, bytes):
                self._pending += part
                self._parts.pop(0)
                continue
            if self._file is None:
                self._file = open(part, "rb")  # noqa: SIM115 (closed when exhausted, or by close())
            block = self._file.read(size - len(self._pending))
            if block:
                self._pending += block
            else:
                self.close()
                self._parts.pop(0)
        chunk, self._pending = self._pending[:size], self._pending[size:]
        if chunk:
            self.on_read(len(chunk))
        return chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
