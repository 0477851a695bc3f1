"""The loop closed, end to end on the sample weather series: train on the first part, append the next period,
retrain (the new version becomes @challenger and a canary trial starts by itself), a 20 % canary, feedback for
both versions, the better challenger promoted by the evidence, then a version trained on shuffled targets rolled
back, each told to a webhook receiver that checks the signatures.

In-process (SQLite, eager tasks, the test client): the same services as the stack, minus the network."""

import json
from urllib.parse import urlencode

import numpy as np
import pytest

from core.webhooks.signing import verify
from inference.models import Trial
from inference.prediction_log import prediction_log_flush
from inference.trials.routing import shadow_scorer, trial_routes, trial_shadow_flush
from registry_mirror import selectors
from registry_mirror.models import AliasMove
from sample_data.make_weather import make_weather
from tests.core.test_webhooks import Receiver
from tests.factories import csv_bytes

SERIES = make_weather()  # sample_data/time_series_weather.csv: two years, daily
FIRST, NEXT, LIVE = SERIES.iloc[:120], SERIES.iloc[120:365], SERIES.iloc[365:]
FAST = {"n_estimators": 20, "backtest": 0}
REQUESTS = 1000


@pytest.fixture(autouse=True)
def _fresh_trials():
    trial_routes().forget()
    shadow_scorer().clear()
    yield
    shadow_scorer().clear()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def live_traffic(client, model_name):
    """``REQUESTS`` one-row requests for @champion from distinct callers (routing keys), over the live period;
    returns (answer, actual) pairs once the shadow scorings and the log are written."""
    answers = []
    for index in range(REQUESTS):
        row = LIVE.iloc[[index % len(LIVE)]]
        answer = client.generic(
            "POST",
            f"/predict?model_name={model_name}",
            csv_bytes(row.drop(columns=["target"])),
            content_type="text/csv",
            HTTP_X_ROUTING_KEY=f"customer-{index}",
        )
        assert answer.status_code == 200, answer.json()
        answers.append((answer, float(row["target"].iloc[0])))
    trial_shadow_flush()
    prediction_log_flush()
    return answers


def feed_back_until_decided(client, answers, trial_id, capture) -> int:
    """Feedback for one answer after another until the trial has ended; returns how many it took."""
    for count, (answer, actual) in enumerate(answers, start=1):
        with capture(execute=True):
            response = client.post(
                "/feedback", {"request_id": answer["X-Request-Id"], "actuals": [actual]}, format="json"
            )
        assert response.status_code == 200, response.json()
        if Trial.objects.get(pk=trial_id).status != "running":
            return count
    return len(answers)


def test_retrain_canary_promote_then_roll_back_a_worse_version_with_signed_webhooks(
    train, api_client, role_client, model_name, settings, receiver, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    maintainer = role_client("maintainer")
    settings.MDS_TRIAL_ON_CHALLENGER = {"mode": "canary", "share": 0.2, "policy": "auto"}
    hook = maintainer.post(
        "/webhooks",
        {"url": receiver.url, "events": ["trial.started", "trial.promoted", "trial.rolled_back"]},
        format="json",
    )
    assert hook.status_code == 201, hook.json()

    # given: version 1 on the first 120 days (winter and spring only), @champion
    first = train(csv_bytes(FIRST), **FAST)
    assert first["registered_version"] == 1

    # when: the next period is appended and the model retrained on its series
    with capture(execute=True):
        appended = api_client.post(f"/models/{model_name}/data", {"file": _upload(csv_bytes(NEXT))})
    assert appended.status_code == 201, appended.json()
    with capture(execute=True):
        retrained = api_client.post(f"/models/{model_name}/retrain?{urlencode({'wait': 0})}")
    assert retrained.status_code in (200, 202), retrained.json()

    # then: version 2 is @challenger, and its canary started by itself
    assert selectors.served_aliases_of(name=model_name) == {"champion": 1, "challenger": 2}
    trial = Trial.objects.get(model_name=model_name, status="running")
    assert (trial.champion_version, trial.challenger_version, trial.mode, trial.share) == (1, 2, "canary", 0.2)

    # when: live traffic from 1000 callers
    trial_routes().forget()
    answers = live_traffic(api_client, model_name)

    # then: the canary answers 20 % +- 5 % of it, the champion the rest
    served = [int(answer["X-Model-Version"]) for answer, _ in answers]
    assert 0.15 <= served.count(2) / REQUESTS <= 0.25

    # when: the actuals come back
    needed = feed_back_until_decided(api_client, answers, trial.pk, capture)

    # then: promoted by the evidence once it had its paired rows, through the gate, audited as the trial's
    trial.refresh_from_db()
    assert trial.status == "promoted", (trial.reason, trial.figures)
    assert trial.min_paired_rows <= needed < REQUESTS
    assert trial.figures["challenger"]["mae"] < trial.figures["champion"]["mae"]
    assert selectors.served_aliases_of(name=model_name) == {"champion": 2}
    move = AliasMove.objects.filter(model_name=model_name, alias="champion").first()
    assert (move.from_version, move.to_version, move.source) == (1, 2, "trial")

    # given: a version trained on the same year with its targets shuffled, made the challenger
    shuffled = SERIES.iloc[:365].assign(target=np.random.default_rng(0).permutation(SERIES["target"].iloc[:365]))
    worse = train(csv_bytes(shuffled), **FAST)["registered_version"]
    with capture(execute=True):
        moved = maintainer.post(f"/models/{model_name}/aliases/challenger", {"version": worse}, format="json")
    assert moved.status_code == 200, moved.json()
    second = Trial.objects.get(model_name=model_name, status="running")
    assert (second.champion_version, second.challenger_version) == (2, worse)

    # when
    trial_routes().forget()
    answers = live_traffic(api_client, model_name)
    needed = feed_back_until_decided(api_client, answers, second.pk, capture)

    # then: rolled back on the evidence (or its guard, sooner), @champion unchanged, @challenger removed
    second.refresh_from_db()
    assert second.status == "rolled_back", (second.reason, second.figures)
    assert needed < REQUESTS
    assert selectors.served_aliases_of(name=model_name) == {"champion": 2}

    # and every trial event reached the receiver, signed with the subscription's secret
    assert [json.loads(body)["event"] for _, body in receiver.requests] == [
        "trial.started", "trial.promoted", "trial.started", "trial.rolled_back"
    ]  # fmt: skip
    for headers, body in receiver.requests:
        assert verify(hook.json()["secret"], headers["MDS-Signature"], body)
    promoted = json.loads(receiver.requests[1][1])["data"]
    assert promoted["figures"]["verdict"] == "better" and promoted["challenger_version"] == 2


def _upload(content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("next.csv", content, content_type="text/csv")
