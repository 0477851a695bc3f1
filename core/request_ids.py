"""Request ids: random UUIDs (version 4) from the operating system's generator, read a page at a time.

Every prediction takes one, and ``uuid.uuid4()`` makes a system call for each, which lets go of the GIL: a thread
answering a 1-row request then waits to take it back behind the other threads of a busy server. Here one call in 256
reads the system's generator, and each thread keeps its own page (no two threads draw ids from the same bytes);
a forked child starts on a page of its own.
"""

import os
import threading
import uuid

# Bytes read from the system's generator at a time: 256 ids.
PAGE_BYTES = 4096


class _Page(threading.local):
    def __init__(self):
        self.data = b""
        self.offset = 0


_page = _Page()


def request_id() -> uuid.UUID:
    """A random UUID, as ``uuid.uuid4()``: unguessable, so a caller cannot name another's request."""
    page = _page
    if page.offset + 16 > len(page.data):
        page.data, page.offset = os.urandom(PAGE_BYTES), 0
    start = page.offset
    page.offset = start + 16
    return uuid.UUID(bytes=page.data[start : start + 16], version=4)


def _forget_page() -> None:
    # The parent's unread bytes would give the child the very ids the parent gives next.
    global _page
    _page = _Page()


os.register_at_fork(after_in_child=_forget_page)
