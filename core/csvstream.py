"""Measuring a CSV upload as it streams past, chunk by chunk: size (with a ceiling), sha256, data rows, and the
checks that need every byte but no parsing (UTF-8, no NUL). Pure: no Django.

Nothing here keeps more than one chunk, so a 200 MB upload is measured in the memory of a 64 KB one.
"""

import codecs
import hashlib
import re

from .errors import TooLarge
from .tabular import TableError, binary, not_utf8

# A newline directly followed by an optional CR and another newline ends a blank line, which pandas skips
# (``skip_blank_lines``): such lines are not rows.
_BLANK_LINE_END = re.compile(rb"\n\r?(?=\n)")


class CsvStreamDigest:
    """Feed every chunk of a file to ``update`` in order, then call ``finish`` once.

    Raises ``TooLarge`` as soon as more than ``max_bytes`` arrived, and ``TableError`` (``not_csv``) at the first
    byte that is not UTF-8 or is NUL, so a bad upload is refused before the rest of it is read.
    """

    def __init__(self, *, max_bytes: int | None = None):
        self.max_bytes = max_bytes
        self.size_bytes = 0
        self._sha256 = hashlib.sha256()
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._records = 0
        self._in_quotes = False
        self._at_line_start = True
        self._has_content = False
        self._head = b""  # the file's first bytes, which tell what a file that is not CSV is

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    @property
    def n_rows(self) -> int:
        """Data rows (records after the header, blank lines not counted; a quoted newline is no new row)."""
        return max(0, self._records - 1)

    def update(self, chunk: bytes) -> None:
        offset = self.size_bytes
        self.size_bytes += len(chunk)
        if self.max_bytes is not None and self.size_bytes > self.max_bytes:
            raise TooLarge(
                f"The file has more than {self.max_bytes} bytes; at most {self.max_bytes} are accepted.",
                extra={"max_bytes": self.max_bytes},
            )
        self._sha256.update(chunk)
        if len(self._head) < 16:
            self._head += chunk[: 16 - len(self._head)]
        try:
            self._decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            # The decoder may hold back up to 3 bytes of an unfinished character from the previous chunk.
            position = max(0, offset + exc.start - len(self._decoder.getstate()[0]))
            raise not_utf8(position, self._head) from exc
        nul = chunk.find(b"\x00")
        if nul >= 0:
            raise binary(offset + nul, self._head)
        if not self._has_content and chunk.strip():
            self._has_content = True
        self._count_records(chunk)

    def finish(self) -> None:
        """``TableError`` if the file was empty or ended inside a character."""
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise not_utf8(self.size_bytes - len(exc.object) + exc.start, self._head) from exc
        if not self._has_content:
            raise TableError("The file is empty.", code="empty_file")
        if not self._at_line_start:
            self._records += 1  # the last line has no newline
            self._at_line_start = True

    def _count_records(self, chunk: bytes) -> None:
        # RFC 4180: a newline inside quotes belongs to the cell; a doubled quote toggles twice, which is a no-op.
        for index, part in enumerate(chunk.split(b'"')):
            if index:
                self._in_quotes = not self._in_quotes
                self._at_line_start = False
            if self._in_quotes or not part:
                continue
            newlines = part.count(b"\n")
            if newlines:
                scan = b"\n" + part if self._at_line_start else part
                self._records += newlines - len(_BLANK_LINE_END.findall(scan))
                tail = part[part.rfind(b"\n") + 1 :]
                self._at_line_start = not tail.strip(b"\r")
            elif part.strip(b"\r"):
                self._at_line_start = False
