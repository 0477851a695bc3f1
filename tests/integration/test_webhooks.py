"""Webhooks on the real stack: the Celery worker sends a signed delivery to a real receiver, and beat's sweeper
has the worker retry a refused one with the same event id."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.webhooks.signing import verify

pytestmark = pytest.mark.integration

# Beat sweeps every MDS_WEBHOOK_SWEEP_INTERVAL (10 s) and the first retry is due MDS_WEBHOOK_RETRY_BASE (10 s)
# after the refusal: a bound, not a wait (the test goes on as soon as the receiver has what it needs).
DEADLINE_SECONDS = 90


class Receiver:
    def __init__(self, statuses: list[int]) -> None:
        self.requests: list[tuple[dict, bytes]] = []
        self.statuses = statuses
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.arrived:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append((dict(self.headers), body))
                    receiver.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mds"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int) -> list[tuple[dict, bytes]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.requests) >= count, timeout=DEADLINE_SECONDS), self.requests
            return list(self.requests)


@pytest.fixture
def receiver():
    receiver = Receiver(statuses=[500])
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def webhook(stack, http, receiver):
    response = http.post(f"{stack.web_url}/webhooks", json={"url": receiver.url, "description": "integration"})
    assert response.status_code == 201, response.text
    yield response.json()
    # The stack outlives this test: nothing else may be sent to a receiver that is gone.
    http.delete(f"{stack.web_url}/webhooks/{response.json()['id']}")


def test_the_worker_delivers_signed_and_retries_a_refusal_with_the_same_event_id(stack, http, receiver, webhook):
    # given: a receiver that answers 500 to the first attempt, then 200

    # when
    sent = http.post(f"{stack.web_url}/webhooks/{webhook['id']}/test")
    first, second = receiver.wait_for(2)[:2]

    # then: both attempts signed with the subscription's secret, for the same event
    assert sent.status_code == 202, sent.text
    for headers, body in (first, second):
        assert verify(webhook["secret"], headers["MDS-Signature"], body)
        assert json.loads(body)["event"] == headers["MDS-Event"] == "ping"
    assert first[0]["MDS-Delivery"] == second[0]["MDS-Delivery"] == json.loads(first[1])["id"]
    assert first[1] == second[1]
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        [delivery] = http.get(f"{stack.web_url}/webhooks/{webhook['id']}/deliveries").json()["results"]
        if delivery["status"] != "pending":
            break
        time.sleep(0.2)
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("delivered", 2, 200)
