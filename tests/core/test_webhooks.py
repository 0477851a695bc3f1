"""Webhooks: the outbox written in the emitter's transaction, the signed POST a real receiver verifies, retries
with the same event id, the API, and the events told by their sources."""

import io
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction
from django.utils import timezone

from core import events
from core.webhooks.models import WebhookDelivery, WebhookSubscription
from core.webhooks.sending import deliveries_dispatch
from core.webhooks.signing import verify
from inference.monitoring import monitoring_reports_record
from inference.prediction_log import prediction_log_flush
from registry_mirror.services import registry_mirror_sync
from sample_data.make_weather import make_weather
from tests.factories import StaffUserFactory, csv_bytes, weather_csv
from training import ml
from training.models import TrainingJob
from training.services import dataset_create, training_job_fail
from training.uploads import upload_stage


class Receiver:
    """A real HTTP receiver on a loopback port: records each request and answers the next of ``statuses``."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict, bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[str]:
        return [json.loads(body)["event"] for _, body in self.requests]


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def maintainer(role_client):
    return role_client("maintainer")


@pytest.fixture
def subscribe(maintainer, receiver):
    """``subscribe(events=[...])``: a subscription of the receiver made through the API; returns its JSON."""

    def make(**fields):
        response = maintainer.post("/webhooks", {"url": receiver.url, **fields}, format="json")
        assert response.status_code == 201, response.json()
        return response.json()

    return make


def emit_committed(django_capture_on_commit_callbacks, event: str, payload: dict) -> None:
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        events.emit(event, payload)


def test_a_receiver_gets_the_event_signed_and_verifies_it(subscribe, receiver, django_capture_on_commit_callbacks):
    # given
    webhook = subscribe(events=[events.JOB_FAILED])

    # when
    emit_committed(django_capture_on_commit_callbacks, events.JOB_FAILED, {"job_id": 7})

    # then: one POST, whose signature verifies with the secret shown at creation
    [(headers, body)] = receiver.requests
    assert verify(webhook["secret"], headers["MDS-Signature"], body)
    assert not verify("whsec_wrong", headers["MDS-Signature"], body)
    sent = json.loads(body)
    assert sent["event"] == headers["MDS-Event"] == "job.failed" and sent["data"] == {"job_id": 7}
    assert headers["MDS-Delivery"] == sent["id"] and headers["Content-Type"] == "application/json"
    delivery = WebhookDelivery.objects.get()
    assert str(delivery.event_id) == sent["id"]
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)


def test_an_event_nobody_subscribed_to_makes_no_delivery(subscribe, receiver, django_capture_on_commit_callbacks):
    # given
    subscribe(events=[events.JOB_FAILED])

    # when
    emit_committed(django_capture_on_commit_callbacks, events.ALIAS_MOVED, {"alias": "champion"})

    # then
    assert not WebhookDelivery.objects.exists() and not receiver.requests


def test_a_failed_attempt_is_retried_with_the_same_event_id(
    subscribe, receiver, settings, django_capture_on_commit_callbacks
):
    # given: a receiver that answers 500 once, then 200; retries due at once
    settings.MDS_WEBHOOK_RETRY_BASE = 0
    subscribe()
    receiver.statuses = [500]

    # when
    emit_committed(django_capture_on_commit_callbacks, events.DRIFT_DETECTED, {"drifted_features": ["x"]})
    after_first = WebhookDelivery.objects.get()
    taken = deliveries_dispatch()

    # then
    assert (after_first.status, after_first.attempts, after_first.last_status_code) == ("pending", 1, 500)
    assert after_first.last_error.startswith("HTTP 500")
    assert taken == [after_first.pk]
    first, second = receiver.requests
    assert first[0]["MDS-Delivery"] == second[0]["MDS-Delivery"] == str(after_first.event_id)
    assert first[1] == second[1]
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)


def test_retries_back_off_end_failed_and_a_maintainer_redelivers(
    subscribe, receiver, settings, maintainer, django_capture_on_commit_callbacks
):
    # given: a receiver that refuses twice; two attempts allowed
    settings.MDS_WEBHOOK_MAX_ATTEMPTS = 2
    subscribe()
    receiver.statuses = [503, 503]
    emit_committed(django_capture_on_commit_callbacks, events.JOB_FAILED, {"job_id": 1})
    delivery = WebhookDelivery.objects.get()
    wait = delivery.next_attempt_at - timezone.now()

    # when: not yet due, then due
    assert deliveries_dispatch() == []
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    deliveries_dispatch()
    failed = WebhookDelivery.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        redelivered = maintainer.post(f"/webhooks/deliveries/{delivery.pk}/redeliver")

    # then
    assert timedelta(seconds=5) < wait <= timedelta(seconds=settings.MDS_WEBHOOK_RETRY_BASE)
    assert (failed.status, failed.attempts, failed.next_attempt_at) == ("failed", 2, None)
    assert redelivered.status_code == 202
    assert len(receiver.requests) == 3 and len({h["MDS-Delivery"] for h, _ in receiver.requests}) == 1
    assert WebhookDelivery.objects.get().status == "delivered"


def test_a_rolled_back_change_leaves_no_delivery(subscribe, receiver, django_capture_on_commit_callbacks):
    # given
    subscribe()

    # when: the change that emitted the event fails after emitting it
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            events.emit(events.JOB_FAILED, {"job_id": 3})
            raise RuntimeError("the change failed")

    # then
    assert not WebhookDelivery.objects.exists() and not receiver.requests


def test_a_receiver_that_is_down_costs_the_emitter_nothing(
    maintainer, closed_port, django_capture_on_commit_callbacks
):
    # given: a subscription to a port nothing listens on
    maintainer.post("/webhooks", {"url": f"http://127.0.0.1:{closed_port}/"}, format="json")

    # when
    emit_committed(django_capture_on_commit_callbacks, events.JOB_FAILED, {"job_id": 4})

    # then: the change committed, its delivery waits for a retry
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and delivery.attempts == 1 and delivery.last_status_code is None
    assert "ConnectionError" in delivery.last_error


# --- The API -------------------------------------------------------------------------------------------------


def test_the_api_shows_the_secret_once_validates_and_manages_subscriptions(maintainer, receiver):
    # when
    created = maintainer.post("/webhooks", {"url": receiver.url, "description": "ops"}, format="json")
    webhook_id = created.json()["id"]
    shown = maintainer.get(f"/webhooks/{webhook_id}")
    listed = maintainer.get("/webhooks")
    patched = maintainer.patch(f"/webhooks/{webhook_id}", {"events": ["alias.moved"], "active": False}, format="json")
    bad_patch = maintainer.patch(f"/webhooks/{webhook_id}", {"url": "file:///etc/passwd"}, format="json")
    deleted = maintainer.delete(f"/webhooks/{webhook_id}")

    # then
    assert created.status_code == 201
    assert created.json()["secret"].startswith("whsec_") and created.json()["events"] == ["*"]
    assert "secret" not in shown.json() and shown.json()["description"] == "ops"
    assert listed.json()["count"] == 1 and "secret" not in listed.json()["results"][0]
    assert patched.json()["events"] == ["alias.moved"] and patched.json()["active"] is False
    assert bad_patch.status_code == 400 and "url" in bad_patch.json()["extra"]["fields"]
    assert deleted.status_code == 204 and not WebhookSubscription.objects.exists()
    assert maintainer.get(f"/webhooks/{webhook_id}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"url": "ftp://example.com/hook"}, "url", "invalid_input"),
        ({"url": "not a url"}, "url", "invalid_input"),
        ({}, "url", "invalid_input"),
        ({"url": "https://example.com/hook", "events": ["model.deleted"]}, "events", "unknown_event"),
        ({"url": "https://example.com/hook", "events": "alias.moved"}, "events", "invalid_input"),
    ],
)
def test_bad_subscriptions_are_a_400_naming_the_field(maintainer, body, field, code):
    # when
    response = maintainer.post("/webhooks", body, format="json")

    # then
    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == code
    assert field in answer["extra"].get("fields", {}) or answer["extra"].get("field") == field
    assert not WebhookSubscription.objects.exists()


@pytest.mark.parametrize(
    ("url", "inner"),
    [
        ("http://127.0.0.1:9/hooks", "127.0.0.1"),
        ("http://localhost/hooks", "127.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://10.1.2.3/hooks", "10.1.2.3"),
        ("http://[::1]:8000/hooks", "::1"),
        ("http://[::ffff:192.168.0.9]/hooks", "::ffff:192.168.0.9"),
    ],
)
def test_a_subscription_to_an_inner_address_is_a_400_naming_it(maintainer, settings, url, inner):
    # given: production's default
    settings.MDS_WEBHOOK_ALLOW_PRIVATE = False

    # when
    response = maintainer.post("/webhooks", {"url": url}, format="json")

    # then
    assert response.status_code == 400
    answer = response.json()
    assert "url" in answer["extra"]["fields"]
    assert f"resolves to {inner}" in json.dumps(answer) and "not a public address" in json.dumps(answer)
    assert not WebhookSubscription.objects.exists()


def test_a_public_address_is_accepted_and_inner_ones_where_allowed(maintainer, settings):
    # when: a public address; then an inner one, allowed
    settings.MDS_WEBHOOK_ALLOW_PRIVATE = False
    public = maintainer.post("/webhooks", {"url": "https://93.184.216.34/hooks"}, format="json")
    settings.MDS_WEBHOOK_ALLOW_PRIVATE = True
    inner = maintainer.post("/webhooks", {"url": "http://127.0.0.1:9/hooks"}, format="json")

    # then
    assert (public.status_code, inner.status_code) == (201, 201)


def test_a_subscription_leading_inward_since_can_still_be_changed_but_not_to_another_inner_url(
    subscribe, maintainer, client, settings
):
    # given: the receiver on loopback, subscribed while inner addresses were allowed, then no longer
    webhook = subscribe()
    settings.MDS_WEBHOOK_ALLOW_PRIVATE = False
    client.force_login(StaffUserFactory())
    page = f"/admin/core/webhooksubscription/{webhook['id']}/change/"
    form = {"url": webhook["url"], "events": '["*"]', "description": "ops"}

    # when: its other fields change, through the API and the admin; then its URL, to another inner address
    deactivated = maintainer.patch(f"/webhooks/{webhook['id']}", {"active": False}, format="json")
    described = client.post(page, form)
    moved = maintainer.patch(f"/webhooks/{webhook['id']}", {"url": "http://10.1.2.3/hooks"}, format="json")
    moved_in_admin = client.post(page, {**form, "url": "http://10.1.2.3/hooks"})

    # then
    assert (deactivated.status_code, described.status_code) == (200, 302)
    assert moved.status_code == 400 and "resolves to 10.1.2.3" in moved.json()["extra"]["fields"]["url"][0]
    assert moved_in_admin.status_code == 200 and "resolves to 10.1.2.3" in moved_in_admin.content.decode()
    subscription = WebhookSubscription.objects.get()
    assert (subscription.url, subscription.active, subscription.description) == (webhook["url"], False, "ops")


def test_each_attempt_checks_the_address_again_and_refuses_an_inner_one_unsent(
    subscribe, receiver, settings, django_capture_on_commit_callbacks
):
    # given: the receiver on loopback, subscribed while inner addresses were allowed, then no longer
    subscribe(events=[events.JOB_FAILED])
    settings.MDS_WEBHOOK_ALLOW_PRIVATE = False

    # when
    emit_committed(django_capture_on_commit_callbacks, events.JOB_FAILED, {"job_id": 7})

    # then: nothing reached the receiver; the attempt failed, saying why
    assert receiver.requests == []
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    assert delivery.last_error.startswith("Refused: 127.0.0.1 resolves to 127.0.0.1, not a public address")


@pytest.mark.parametrize("role", ["predictor", "trainer"])
def test_only_maintainers_manage_webhooks(role_client, role):
    # given
    client = role_client(role)

    # then
    assert client.get("/webhooks").status_code == 403
    assert client.post("/webhooks", {"url": "https://example.com/"}, format="json").status_code == 403
    assert client.post("/webhooks/deliveries/1/redeliver").status_code == 403


def test_the_test_endpoint_pings_one_subscription_and_logs_it(
    maintainer, subscribe, receiver, django_capture_on_commit_callbacks
):
    # given: a subscription to one event, and another one that would hear everything but is inactive
    webhook = subscribe(events=[events.ALIAS_MOVED])
    subscribe(active=False)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = maintainer.post(f"/webhooks/{webhook['id']}/test")
    deliveries = maintainer.get(f"/webhooks/{webhook['id']}/deliveries").json()

    # then
    assert response.status_code == 202
    [(headers, body)] = receiver.requests
    assert headers["MDS-Event"] == "ping" and verify(webhook["secret"], headers["MDS-Signature"], body)
    assert deliveries["count"] == 1 and deliveries["results"][0]["status"] == "delivered"
    assert deliveries["results"][0]["payload"]["webhook_id"] == webhook["id"]


# --- The events, told by their sources -----------------------------------------------------------------------


def test_training_moving_aliases_and_drift_tell_their_events(
    subscribe, receiver, train, model_name, maintainer, api_client, django_capture_on_commit_callbacks
):
    # given
    webhook = subscribe()

    # when: a training registers version 1 (@champion), a maintainer moves @staging, drifted inputs are reported
    version = train(csv_bytes(make_weather(days=730, seed=4)))["registered_version"]
    with django_capture_on_commit_callbacks(execute=True):
        moved = maintainer.post(f"/models/{model_name}/aliases/staging", {"version": version}, format="json")
    live = make_weather(days=300, seed=104)
    predicted = api_client.post(
        f"/predict?model_name={model_name}",
        csv_bytes(live.assign(humidity_pct=live["humidity_pct"] + 60)),
        content_type="text/csv",
    )
    prediction_log_flush()
    with django_capture_on_commit_callbacks(execute=True):
        monitoring_reports_record()

    # then: each event delivered once, signed
    assert moved.status_code == 200 and predicted.status_code == 200
    sent = {json.loads(body)["event"]: json.loads(body)["data"] for _, body in receiver.requests}
    assert sorted(receiver.events()) == sorted(["version.registered", "alias.moved", "alias.moved", "drift.detected"])
    assert all(verify(webhook["secret"], headers["MDS-Signature"], body) for headers, body in receiver.requests)
    registered = sent["version.registered"]
    assert (registered["model_name"], registered["version"], registered["origin"]) == (model_name, 1, "trained")
    assert registered["metrics"]["rmse"] > 0
    moves = [json.loads(body)["data"] for _, body in receiver.requests if json.loads(body)["event"] == "alias.moved"]
    assert {(m["alias"], m["source"], m["from_version"], m["to_version"]) for m in moves} == {
        ("champion", "first_version", None, 1),
        ("staging", "api", None, 1),
    }
    staging = next(m for m in moves if m["alias"] == "staging")
    assert staging["forced"] is False and staging["user"] is not None
    drift = sent["drift.detected"]
    assert drift["drifted_features"] == ["humidity_pct"] and drift["scores"]["humidity_pct"] > 0.2
    assert (drift["model_name"], drift["version"]) == (model_name, 1)

    # and: a second sync of the same model tells nothing again
    with django_capture_on_commit_callbacks(execute=True):
        registry_mirror_sync(model_name=model_name)
    assert len(receiver.requests) == 4


def test_a_failed_training_job_tells_job_failed(
    subscribe, receiver, user, model_name, django_capture_on_commit_callbacks
):
    # given: a queued job
    subscribe(events=[events.JOB_FAILED])
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

    # when: it fails, and a late second failure changes nothing
    with django_capture_on_commit_callbacks(execute=True):
        training_job_fail(job_id=job.pk, code="bad_cell", message="Cell 'x' is not a number")
        training_job_fail(job_id=job.pk, code="late", message="again")

    # then
    [(headers, body)] = receiver.requests
    data = json.loads(body)["data"]
    assert headers["MDS-Event"] == "job.failed"
    assert (data["job_id"], data["model_name"], data["user"]) == (job.pk, model_name, user.get_username())
    assert data["error"]["code"] == "bad_cell"
