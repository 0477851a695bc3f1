"""``python -m mds train FILE``: upload a CSV, follow the training job with progress bars, print the version.

Also ``python -m mds status JOB``, ``python -m mds cancel JOB`` and ``python -m mds jobs``, and the batch scoring
commands of ``mds/score.py`` (``score FILE``, ``batch JOB``, ``batches``, ``batch-cancel JOB``, ``batch-result
JOB``). The server and token come from ``--url`` and ``--token``, else from ``MDS_URL`` and ``MDS_TOKEN``. Exit
codes: 0 done (a version registered, a result written, or with ``--no-wait`` the job accepted), 1 the job failed or
was cancelled, 2 bad command line, 3 the server refused the request or could not be reached, 130 interrupted
(Ctrl-C).
"""

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console

from . import score
from .client import DEFAULT_URL, ApiClient, ApiError, UploadInterrupted
from .common import (
    EMBEDDED_ANSWER_SECONDS,
    EXIT_INTERRUPTED,
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
)
from .common import print_error as _print_error
from .common import prog as _prog
from .follow import job_follow, upload_progress

TRAIN_OPTIONS = ("model_name", "target", "timestamp", "n_estimators", "max_depth", "random_state", "test_size")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # soft_wrap: an error message stays one line, whole, for whoever greps the output.
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True)
    client = ApiClient(url=args.url, token=args.token, timeout=args.timeout)
    try:
        return args.command(args, client, out, err)
    except ApiError as error:
        _print_error(err, error)
        return EXIT_REFUSED


def train(args, client: ApiClient, out: Console, err: Console) -> int:
    path = Path(args.file)
    if not path.is_file():
        err.print(f"[red]error:[/] {path} is not a file")
        return EXIT_USAGE
    options = {name: str(getattr(args, name)) for name in TRAIN_OPTIONS if getattr(args, name) is not None}
    try:
        with upload_progress(err, total=path.stat().st_size, name=path.name) as show_sent:
            job = client.training_start(path=path, options=options, on_sent=show_sent, wait=EMBEDDED_ANSWER_SECONDS)
    except UploadInterrupted as interrupt:
        if interrupt.uploaded:
            # The server had the whole file: it may have stored the job, which trains there whatever this does.
            err.print(
                "[yellow]Interrupted after the upload:[/] if the server accepted the file, its job goes on there. "
                f"`{_prog()} jobs` lists your jobs; `{_prog()} status ID` shows one, `{_prog()} cancel ID` stops it."
            )
        else:
            err.print("[yellow]Upload interrupted:[/] nothing was trained.")
        return EXIT_INTERRUPTED
    err.print(f"Job {job['id']} accepted: {job['url']}")
    if args.no_wait:
        return _finish(job, out, args.json, accepted_only=True)
    try:
        job = job_follow(client, job, err, interval=args.interval)
    except KeyboardInterrupt:
        return _cancel_after_interrupt(client, job["id"], err)
    return _finish(job, out, args.json)


def status(args, client: ApiClient, out: Console, err: Console) -> int:
    job = client.job_get(job_id=args.job)
    if args.json:
        out.print_json(json.dumps(job))
    else:
        out.print(_summary(job))
    return EXIT_JOB_FAILED if job["status"] in ("failed", "cancelled") else EXIT_OK


def jobs(args, client: ApiClient, out: Console, err: Console) -> int:
    listed = client.jobs_list(limit=args.limit)
    if args.json:
        out.print_json(json.dumps(listed))
    for job in [] if args.json else listed:
        out.print(_summary(job))
    return EXIT_OK


def cancel(args, client: ApiClient, out: Console, err: Console) -> int:
    job = client.job_cancel(job_id=args.job)
    out.print(_summary(job))
    return EXIT_OK


def _cancel_after_interrupt(client: ApiClient, job_id: int, err: Console) -> int:
    """Ctrl-C while following: the user wants the job gone, not only the bar, so ask the server to cancel it."""
    err.print(f"[yellow]Interrupted:[/] cancelling job {job_id}...")
    try:
        job = client.job_cancel(job_id=job_id)
    except ApiError as error:
        _print_error(err, error)
        err.print(f"Job {job_id} goes on: see `{_prog()} status {job_id}`.")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        err.print(f"Job {job_id} was not cancelled.")
        return EXIT_INTERRUPTED
    stopping = "" if job["status"] in ("cancelled", "failed", "success") else " (cancel requested)"
    err.print(f"Job {job_id} is {job['status']}{stopping}.")
    return EXIT_INTERRUPTED


def _finish(job: dict, out: Console, as_json: bool, accepted_only: bool = False) -> int:
    if as_json:
        out.print_json(json.dumps(job))
    elif accepted_only:
        out.print(f"job {job['id']} {job['status']}: {job['url']}")
    else:
        out.print(_summary(job))
    if accepted_only or job["status"] == "success":
        return EXIT_OK
    return EXIT_JOB_FAILED


def _summary(job: dict) -> str:
    line = f"job {job['id']} {job['status']}"
    if job.get("registered_version") is not None:
        line += f": {job['model_name']} version {job['registered_version']}"
        metrics = job.get("metrics") or {}
        shown = [f"{name} {metrics[name]:.4g}" for name in ("r2", "mae", "rmse") if name in metrics]
        if shown:
            line += f" ({', '.join(shown)})"
    elif job.get("error"):
        line += f": {job['error']['code']}: {job['error']['message']}"
    else:
        line += f" (stage {job['stage']})"
    return line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_prog(), description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("MDS_URL", DEFAULT_URL), help="server (env MDS_URL)")
    common.add_argument("--token", default=os.environ.get("MDS_TOKEN"), help="API token (env MDS_TOKEN)")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each answer")
    common.add_argument("--json", action="store_true", help="print the job as JSON instead of one line")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    train_cmd = commands.add_parser("train", parents=[common], help="upload a CSV and train a new version")
    train_cmd.add_argument("file", help="CSV: a timestamp column, numeric features and the target")
    train_cmd.add_argument("--model-name", help="registered model that gets the version (server default)")
    train_cmd.add_argument("--target", help="target column (default: target)")
    train_cmd.add_argument("--timestamp", help="timestamp column (default: timestamp)")
    train_cmd.add_argument("--n-estimators", type=int, help="number of trees")
    train_cmd.add_argument("--max-depth", type=int, help="depth limit of the trees")
    train_cmd.add_argument("--random-state", type=int, help="seed (server default 42)")
    train_cmd.add_argument("--test-size", type=float, help="most recent share of rows held out")
    train_cmd.add_argument("--no-wait", action="store_true", help="print the accepted job and exit")
    train_cmd.add_argument("--interval", type=float, default=1.0, help="seconds between job polls")
    train_cmd.set_defaults(command=train)

    status_cmd = commands.add_parser("status", parents=[common], help="show a training job")
    status_cmd.add_argument("job", type=int)
    status_cmd.set_defaults(command=status)

    jobs_cmd = commands.add_parser("jobs", parents=[common], help="list your newest training jobs")
    jobs_cmd.add_argument("--limit", type=int, default=10, help="how many (default 10)")
    jobs_cmd.set_defaults(command=jobs)

    cancel_cmd = commands.add_parser("cancel", parents=[common], help="cancel a queued or running training job")
    cancel_cmd.add_argument("job", type=int)
    cancel_cmd.set_defaults(command=cancel)

    score.add_commands(commands, common)
    return parser


if __name__ == "__main__":
    sys.exit(main())
