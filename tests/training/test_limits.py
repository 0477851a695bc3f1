"""Caps on /train: too many columns before any parsing, and the per-user training throttle."""

import io
import time

from tests.factories import csv_bytes, weather_csv, weather_frame
from training import ml
from training.models import Dataset, TrainingJob
from training.services import dataset_create, training_job_fail, training_wait_slot
from training.uploads import upload_stage


def test_a_300000_column_upload_is_a_400_before_anything_is_parsed(api_client, csv_upload, model_name):
    # given
    header = ",".join(["timestamp", *(f"c{i}" for i in range(300_000)), "target"])
    content = (header + "\n" + ",".join("1" * 300_002) + "\n").encode()

    # when
    started = time.perf_counter()
    response = api_client.post(f"/train?model_name={model_name}", {"file": csv_upload(content)})
    elapsed = time.perf_counter() - started

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_columns"
    # ~0.1 s on a quiet machine; the quadratic check this replaced took over 60 s. The bound leaves a loaded
    # machine a hundredfold room without letting a per-column scan back in.
    assert elapsed < 30, f"{elapsed:.2f} s"
    assert not Dataset.objects.exists()


def test_the_training_throttle_answers_429_with_retry_after(api_client, csv_upload, model_name, settings):
    # given
    settings.MDS_THROTTLE_TRAIN = "2/hour"
    url = f"/train?model_name={model_name}&n_estimators=2"

    # when
    answers = [api_client.post(url, {"file": csv_upload()}) for _ in range(3)]
    listing = api_client.get("/train")

    # then: the third start is refused, reading is not throttled
    assert [answer.status_code for answer in answers] == [202, 202, 429]
    assert 0 < int(answers[2]["Retry-After"]) <= 3600
    assert answers[2].json()["code"] == "throttled"
    assert listing.status_code == 200


def test_a_5_mb_bad_cell_is_a_400_of_a_few_hundred_bytes(api_client, csv_upload, model_name):
    # given
    frame = weather_frame(30).astype({"humidity_pct": object})
    frame.loc[3, "humidity_pct"] = "w" * 5_000_000

    # when
    response = api_client.post(f"/train?model_name={model_name}", {"file": csv_upload(csv_bytes(frame))})

    # then
    assert response.status_code == 400
    assert len(response.content) < 600
    assert response.json()["code"] == "bad_cell"
    assert response.json()["extra"] == {"column": "humidity_pct", "row": 4, "bad_rows": 1}


def test_a_stored_job_error_is_bounded_whatever_raised_it(user, model_name):
    # given: a queued job, and an error quoting a whole 1 MB value (as a library's message might)
    raw = weather_csv(days=30)
    staged = upload_stage(io.BytesIO(raw), max_bytes=len(raw))
    columns = raw.split(b"\n", 1)[0].decode().split(",")
    dataset = dataset_create(name="weather.csv", staged=staged, columns=columns, uploaded_by=user)
    staged.close()
    job = TrainingJob.objects.create(
        dataset=dataset,
        created_by=user,
        model_name=model_name,
        target_column="target",
        timestamp_column="timestamp",
        params=ml.TrainingParams(n_estimators=2).as_dict(),
    )

    # when
    training_job_fail(
        job_id=job.pk,
        code="bad_cell",
        message="Cell " + "w" * 1_000_000,
        extra={"column": "c" * 1_000_000, "rows": list(range(10_000)), "row": 4},
    )

    # then
    job.refresh_from_db()
    assert job.status == TrainingJob.Status.FAILED
    assert len(job.error_message) == 2000 and job.error_message.endswith("…")
    assert len(job.error_extra["column"]) == 200
    assert len(job.error_extra["rows"]) == 100
    assert job.error_extra["row"] == 4


def test_past_the_waiters_cap_a_training_request_is_answered_at_once_without_waiting(
    api_client, csv_upload, model_name, settings
):
    # given: every waiting place of this process held (as by two requests waiting on busy workers)
    settings.MDS_TRAIN_MAX_WAITERS = 2
    url = f"/train?model_name={model_name}&n_estimators=2&wait=10"
    with training_wait_slot() as first, training_wait_slot() as second:
        assert first and second

        # when: the job is stored but not run (its on_commit is held back), so a wait would last the whole 10 s
        response = api_client.post(url, {"file": csv_upload()})

    # then: the job is accepted, and the answer says it did not wait
    assert response.status_code == 202
    assert response["X-Wait-Skipped"] == "busy"
    assert response.json()["status"] == "queued"
    assert TrainingJob.objects.filter(pk=response.json()["id"]).exists()


def test_a_waiting_place_is_given_back_when_the_wait_ends(api_client, csv_upload, model_name, settings):
    # given: one waiting place, taken and ended by a short wait on a job that does not run
    settings.MDS_TRAIN_MAX_WAITERS = 1
    first = api_client.post(f"/train?model_name={model_name}&n_estimators=2&wait=0.05", {"file": csv_upload()})

    # when
    with training_wait_slot() as free:
        pass

    # then: the first request waited (no header) and left its place free
    assert first.status_code == 202
    assert not first.has_header("X-Wait-Skipped")
    assert free


def test_without_wait_no_waiting_place_is_needed(api_client, csv_upload, model_name, settings):
    # given
    settings.MDS_TRAIN_MAX_WAITERS = 0

    # when
    response = api_client.post(f"/train?model_name={model_name}&n_estimators=2", {"file": csv_upload()})

    # then
    assert response.status_code == 202
    assert not response.has_header("X-Wait-Skipped")
