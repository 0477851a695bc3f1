"""Streaming uploads on the real stack: the web checks the first rows, the worker (reading the file back from
S3) checks the rest and fails the job naming the column and row, with the stored file kept."""

import numpy as np
import pandas as pd
import pytest

from tests.factories import csv_bytes

from .support import job_wait, sha256, train

pytestmark = pytest.mark.integration

# The stack runs with the default MDS_TRAIN_CHECK_ROWS (10 000): a bad row well past it.
ROWS, BAD_ROW = 12_000, 11_500


def test_a_bad_row_past_the_checked_rows_fails_the_job_on_the_worker_and_keeps_the_file(
    stack, http, s3, unique_model_name
):
    # given
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(ROWS, 3)).round(4), columns=["a", "b", "c"])
    frame.insert(0, "timestamp", pd.date_range("2024-01-01", periods=ROWS, freq="h").strftime("%Y-%m-%d %H:%M"))
    frame["target"] = (frame["a"] * 3 + 10).round(3)
    frame = frame.astype({"b": object})
    frame.loc[BAD_ROW - 1, "b"] = "unknown"
    csv = csv_bytes(frame)

    # when: the web accepts it (its rows 1-10 000 are fine), the worker reads it whole
    accepted = train(http, stack, csv, f"{unique_model_name}.csv", model_name=unique_model_name, n_estimators=5)
    job = job_wait(http, stack, accepted["id"])

    # then: failed, naming the column and the row, no version registered
    assert accepted["status"] == "queued"
    assert job["status"] == "failed" and job["registered_version"] is None
    error = job["error"]
    assert (error["code"], error["message"]) == ("bad_cell", f"Column 'b', row {BAD_ROW}: 'unknown' is not a number.")
    assert (error["extra"]["column"], error["extra"]["row"]) == ("b", BAD_ROW)
    # ...and the upload stays in the datasets bucket, byte for byte, with its counts
    assert job["dataset"]["sha256"] == sha256(csv) and job["dataset"]["n_rows"] == ROWS
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.datasets_bucket, Prefix="datasets/")
        for item in page.get("Contents", [])
    ]
    stored = [
        key for key in keys if s3.head_object(Bucket=stack.datasets_bucket, Key=key)["ContentLength"] == len(csv)
    ]
    assert any(
        sha256(s3.get_object(Bucket=stack.datasets_bucket, Key=key)["Body"].read()) == sha256(csv) for key in stored
    )
