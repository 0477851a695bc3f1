"""``python -m mds score FILE``: upload a file, follow its batch job, download the result, with a bar for each.

Also ``batch JOB`` (one batch job), ``batches`` (the newest), ``batch-cancel JOB`` and ``batch-result JOB`` (download
a finished job's result, e.g. after Ctrl-C during ``score``'s download). The file is streamed from disk and the
result streamed to disk: neither is ever held whole in memory, whatever its size.
"""

import argparse
import json
from pathlib import Path

from rich.console import Console

from .client import PARQUET_SUFFIXES, ApiClient, ApiError, UploadInterrupted, file_format
from .common import (
    EMBEDDED_ANSWER_SECONDS,
    EXIT_INTERRUPTED,
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    print_error,
    prog,
)
from .follow import FINISHED, batch_follow, batch_rows, download_progress, upload_progress


def score(args: argparse.Namespace, client: ApiClient, out: Console, err: Console) -> int:
    path = Path(args.file)
    if not path.is_file():
        err.print(f"[red]error:[/] {path} is not a file")
        return EXIT_USAGE
    result_path = output_path(args)
    errors_path = Path(args.errors_out) if args.errors_out else errors_path_for(result_path)
    if result_path.resolve() == path.resolve() or errors_path.resolve() == path.resolve():
        err.print(f"[red]error:[/] the result would overwrite {path}: choose another -o/--errors-out")
        return EXIT_USAGE
    try:
        with upload_progress(err, total=path.stat().st_size, name=path.name) as show_sent:
            job = client.batch_start(
                path=path, options=score_options(args), on_sent=show_sent, wait=EMBEDDED_ANSWER_SECONDS
            )
    except UploadInterrupted as interrupt:
        if interrupt.uploaded:
            # The server had the whole file: it may have stored the job, which scores there whatever this does.
            err.print(
                "[yellow]Interrupted after the upload:[/] if the server accepted the file, its batch job goes on "
                f"there. `{prog()} batches` lists your batch jobs; `{prog()} batch ID` shows one, "
                f"`{prog()} batch-result ID -o OUT` downloads its result, `{prog()} batch-cancel ID` stops it."
            )
        else:
            err.print("[yellow]Upload interrupted:[/] nothing was scored.")
        return EXIT_INTERRUPTED
    err.print(f"Batch job {job['id']} accepted: {job_url(client, job)}")
    if args.no_wait:
        if args.json:
            out.print_json(json.dumps(job))
        else:
            out.print(f"batch {job['id']} {job['status']}: {job_url(client, job)}")
        return EXIT_OK
    try:
        job = batch_follow(client, job, err, interval=args.poll)
    except KeyboardInterrupt:
        return _cancel_after_interrupt(client, job["id"], err)
    if job["status"] != "success":
        _print_job(job, out, args.json)
        return EXIT_JOB_FAILED
    return _download_all(client, job, result_path, errors_path, out, err, as_json=args.json)


def batch(args: argparse.Namespace, client: ApiClient, out: Console, err: Console) -> int:
    job = client.batch_get(job_id=args.job)
    _print_job(job, out, args.json)
    return EXIT_JOB_FAILED if job["status"] in ("failed", "cancelled") else EXIT_OK


def batches(args: argparse.Namespace, client: ApiClient, out: Console, err: Console) -> int:
    listed = client.batch_list(limit=args.limit)
    if args.json:
        out.print_json(json.dumps(listed))
    for job in [] if args.json else listed:
        out.print(batch_summary(job))
    return EXIT_OK


def batch_cancel(args: argparse.Namespace, client: ApiClient, out: Console, err: Console) -> int:
    _print_job(client.batch_cancel(job_id=args.job), out, args.json)
    return EXIT_OK


def batch_result(args: argparse.Namespace, client: ApiClient, out: Console, err: Console) -> int:
    job = client.batch_get(job_id=args.job)
    if job["status"] != "success":
        _print_job(job, out, args.json)
        err.print(f"[red]error:[/] batch job {job['id']} has no result: it is {job['status']}")
        return EXIT_JOB_FAILED
    suffix = ".parquet" if job.get("output_format") == "parquet" else ".csv"
    result_path = Path(args.output) if args.output else Path(f"batch-{job['id']}{suffix}")
    errors_path = Path(args.errors_out) if args.errors_out else errors_path_for(result_path)
    return _download_all(client, job, result_path, errors_path, out, err, as_json=args.json)


def score_options(args: argparse.Namespace) -> dict[str, str]:
    """The form fields of ``POST /batch`` for the command line's flags (the server's defaults where not given)."""
    options = {
        "model_name": args.model_name,
        "input_format": file_format(Path(args.file)),
        "output_format": output_format(args),
        "on_error": args.on_error,
    }
    if args.version is not None:
        options["version"] = str(args.version)
    if args.alias is not None:
        options["alias"] = args.alias
    if args.interval is not None:
        options["interval"] = str(args.interval)
    if args.passthrough:
        options["passthrough"] = ",".join(args.passthrough)
    if args.explain:
        options["explain"] = "true"
    return options


def output_format(args: argparse.Namespace) -> str:
    """``--output-format`` if given, else what ``-o``'s name says (``.parquet``/``.pq``), else CSV."""
    if args.output_format:
        return args.output_format
    return file_format(Path(args.output)) if args.output else "csv"


def output_path(args: argparse.Namespace) -> Path:
    """``-o`` if given, else ``<input's stem>.scored.<format>`` in the current directory."""
    if args.output:
        return Path(args.output)
    return Path(f"{Path(args.file).stem}.scored.{output_format(args)}")


def errors_path_for(result_path: Path) -> Path:
    """``out.csv`` -> ``out.errors.csv``: the rejected rows beside the result."""
    stem = result_path.name
    for suffix in (*PARQUET_SUFFIXES, ".csv"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return result_path.with_name(f"{stem}.errors.csv")


def job_url(client: ApiClient, job: dict) -> str:
    url = job.get("url") or f"/batch/{job['id']}"
    return f"{client.url}{url}" if url.startswith("/") else url


def batch_summary(job: dict) -> str:
    """One line: ``batch 7 success: 10,000 rows scored by NAME version 3``, a failure's code and message, or
    where a running job stands."""
    line = f"batch {job['id']} {job['status']}"
    model = f"{job.get('model_name')} version {job.get('model_version')}" if job.get("model_version") else ""
    if job["status"] == "success":
        line += f": {job.get('rows_done') or 0:,} rows scored" + (f" by {model}" if model else "")
        if job.get("rows_skipped"):
            line += f", {job['rows_skipped']:,} skipped"
    elif job.get("error"):
        line += f": {job['error'].get('code', 'error')}: {job['error'].get('message', '')}"
    elif job["status"] not in FINISHED:
        line += f": {batch_rows(job)}"
    return line


def _download_all(
    client: ApiClient, job: dict, result_path: Path, errors_path: Path, out: Console, err: Console, *, as_json: bool
) -> int:
    """The result to ``result_path``, and the rejected rows to ``errors_path`` when the job skipped some."""
    wanted = [("result", result_path)]
    if job.get("rows_skipped") and job.get("errors_url"):
        wanted.append(("errors", errors_path))
    for what, path in wanted:
        try:
            with download_progress(err, name=path.name) as show_received:
                client.batch_download(job_id=job["id"], what=what, path=path, on_received=show_received)
        except KeyboardInterrupt:
            err.print(
                f"[yellow]Download interrupted:[/] the {what} stays on the server: "
                f"`{prog()} batch-result {job['id']} -o {result_path}` downloads it again."
            )
            return EXIT_INTERRUPTED
    _print_job(job, out, as_json)
    if not as_json:
        out.print(f"result: {result_path}" + (f", rejected rows: {errors_path}" if len(wanted) > 1 else ""))
    return EXIT_OK


def _print_job(job: dict, out: Console, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(job))
        return
    out.print(batch_summary(job))
    extra = (job.get("error") or {}).get("extra")
    if extra:
        out.print("  " + ", ".join(f"{key}={value}" for key, value in extra.items()))


def _cancel_after_interrupt(client: ApiClient, job_id: int, err: Console) -> int:
    """Ctrl-C while following: the user wants the job gone, not only the bar, so ask the server to cancel it."""
    err.print(f"[yellow]Interrupted:[/] cancelling batch job {job_id}...")
    try:
        job = client.batch_cancel(job_id=job_id)
    except ApiError as error:
        print_error(err, error)
        err.print(f"Batch job {job_id} goes on: see `{prog()} batch {job_id}`.")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        err.print(f"Batch job {job_id} was not cancelled: see `{prog()} batch {job_id}`.")
        return EXIT_INTERRUPTED
    stopping = "" if job["status"] in FINISHED else " (cancel requested)"
    err.print(f"Batch job {job_id} is {job['status']}{stopping}.")
    return EXIT_INTERRUPTED


def interval_level(text: str) -> float:
    """``--interval``: a coverage level strictly between 0 and 1, as ``/predict`` takes it."""
    try:
        level = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < level < 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1 (e.g. 0.9)")
    return level


def column_list(text: str) -> list[str]:
    """``--passthrough a,b``: input column names, none empty."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r} has an empty column name")
    return names


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    score_cmd = commands.add_parser(
        "score", parents=[common], help="score a CSV or Parquet file of any size, download the predictions"
    )
    score_cmd.add_argument("file", help="CSV or Parquet (by its name: .parquet/.pq) with the model's features")
    score_cmd.add_argument("--model-name", required=True, help="registered model that scores")
    which = score_cmd.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="version number (default: the alias)")
    which.add_argument("--alias", help="alias of the version (server default: champion)")
    score_cmd.add_argument("-o", "--output", help="result file (default: FILE's stem + .scored.csv, in this dir)")
    score_cmd.add_argument(
        "--output-format", choices=("csv", "parquet"), help="of the result (default: by -o's name, else csv)"
    )
    score_cmd.add_argument(
        "--interval", type=interval_level, metavar="LEVEL", help="add lower/upper bounds at this level (0-1)"
    )
    score_cmd.add_argument(
        "--passthrough", type=column_list, metavar="A,B", help="input columns copied in front of the predictions"
    )
    score_cmd.add_argument("--explain", action="store_true", help="add each feature's contribution (bounded)")
    score_cmd.add_argument(
        "--on-error",
        choices=("fail", "skip"),
        default="fail",
        help="a bad row fails the job (default), or is skipped and written to the errors file",
    )
    score_cmd.add_argument("--errors-out", metavar="PATH", help="rejected rows (default: OUT's stem + .errors.csv)")
    score_cmd.add_argument("--no-wait", action="store_true", help="print the accepted job and exit")
    score_cmd.add_argument("--poll", type=float, default=1.0, metavar="SECONDS", help="seconds between job polls")
    score_cmd.set_defaults(command=score)

    batch_cmd = commands.add_parser("batch", parents=[common], help="show a batch scoring job")
    batch_cmd.add_argument("job", type=int)
    batch_cmd.set_defaults(command=batch)

    batches_cmd = commands.add_parser("batches", parents=[common], help="list your newest batch scoring jobs")
    batches_cmd.add_argument("--limit", type=int, default=10, help="how many (default 10)")
    batches_cmd.set_defaults(command=batches)

    cancel_cmd = commands.add_parser("batch-cancel", parents=[common], help="cancel a queued or running batch job")
    cancel_cmd.add_argument("job", type=int)
    cancel_cmd.set_defaults(command=batch_cancel)

    result_cmd = commands.add_parser("batch-result", parents=[common], help="download a finished batch job's result")
    result_cmd.add_argument("job", type=int)
    result_cmd.add_argument("-o", "--output", help="result file (default: batch-ID.csv or .parquet)")
    result_cmd.add_argument("--errors-out", metavar="PATH", help="rejected rows (default: OUT's stem + .errors.csv)")
    result_cmd.set_defaults(command=batch_result)
