"""What every command shares: exit codes, the program's name in hints, how a refused request is printed."""

import os
import sys

from rich.console import Console

from .client import ApiError

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
# The longest a server may take to answer an upload: one that trains or scores in-process inside the request
# answers once the job is done.
EMBEDDED_ANSWER_SECONDS = 3600


def print_error(err: Console, error: ApiError) -> None:
    err.print(f"[red]error:[/] {error}", markup=True)
    if error.extra:
        err.print("  " + ", ".join(f"{key}={value}" for key, value in error.extra.items()))


def prog() -> str:
    # The installed command is `mds`; from a checkout, `python -m mds`.
    return "mds" if os.path.basename(sys.argv[0]) == "mds" else "python -m mds"
