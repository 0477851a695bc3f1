"""Whether the process named in a lease (``host:pid``) can still be running: shared by the leases of the apps'
background work. Pure: no Django."""

import os
import socket
from pathlib import Path


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def process_gone(claimed_by: str) -> str | None:
    """Why the process ``claimed_by`` names is known to be gone (seen from its own machine), else ``None``: a
    process on another host, or one alive, may still hold its lease (its heartbeat then decides)."""
    host, _, pid = claimed_by.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return f"its process {pid} is gone"
    except PermissionError:
        return None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (OSError, IndexError):
        return None
    return f"its process {pid} is gone" if state in ("Z", "X") else None
