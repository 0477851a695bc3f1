"""Dataset series and retraining: appends checked as /train checks a file, retraining on a window with its
lineage, the challenger alias (never the champion), the retraining policy's triggers, debounce and roles."""

import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from core import events
from core.contract import VersionRef
from mds_project.celery import app as celery_app
from registry_mirror import gateway
from registry_mirror.models import AliasMove, RetrainPolicy, ServedAlias
from training.models import RetrainRequest, SeriesSegment, TrainingJob
from training.services import series
from training.services.series import RETRAIN_START_ATTEMPTS, retrain_schedule_run
from training.tasks import retrain_start_task

from ..conftest import storages_on_a_closed_port
from ..factories import UserFactory, csv_bytes, weather_frame

# 200 days of the sample weather: the first 120 train version 1, the next 80 are appended.
FRAME = weather_frame(200)
FIRST, NEXT = FRAME.iloc[:120], FRAME.iloc[120:]
FAST = {"n_estimators": 10, "backtest": 0}


@pytest.fixture
def trained(train):
    """Version 1 of the test's model, trained by /train on the first 120 days (it becomes the champion)."""
    return train(csv_bytes(FIRST), **FAST)


@pytest.fixture
def append(api_client, model_name, csv_upload, django_capture_on_commit_callbacks):
    def run(content: bytes, client=None, **query):
        with django_capture_on_commit_callbacks(execute=True):
            return (client or api_client).post(
                f"/models/{model_name}/data?{urlencode(query)}", {"file": csv_upload(content, "next.csv")}
            )

    return run


@pytest.fixture
def retrain(api_client, model_name, django_capture_on_commit_callbacks):
    def run(client=None, **query):
        with django_capture_on_commit_callbacks(execute=True):
            return (client or api_client).post(f"/models/{model_name}/retrain?{urlencode(query)}")

    return run


def served(name: str) -> dict[str, int]:
    return {row.alias: row.version for row in ServedAlias.objects.filter(model_name=name)}


def test_append_starts_the_series_with_the_training_dataset_and_lists_segments(
    api_client, model_name, trained, append
):
    # when
    answer = append(csv_bytes(NEXT))
    listing = api_client.get(f"/models/{model_name}/data")

    # then: the dataset that trained version 1 is segment 0, the upload segment 1, both with their time spans
    assert answer.status_code == 201, answer.json()
    body = listing.json()
    assert listing.status_code == 200
    assert body["rows"] == 200 and body["target"] == "target" and body["timestamp"] == "timestamp"
    first, second = body["segments"]
    assert (first["kind"], first["from_job"], first["dataset"]) == (
        "training",
        trained["id"],
        trained["dataset"]["id"],
    )
    assert (first["rows"], second["rows"], second["kind"]) == (120, 80, "upload")
    assert first["first_timestamp"].startswith("2024-01-01") and second["last_timestamp"].startswith("2024-07-18")
    assert second["appended_at"] and answer.json()["appended"]["dataset"] == second["dataset"]


def test_append_as_a_text_csv_body(api_client, model_name, trained, django_capture_on_commit_callbacks):
    # when
    with django_capture_on_commit_callbacks(execute=True):
        answer = api_client.generic("POST", f"/models/{model_name}/data", csv_bytes(NEXT), content_type="text/csv")

    # then
    assert answer.status_code == 201, answer.json()
    assert [part["rows"] for part in answer.json()["segments"]] == [120, 80]


@pytest.mark.parametrize(
    ("frame", "column"),
    [
        (NEXT.drop(columns=["humidity_pct"]), "humidity_pct"),
        (NEXT.rename(columns={"wind_speed_ms": "wind"}), "wind_speed_ms"),
        (NEXT.assign(extra_feature=1.0), "extra_feature"),
    ],
)
def test_append_with_other_columns_is_refused_naming_the_column(model_name, trained, append, frame, column):
    # when
    answer = append(csv_bytes(frame))

    # then: nothing is stored
    assert answer.status_code == 400
    assert (answer.json()["code"], answer.json()["extra"]["column"]) == ("column_mismatch", column)
    assert not SeriesSegment.objects.filter(series__model_name=model_name, source="upload").exists()


def test_append_names_a_bad_cell_and_rows_older_than_the_series_end(model_name, trained, append):
    # given
    bad = NEXT.astype({"pressure_hpa": object}).copy()
    bad.iloc[5, bad.columns.get_loc("pressure_hpa")] = "high"
    older = FRAME.iloc[110:130]

    # when
    bad_answer = append(csv_bytes(bad))
    older_answer = append(csv_bytes(older))

    # then: the cell by column and row; the first row older than the series' last (2024-04-29) by row
    assert bad_answer.status_code == 400
    assert (bad_answer.json()["code"], bad_answer.json()["extra"]["column"]) == ("bad_cell", "pressure_hpa")
    assert bad_answer.json()["extra"]["row"] == 6
    assert older_answer.status_code == 400
    assert older_answer.json()["code"] == "rows_before_series_end"
    assert older_answer.json()["extra"]["row"] == 1


def test_retrain_on_the_whole_series_makes_a_challenger_and_leaves_the_champion(
    api_client, model_name, trained, append, retrain
):
    # given
    append(csv_bytes(NEXT))

    # when
    answer = retrain(wait=0)
    job = api_client.get(f"/train/{answer.json()['id']}").json()

    # then: version 2 on all 200 rows, with the last version's parameters; @challenger moved, @champion did not
    assert answer.status_code in (200, 202), answer.json()
    assert job["status"] == "success", job
    assert (job["trigger"], job["registered_version"]) == ("manual", 2)
    assert job["params"]["n_estimators"] == 10 and job["params"]["backtest"] == 0
    lineage = job["lineage"]
    assert lineage["n_rows"] == 200 and lineage["window"] is None
    assert [(part["n_rows"], part["row_first"], part["row_last"]) for part in lineage["segments"]] == [
        (120, 1, 120),
        (80, 1, 80),
    ]
    assert served(model_name) == {"champion": 1, "challenger": 2}
    move = AliasMove.objects.get(model_name=model_name, alias="challenger")
    assert (move.source, move.to_version) == (AliasMove.Source.RETRAIN, 2)
    # and: MLflow's version and run carry the lineage
    version = gateway.model_version_resolve(name=model_name, version=VersionRef(number=2))
    tagged = json.loads(version.tags["mds.lineage"])
    assert tagged["n_rows"] == 200 and version.tags["mds.retrain_trigger"] == "manual"
    assert json.loads(gateway.run_data_get(run_id=job["mlflow_run_id"]).tags["mds.lineage"]) == tagged


def test_retrain_on_a_trailing_window_records_the_rows_it_took(api_client, model_name, trained, append, retrain):
    # given
    append(csv_bytes(NEXT))

    # when: the last 30 days of the series
    answer = retrain(window="30d", n_estimators=5)
    job = api_client.get(f"/train/{answer.json()['id']}").json()

    # then: rows 51-80 of the appended file only, and the override applied
    assert job["status"] == "success", job
    lineage = job["lineage"]
    assert (lineage["window"], lineage["n_rows"]) == ("30d", 30)
    (part,) = lineage["segments"]
    assert (part["row_first"], part["row_last"], part["joined_row_first"], part["joined_row_last"]) == (51, 80, 1, 30)
    assert part["first_timestamp"].startswith("2024-06-19") and part["last_timestamp"].startswith("2024-07-18")
    assert job["params"]["n_estimators"] == 5 and job["counts"]["n_train"] + job["counts"]["n_test"] == 30
    assert served(model_name)["champion"] == 1


def test_a_second_retraining_waits_for_the_first(api_client, model_name, trained, django_capture_on_commit_callbacks):
    # given: a retraining queued, its message not sent yet (the commit's callbacks are not run)
    with django_capture_on_commit_callbacks(execute=False):
        first = api_client.post(f"/models/{model_name}/retrain")

    # when
    second = api_client.post(f"/models/{model_name}/retrain")

    # then
    assert first.status_code == 202, first.json()
    assert second.status_code == 409
    assert second.json()["code"] == "retrain_in_progress" and second.json()["extra"]["job"] == first.json()["id"]


def test_retrain_without_a_trained_version_is_404(api_client, model_name):
    answer = api_client.post(f"/models/{model_name}/retrain")
    assert (answer.status_code, answer.json()["code"]) == (404, "no_trained_version")


def test_roles(api_client, role_client, model_name, trained, append, retrain):
    # given
    predictor, other_trainer, maintainer = role_client("predictor"), role_client("trainer"), role_client("maintainer")

    # then: predictors append and retrain nothing; another trainer's model is not theirs; policies are maintainers'
    assert append(csv_bytes(NEXT), client=predictor).status_code == 403
    assert retrain(client=predictor).status_code == 403
    assert append(csv_bytes(NEXT), client=other_trainer).json()["code"] == "not_model_owner"
    assert retrain(client=other_trainer).json()["code"] == "not_model_owner"
    assert api_client.get(f"/models/{model_name}/retrain-policy").status_code == 403
    assert api_client.put(f"/models/{model_name}/retrain-policy", {"enabled": True}, format="json").status_code == 403
    assert maintainer.get(f"/models/{model_name}/retrain-policy").json()["enabled"] is False
    assert predictor.get(f"/models/{model_name}/data").status_code == 403


def test_policy_is_set_and_checked(role_client, model_name):
    # given
    maintainer = role_client("maintainer")
    url = f"/models/{model_name}/retrain-policy"

    # when
    bad_window = maintainer.put(url, {"window": "ninety days"}, format="json")
    bad_factor = maintainer.put(url, {"degradation_factor": 0.5}, format="json")
    saved = maintainer.put(url, {"enabled": True, "window": "90D", "schedule": "1d", "on_drift": True}, format="json")
    again = maintainer.put(url, {"degradation_factor": 1.5}, format="json")

    # then
    assert (bad_window.status_code, bad_window.json()["code"]) == (400, "invalid_duration")
    assert bad_factor.status_code == 400
    assert saved.status_code == 200 and saved.json()["window"] == "90d" and saved.json()["last_scheduled_at"]
    assert (
        again.json().items() >= {"enabled": True, "window": "90d", "on_drift": True, "degradation_factor": 1.5}.items()
    )


def policy(name: str, **values) -> RetrainPolicy:
    from registry_mirror.services import retrain_policy_set

    return retrain_policy_set(name=name, values={"enabled": True, **values})


def retrainings(name: str) -> list[TrainingJob]:
    return list(TrainingJob.objects.filter(model_name=name).exclude(trigger="").order_by("pk"))


def test_new_data_starts_a_retraining(model_name, trained, append):
    # given
    policy(model_name, on_new_data=True, window="60d")

    # when
    append(csv_bytes(NEXT))

    # then: one retraining on the policy's window, its version the challenger
    (job,) = retrainings(model_name)
    assert (job.trigger, job.status, job.lineage["n_rows"]) == ("new_data", "success", 60)
    assert served(model_name) == {"champion": 1, "challenger": 2}


def test_drift_of_the_champion_starts_a_retraining_and_of_another_version_does_not(
    model_name, trained, django_capture_on_commit_callbacks
):
    # given
    policy(model_name, on_drift=True)

    # when: drift of a version that is not the champion, then of the champion
    with django_capture_on_commit_callbacks(execute=True):
        events.emit(events.DRIFT_DETECTED, {"model_name": model_name, "version": 7, "drifted_features": ["x"]})
    before = retrainings(model_name)
    with django_capture_on_commit_callbacks(execute=True):
        events.emit(events.DRIFT_DETECTED, {"model_name": model_name, "version": 1, "drifted_features": ["x"]})

    # then
    assert before == []
    (job,) = retrainings(model_name)
    assert (job.trigger, job.status) == ("drift", "success")


def test_drift_without_the_policy_trigger_retrains_nothing(model_name, trained, django_capture_on_commit_callbacks):
    policy(model_name, on_drift=False)
    with django_capture_on_commit_callbacks(execute=True):
        events.emit(events.DRIFT_DETECTED, {"model_name": model_name, "version": 1, "drifted_features": ["x"]})
    assert retrainings(model_name) == []


def test_live_mae_degradation_found_by_monitoring_starts_a_retraining(
    api_client, model_name, trained, django_capture_on_commit_callbacks
):
    from inference.monitoring import monitoring_report_record
    from inference.prediction_log import prediction_log_flush

    # given: the policy's factor, and the champion's predictions whose actuals are far off
    policy(model_name, degradation_factor=2.0, degradation_min_rows=20)
    rows = NEXT.iloc[:30]
    answer = api_client.generic(
        "POST", f"/predict?model_name={model_name}", csv_bytes(rows), content_type="text/csv"
    ).json()
    prediction_log_flush()
    actuals = (rows["target"] + 1000.0).tolist()
    sent = api_client.post("/feedback", {"request_id": answer["request_id"], "actuals": actuals}, format="json")
    assert sent.status_code == 200, sent.json()

    # when: the daily report
    with django_capture_on_commit_callbacks(execute=True):
        report = monitoring_report_record(model_name=model_name, version=1)

    # then
    assert report.performance["mae"] > 2.0 * trained["metrics"]["mae"]
    (job,) = retrainings(model_name)
    assert (job.trigger, job.status) == ("degradation", "success")


def test_degradation_below_the_factor_retrains_nothing(
    api_client, model_name, trained, django_capture_on_commit_callbacks
):
    from inference.monitoring import monitoring_report_record
    from inference.prediction_log import prediction_log_flush

    policy(model_name, degradation_factor=50.0, degradation_min_rows=20)
    rows = NEXT.iloc[:30]
    answer = api_client.generic(
        "POST", f"/predict?model_name={model_name}", csv_bytes(rows), content_type="text/csv"
    ).json()
    prediction_log_flush()
    api_client.post(
        "/feedback", {"request_id": answer["request_id"], "actuals": rows["target"].tolist()}, format="json"
    )
    with django_capture_on_commit_callbacks(execute=True):
        monitoring_report_record(model_name=model_name, version=1)
    assert retrainings(model_name) == []


def test_schedule_retrains_when_due_and_not_before(model_name, trained, django_capture_on_commit_callbacks):
    # given: a schedule of 6 h set now
    start = timezone.now()
    policy(model_name, schedule="6h")

    # when: beat's task at +5 h, +7 h and +8 h
    with django_capture_on_commit_callbacks(execute=True):
        early = retrain_schedule_run(now=start + timedelta(hours=5))
        due = retrain_schedule_run(now=start + timedelta(hours=7))
        later = retrain_schedule_run(now=start + timedelta(hours=8))

    # then: one retraining, at +7 h; the next is due at +13 h
    assert early == [] and later == []
    (job,) = due
    assert job.trigger == "schedule"
    assert RetrainPolicy.objects.get(model_name=model_name).last_scheduled_at == start + timedelta(hours=7)
    assert served(model_name)["champion"] == 1


def requests_kept(name: str) -> list[str]:
    return list(RetrainRequest.objects.filter(model_name=name).values_list("trigger", flat=True))


def test_new_data_while_the_broker_is_down_retrains_at_the_next_schedule_check(
    model_name, trained, append, broker_down, django_capture_on_commit_callbacks
):
    # given
    policy(model_name, on_new_data=True)

    # when: the data is appended while its retraining cannot be queued
    answer = append(csv_bytes(NEXT))

    # then: the append is stored, the trigger kept, nothing started
    assert answer.status_code == 201, answer.json()
    assert (requests_kept(model_name), retrainings(model_name)) == (["new_data"], [])

    # when: the broker is back (tasks run in-process here) and beat checks the schedules, twice
    celery_app.conf.task_always_eager = True
    with django_capture_on_commit_callbacks(execute=True):
        first, second = retrain_schedule_run(), retrain_schedule_run()

    # then: one retraining, by the trigger kept, and the trigger forgotten
    (job,) = retrainings(model_name)
    assert (first, second) == ([job], [])
    assert (job.trigger, job.status) == ("new_data", "success")
    assert requests_kept(model_name) == []


def test_a_trigger_whose_start_meets_s3_down_is_kept_until_it_can_start(
    model_name, trained, append, broker_down, settings, closed_port, django_capture_on_commit_callbacks
):
    # given: a trigger kept (the broker was down), and the datasets' storage down when beat starts it
    policy(model_name, on_new_data=True)
    append(csv_bytes(NEXT))
    celery_app.conf.task_always_eager = True
    storages = settings.STORAGES
    settings.STORAGES = storages_on_a_closed_port(storages, closed_port)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        during = retrain_schedule_run()

    # then: nothing started, the trigger still kept (an outage is no failed attempt)
    assert (during, retrainings(model_name), requests_kept(model_name)) == ([], [], ["new_data"])
    assert RetrainRequest.objects.get(model_name=model_name).attempts == 0

    # when: the storage is back
    settings.STORAGES = storages
    with django_capture_on_commit_callbacks(execute=True):
        after = retrain_schedule_run()

    # then
    (job,) = retrainings(model_name)
    assert after == [job]
    assert (job.trigger, job.status, requests_kept(model_name)) == ("new_data", "success", [])


def test_a_trigger_whose_start_keeps_failing_is_dropped_after_its_attempts(
    model_name, trained, append, broker_down, monkeypatch, caplog
):
    # given: a trigger kept, and its start failing with a fault of MDS's own, no dependency down
    policy(model_name, on_new_data=True)
    append(csv_bytes(NEXT))
    celery_app.conf.task_always_eager = True

    def mislaid(**kwargs):
        raise KeyError("mislaid")

    monkeypatch.setattr(series, "retrain_start", mislaid)

    # when: beat checks one time fewer than the attempts a trigger has
    for _ in range(RETRAIN_START_ATTEMPTS - 1):
        assert retrain_schedule_run() == []

    # then: still kept, with its failed attempts and the last error
    (kept,) = RetrainRequest.objects.filter(model_name=model_name)
    assert (kept.trigger, kept.attempts, kept.last_error) == (
        "new_data",
        RETRAIN_START_ATTEMPTS - 1,
        "KeyError: 'mislaid'",
    )

    # when: once more
    with caplog.at_level("ERROR", logger="training.services.series"):
        assert retrain_schedule_run() == []

    # then: dropped, and said so
    assert (retrainings(model_name), requests_kept(model_name)) == ([], [])
    assert f"Dropped the retraining of {model_name!r}: its start failed {RETRAIN_START_ATTEMPTS} times" in caplog.text


def test_maintainers_see_kept_triggers_in_the_admin_and_may_drop_one(model_name, trained, append, broker_down, client):
    # given: a trigger kept while the broker is down
    policy(model_name, on_new_data=True)
    append(csv_bytes(NEXT))
    (kept,) = RetrainRequest.objects.filter(model_name=model_name)

    # when
    client.force_login(UserFactory(role="trainer", is_staff=True))
    refused = client.get("/admin/training/retrainrequest/")
    client.force_login(UserFactory(role="maintainer", is_staff=True))
    listed = client.get("/admin/training/retrainrequest/")
    page = client.get(f"/admin/training/retrainrequest/{kept.pk}/change/")
    dropped = client.post(f"/admin/training/retrainrequest/{kept.pk}/delete/", {"post": "yes"})

    # then
    assert refused.status_code == 403
    assert [row.pk for row in listed.context["cl"].result_list] == [kept.pk]
    assert page.status_code == 200 and "New data appended to the series" in page.content.decode()
    assert dropped.status_code == 302 and requests_kept(model_name) == []


def test_a_trigger_kept_for_a_policy_disabled_since_is_dropped(model_name, trained, append, broker_down):
    # given
    policy(model_name, on_new_data=True)
    append(csv_bytes(NEXT))
    celery_app.conf.task_always_eager = True

    # when
    policy(model_name, enabled=False)
    started = retrain_schedule_run()

    # then
    assert (started, retrainings(model_name), requests_kept(model_name)) == ([], [], [])


def test_a_retraining_message_queued_with_its_trigger_still_starts(
    model_name, trained, django_capture_on_commit_callbacks
):
    # given: a message as queued before triggers were kept: it names its trigger, and nothing is kept for it
    policy(model_name, on_drift=True)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        retrain_start_task.delay(model_name=model_name, trigger="drift")

    # then
    (job,) = retrainings(model_name)
    assert (job.trigger, job.status) == ("drift", "success")
