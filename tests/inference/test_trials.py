"""Live trials: routing (canary share, stickiness, explicit versions), shadow scoring paired by request id, the
evidence (paired bootstrap), decisions by policy through the promotion gate, guards, roles and errors."""

import json

import numpy as np
import pytest

from core import events
from core.contract import VersionRef
from inference.models import PredictionLog, Trial
from inference.prediction_log import prediction_log_flush
from inference.trials import evidence
from inference.trials.routing import routing_bucket, shadow_scorer, trial_routes, trial_routing, trial_shadow_flush
from inference.trials.services import trial_evaluate
from registry_mirror import selectors
from registry_mirror.models import AliasMove, ModelVersion
from tests.factories import StaffUserFactory, csv_bytes, weather_csv, weather_frame


@pytest.fixture(autouse=True)
def _fresh_trials():
    trial_routes().forget()
    shadow_scorer().clear()
    yield
    trial_routes().forget()
    shadow_scorer().clear()


@pytest.fixture
def maintainer(role_client):
    return role_client("maintainer")


@pytest.fixture
def emitted():
    seen = []

    def listen(*, event, payload, **kwargs):
        seen.append((event, payload))

    events.event_emitted.connect(listen)
    yield seen
    events.event_emitted.disconnect(listen)


@pytest.fixture
def pair(train, maintainer, model_name, settings, django_capture_on_commit_callbacks):
    """Champion v1 and challenger v2 (trained on other data: other predictions); the gate's tolerance wide, so
    a trial's promotion is decided by the live evidence alone."""
    settings.MDS_PROMOTION_TOLERANCE = 100.0
    champion = train()["registered_version"]
    challenger = train(weather_csv(120, seed=11))["registered_version"]
    with django_capture_on_commit_callbacks(execute=True):
        response = maintainer.post(f"/models/{model_name}/aliases/challenger", {"version": challenger}, format="json")
    assert response.status_code == 200, response.json()
    return champion, challenger


def start(client, model_name, **options):
    return client.post(f"/models/{model_name}/trial", options, format="json")


def predict(client, model_name, frame, query="", **headers):
    return client.generic(
        "POST", f"/predict?model_name={model_name}{query}", csv_bytes(frame), content_type="text/csv", **headers
    )


def scored_requests(client, model_name, count, rows=10, **headers):
    """``count`` answered requests of ``rows`` rows each, their shadow scorings done and everything logged."""
    answers = []
    for index in range(count):
        frame = weather_frame(rows, seed=100 + index)
        answer = predict(client, model_name, frame, **headers)
        assert answer.status_code == 200, answer.json()
        answers.append(answer)
    trial_shadow_flush()
    prediction_log_flush()
    return answers


def send_feedback(client, answers, actuals_of, capture):
    """Feedback for each answer: ``actuals_of(champion_predictions, challenger_predictions)``."""
    for answer in answers:
        rows = {row.model_version: np.frombuffer(row.predictions, dtype="<f8") for row in
                PredictionLog.objects.filter(pair_id=answer["X-Request-Id"])}  # fmt: skip
        versions = sorted(rows)
        actuals = actuals_of(rows[versions[0]], rows[versions[1]])
        with capture(execute=True):
            response = client.post(
                "/feedback", {"request_id": answer["X-Request-Id"], "actuals": actuals.tolist()}, format="json"
            )
        assert response.status_code == 200, response.json()


# --- The evidence ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shift", "expected"),
    [(-0.5, evidence.BETTER), (0.5, evidence.WORSE), (0.0, evidence.UNDECIDED)],
)
def test_the_paired_bootstrap_tells_better_worse_and_indistinguishable(shift, expected):
    # given: champion errors of scale 1; a challenger whose absolute errors differ by `shift` on the same rows
    rng = np.random.default_rng(3)
    champion = rng.normal(0, 1, 400)
    challenger = np.sign(champion) * np.clip(np.abs(champion) + shift, 0, None)
    if shift == 0.0:
        challenger = champion + rng.normal(0, 0.05, 400) * np.sign(champion)

    # when
    figures = evidence.paired_comparison(champion, challenger, confidence=0.95, resamples=500, seed=1)

    # then
    assert figures["paired_rows"] == 400
    assert figures["verdict"] == expected
    action, reason = evidence.decision(figures, evidence.Rules(min_paired_rows=200))
    assert action == {evidence.BETTER: "promote", evidence.WORSE: "rollback", evidence.UNDECIDED: None}[expected]
    assert reason


def test_too_few_paired_rows_decide_nothing_but_a_canary_guard_acts_on_a_few_dozen():
    champion = np.ones(40)
    figures = evidence.paired_comparison(champion, champion * 3, confidence=0.95, resamples=200)
    assert evidence.decision(figures, evidence.Rules(min_paired_rows=200))[0] is None
    action, reason = evidence.decision(figures, evidence.Rules(min_paired_rows=200, canary=True))
    assert action == "rollback" and reason.startswith("Guard")
    failing = {"paired_rows": 0, "scorings": {"challenger": 50}, "error_rate": {"challenger": 0.2}}
    assert evidence.decision(failing, evidence.Rules(canary=True))[0] == "rollback"


# --- Routing ---------------------------------------------------------------------------------------------------


def test_a_canary_routes_its_share_of_keys_stickily_and_never_an_explicit_version(pair, maintainer, model_name):
    # given
    champion, challenger = pair
    started = start(maintainer, model_name, mode="canary", share=0.2)
    assert started.status_code == 201, started.json()
    trial_routes().forget()
    reference = VersionRef(alias="champion")

    # when: 2000 distinct routing keys
    served = [
        trial_routing(model_name=model_name, reference=reference, routing_key=f"key:{index}").served
        for index in range(2000)
    ]

    # then: 20 % +- 5 % to the challenger, the same key always to the same version
    assert 0.15 <= served.count(challenger) / 2000 <= 0.25
    assert set(served) == {champion, challenger}
    again = [
        trial_routing(model_name=model_name, reference=reference, routing_key=f"key:{i}").served for i in range(50)
    ]
    assert again == served[:50]
    for explicit in (VersionRef(number=champion), VersionRef(), VersionRef(alias="challenger")):
        assert trial_routing(model_name=model_name, reference=explicit, routing_key="key:1") is None


def test_canary_answers_name_the_version_that_served_and_stick_to_the_routing_key(
    pair, maintainer, api_client, model_name
):
    # given: a key the challenger answers and one the champion answers
    champion, challenger = pair
    trial = start(maintainer, model_name, mode="canary", share=0.5).json()
    keys = {routing_bucket(trial["id"], f"key:k{index}") < 0.5: f"k{index}" for index in range(20)}
    trial_routes().forget()

    # when
    to_challenger = [predict(api_client, model_name, weather_frame(2), HTTP_X_ROUTING_KEY=keys[True]) for _ in "ab"]
    to_champion = predict(api_client, model_name, weather_frame(2), HTTP_X_ROUTING_KEY=keys[False])
    explicit = predict(api_client, model_name, weather_frame(2), f"&version={champion}", HTTP_X_ROUTING_KEY=keys[True])

    # then
    assert [answer["X-Model-Version"] for answer in to_challenger] == [str(challenger)] * 2
    assert to_challenger[0].json()["model"]["version"] == challenger
    assert to_champion["X-Model-Version"] == str(champion)
    assert explicit["X-Model-Version"] == str(champion) and "X-Trial" not in explicit
    assert to_challenger[0]["X-Trial"] == str(trial["id"])


def test_shadow_scoring_is_logged_paired_and_fed_back_for_both_versions(
    pair, maintainer, api_client, model_name, django_capture_on_commit_callbacks
):
    # given
    champion, challenger = pair
    trial = start(maintainer, model_name, mode="shadow", policy="manual").json()
    trial_routes().forget()

    # when: the champion answers; the challenger scores the same rows off the request path
    (answer,) = scored_requests(api_client, model_name, 1, rows=5)
    actuals = np.arange(5, dtype=float) + 2000
    with django_capture_on_commit_callbacks(execute=True):
        fed = api_client.post(
            "/feedback", {"request_id": answer["X-Request-Id"], "actuals": actuals.tolist()}, format="json"
        )

    # then
    assert answer["X-Model-Version"] == str(champion) and fed.status_code == 200
    rows = {row.shadow: row for row in PredictionLog.objects.filter(pair_id=answer["X-Request-Id"])}
    assert (rows[False].model_version, rows[True].model_version) == (champion, challenger)
    assert str(rows[False].request_id) == answer["X-Request-Id"] and rows[False].trial_id == trial["id"]
    np.testing.assert_array_equal(
        np.frombuffer(rows[False].inputs, dtype="<f4"), np.frombuffer(rows[True].inputs, dtype="<f4")
    )
    for row in rows.values():
        predictions = np.frombuffer(row.predictions, dtype="<f8")
        assert row.abs_error_sum == pytest.approx(np.abs(actuals - predictions).sum())
        assert row.latency_ms is not None and row.latency_ms > 0
    status = maintainer.get(f"/models/{model_name}/trial").json()
    assert status["trial"]["figures"]["paired_rows"] == 5
    assert status["trial"]["figures"]["scorings"] == {"champion": 1, "challenger": 1}


def test_v2_requests_are_routed_and_scored_in_the_shadow_as_predict_requests_are(
    pair, maintainer, api_client, model_name
):
    # given
    champion, challenger = pair
    trial = start(maintainer, model_name, mode="shadow", policy="manual").json()
    trial_routes().forget()
    frame = weather_frame(4)
    values = frame[list(frame.columns[1:-1])].to_numpy()
    body = {"inputs": [{"name": "input", "shape": list(values.shape), "datatype": "FP64", "data": values.tolist()}]}

    # when: the champion answers over the Open Inference Protocol; the challenger scores the same rows
    answer = api_client.generic(
        "POST", f"/v2/models/{model_name}/infer", json.dumps(body), content_type="application/json"
    ).json()
    trial_shadow_flush()
    prediction_log_flush()

    # then
    assert (answer["model_version"], answer["parameters"]["trial"]) == (str(champion), trial["id"])
    rows = {row.shadow: row for row in PredictionLog.objects.filter(pair_id=answer["id"])}
    assert (rows[False].model_version, rows[True].model_version) == (champion, challenger)
    assert str(rows[False].request_id) == answer["id"] and rows[True].trial_id == trial["id"]


# --- Decisions -------------------------------------------------------------------------------------------------


def test_auto_policy_promotes_a_better_challenger_through_the_gate(
    pair, maintainer, api_client, model_name, emitted, django_capture_on_commit_callbacks
):
    # given: a shadow trial; actuals close to the challenger's predictions
    champion, challenger = pair
    with django_capture_on_commit_callbacks(execute=True):
        trial = start(maintainer, model_name, mode="shadow", min_paired_rows=60).json()
    answers = scored_requests(api_client, model_name, 8)
    rng = np.random.default_rng(0)

    # when
    send_feedback(
        api_client, answers, lambda old, new: new + rng.normal(0, 1, len(new)), django_capture_on_commit_callbacks
    )

    # then: promoted through the gate, audited as the trial's, @challenger removed, told with the figures
    ended = Trial.objects.get(pk=trial["id"])
    assert ended.status == "promoted", ended.reason
    assert ended.figures["verdict"] == "better" and ended.figures["paired_rows"] >= 60
    assert selectors.served_aliases_of(name=model_name) == {"champion": challenger}
    move = AliasMove.objects.filter(model_name=model_name, alias="champion").first()
    assert (move.from_version, move.to_version, move.source) == (champion, challenger, "trial")
    assert ended.alias_move == move
    assert [event for event, _ in emitted if event.startswith("trial.")] == ["trial.started", "trial.promoted"]
    assert emitted[-1][1]["figures"]["verdict"] == "better"


def test_auto_policy_rolls_back_a_worse_challenger(
    pair, maintainer, api_client, model_name, emitted, django_capture_on_commit_callbacks
):
    champion, challenger = pair
    trial = start(maintainer, model_name, mode="shadow", min_paired_rows=60).json()
    trial_routes().forget()
    answers = scored_requests(api_client, model_name, 8)
    rng = np.random.default_rng(0)

    send_feedback(
        api_client, answers, lambda old, new: old + rng.normal(0, 1, len(old)), django_capture_on_commit_callbacks
    )

    ended = Trial.objects.get(pk=trial["id"])
    assert ended.status == "rolled_back", ended.reason
    assert selectors.served_aliases_of(name=model_name) == {"champion": champion}
    removal = AliasMove.objects.filter(model_name=model_name, alias="challenger").first()
    assert (removal.from_version, removal.to_version, removal.source) == (challenger, None, "trial")
    assert [event for event, _ in emitted if event.startswith("trial.")][-1] == "trial.rolled_back"


def test_a_canary_crossing_its_guard_is_rolled_back_before_the_evidence_is_complete(
    pair, maintainer, api_client, model_name, django_capture_on_commit_callbacks
):
    # given: a canary answering every request with the challenger, whose errors are 3x the champion's
    champion, challenger = pair
    trial = start(maintainer, model_name, mode="canary", share=1.0, min_paired_rows=1000, guard_min_rows=30).json()
    trial_routes().forget()
    answers = scored_requests(api_client, model_name, 4)
    assert {answer["X-Model-Version"] for answer in answers} == {str(challenger)}

    # when
    send_feedback(api_client, answers, lambda old, new: old + (new - old) / 4, django_capture_on_commit_callbacks)

    # then
    ended = Trial.objects.get(pk=trial["id"])
    assert ended.status == "rolled_back" and ended.reason.startswith("Guard"), ended.figures
    assert ended.figures["paired_rows"] < 1000
    assert selectors.served_aliases_of(name=model_name)["champion"] == champion


def test_manual_policy_reports_and_waits_for_a_maintainers_decision(
    pair, maintainer, api_client, model_name, django_capture_on_commit_callbacks
):
    champion, challenger = pair
    trial = start(maintainer, model_name, mode="shadow", policy="manual", min_paired_rows=60).json()
    trial_routes().forget()
    answers = scored_requests(api_client, model_name, 8)
    send_feedback(api_client, answers, lambda old, new: new.copy(), django_capture_on_commit_callbacks)

    # then: evaluated, still running, the evidence says promote
    status = maintainer.get(f"/models/{model_name}/trial").json()["trial"]
    assert status["status"] == "running" and status["evidence"]["action"] == "promote"
    assert Trial.objects.get(pk=trial["id"]).evaluated_at is not None

    # when
    with django_capture_on_commit_callbacks(execute=True):
        decided = maintainer.post(f"/models/{model_name}/trial/decide", {"decision": "promote"}, format="json")

    # then
    assert decided.status_code == 200, decided.json()
    assert decided.json()["status"] == "promoted" and decided.json()["decided_by"]
    assert selectors.served_aliases_of(name=model_name) == {"champion": challenger}
    history = maintainer.get(f"/models/{model_name}/trial").json()
    assert history["trial"] is None and history["history"][0]["id"] == trial["id"]


def test_the_admin_shows_trials_with_their_figures_and_on_the_versions_pages(
    pair, maintainer, api_client, model_name, client, django_capture_on_commit_callbacks
):
    # given: a manual trial with some paired feedback, evaluated
    champion, challenger = pair
    trial = start(maintainer, model_name, mode="shadow", policy="manual", min_paired_rows=500).json()
    trial_routes().forget()
    answers = scored_requests(api_client, model_name, 3)
    send_feedback(api_client, answers, lambda old, new: new.copy(), django_capture_on_commit_callbacks)
    client.force_login(StaffUserFactory())
    version = ModelVersion.objects.get(name=model_name, version=challenger)

    # when
    listing = client.get("/admin/inference/trial/")
    page = client.get(f"/admin/inference/trial/{trial['id']}/change/")
    version_page = client.get(f"/admin/registry_mirror/modelversion/{version.pk}/change/")

    # then
    assert listing.status_code == page.status_code == version_page.status_code == 200
    assert model_name in listing.content.decode()
    text = page.content.decode()
    assert f"challenger v{challenger}" in text and "Waiting for feedback: 30 of 500 paired rows" in text
    assert "p99 latency" in text
    assert f"Trial #{trial['id']}" in version_page.content.decode()


def test_a_stopped_trial_leaves_the_aliases_and_routes_nothing(pair, maintainer, api_client, model_name):
    champion, challenger = pair
    start(maintainer, model_name, mode="canary", share=1.0)
    stopped = maintainer.post(f"/models/{model_name}/trial/stop")
    trial_routes().forget()

    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert selectors.served_aliases_of(name=model_name) == {"champion": champion, "challenger": challenger}
    assert predict(api_client, model_name, weather_frame(1))["X-Model-Version"] == str(champion)
    assert trial_evaluate(trial_id=stopped.json()["id"]).status == "stopped"


# --- Roles and errors ------------------------------------------------------------------------------------------


def test_only_maintainers_start_stop_and_decide_and_readers_may_look(pair, api_client, role_client, model_name):
    predictor = role_client("predictor")
    assert start(api_client, model_name).status_code == 403
    assert api_client.post(f"/models/{model_name}/trial/stop").status_code == 403
    assert api_client.post(f"/models/{model_name}/trial/decide", {"decision": "promote"}).status_code == 403
    assert predictor.get(f"/models/{model_name}/trial").status_code == 200


def test_bad_trial_requests_are_refused_clearly(train, pair, maintainer, model_name):
    # 409: a trial running already; no @challenger; 400: options out of range; 404: no model, no running trial
    assert start(maintainer, model_name, mode="canary").status_code == 400
    bad = start(maintainer, model_name, mode="canary", share=1.5)
    assert bad.status_code == 400 and "share" in str(bad.json())
    assert start(maintainer, model_name, policy="sometimes").status_code == 400
    assert maintainer.post(f"/models/{model_name}/trial/stop").json()["code"] == "no_trial"
    assert start(maintainer, model_name).status_code == 201
    again = start(maintainer, model_name)
    assert (again.status_code, again.json()["code"]) == (409, "trial_running")
    decide = maintainer.post(f"/models/{model_name}/trial/decide", {"decision": "maybe"}, format="json")
    assert decide.status_code == 400
    maintainer.post(f"/models/{model_name}/trial/stop")
    maintainer.delete(f"/models/{model_name}/aliases/challenger")
    missing = start(maintainer, model_name)
    assert (missing.status_code, missing.json()["code"]) == (409, "no_challenger")
    assert start(maintainer, "no_such_model").status_code in (404, 409)
    assert maintainer.get("/models/bad%20name/trial").status_code == 404
