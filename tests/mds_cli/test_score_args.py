"""``mds score``'s command line and how it reads a batch job's status body: no server needed."""

from pathlib import Path

import pytest

from mds.cli import _parser
from mds.follow import batch_progress, batch_rows
from mds.score import batch_summary, errors_path_for, output_path, score_options


def parse(*argv: str):
    return _parser().parse_args(["score", *argv])


def test_the_flags_become_the_fields_of_post_batch():
    # when
    args = parse(
        "in.csv",
        "--model-name",
        "rf",
        "--version",
        "3",
        "--interval",
        "0.9",
        "--passthrough",
        "id, day",
        "--on-error",
        "skip",
        "-o",
        "out.parquet",
    )

    # then
    assert score_options(args) == {
        "model_name": "rf",
        "version": "3",
        "input_format": "csv",
        "output_format": "parquet",
        "interval": "0.9",
        "passthrough": "id,day",
        "on_error": "skip",
    }


def test_the_defaults_leave_version_and_alias_to_the_server():
    # when
    args = parse("weather.parquet", "--model-name", "rf")

    # then: @champion is the server's default; the input's format comes from its name
    assert score_options(args) == {
        "model_name": "rf",
        "input_format": "parquet",
        "output_format": "csv",
        "on_error": "fail",
    }
    assert str(output_path(args)) == "weather.scored.csv"
    assert args.poll == 1.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["in.csv", "--model-name", "rf", "--version", "2", "--alias", "champion"], "not allowed with argument"),
        (["in.csv", "--model-name", "rf", "--interval", "1.5"], "1.5 is not between 0 and 1"),
        (["in.csv", "--model-name", "rf", "--interval", "wide"], "'wide' is not a number"),
        (["in.csv", "--model-name", "rf", "--passthrough", "a,,b"], "'a,,b' has an empty column name"),
        (["in.csv", "--model-name", "rf", "--on-error", "ignore"], "invalid choice: 'ignore'"),
        (["in.csv"], "the following arguments are required: --model-name"),
    ],
)
def test_a_bad_command_line_exits_2_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        parse(*argv)

    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("result", "errors"),
    [("out.csv", "out.errors.csv"), ("dir/scored.parquet", "dir/scored.errors.csv"), ("result", "result.errors.csv")],
)
def test_the_errors_file_sits_beside_the_result(result, errors):
    assert errors_path_for(Path(result)) == Path(errors)


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ({"status": "queued", "rows_total": None, "rows_done": 0, "progress": 0.0}, 0.0),
        ({"status": "running", "rows_total": 1000, "rows_done": 250, "rows_skipped": 0, "progress": 0.1}, 0.25),
        ({"status": "running", "rows_total": 1000, "rows_done": 240, "rows_skipped": 10}, 0.25),
        ({"status": "running", "rows_total": None, "rows_done": 0, "progress": 0.3}, 0.3),
        ({"status": "running", "rows_total": 0, "rows_done": 0}, 0.0),
        ({"status": "success", "rows_total": 1000, "rows_done": 990, "rows_skipped": 10}, 1.0),
        ({"status": "failed", "rows_total": 1000, "rows_done": 500, "rows_skipped": 0}, 0.5),
    ],
)
def test_batch_progress_follows_rows_done_over_rows_total(job, expected):
    assert batch_progress(job) == pytest.approx(expected)


def test_the_status_line_of_a_batch_job():
    running = {"id": 4, "status": "running", "rows_total": 20_000, "rows_done": 1_200, "rows_skipped": 3}
    counting = {"id": 4, "status": "queued", "rows_total": None, "rows_done": 0, "rows_skipped": 0}
    done = {
        "id": 4,
        "status": "success",
        "model_name": "rf",
        "model_version": 2,
        "rows_total": 20_000,
        "rows_done": 19_997,
        "rows_skipped": 3,
    }
    failed = {"id": 4, "status": "failed", "error": {"code": "bad_cell", "message": "Column 'a', row 7: 'x'."}}

    assert batch_rows(running) == "1,203/20,000 rows, 3 skipped"
    assert batch_summary(counting) == "batch 4 queued: 0 rows"
    assert batch_summary(done) == "batch 4 success: 19,997 rows scored by rf version 2, 3 skipped"
    assert batch_summary(failed) == "batch 4 failed: bad_cell: Column 'a', row 7: 'x'."
