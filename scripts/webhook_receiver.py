"""A webhook receiver that checks MDS's signatures: a starting point for your own (docs/webhooks.md).

    python scripts/webhook_receiver.py DIR

Listens on a free loopback port and writes its URL to DIR/url; reads the subscription's secret from DIR/secret
(written once the subscription is made) and prints each delivery whose signature verifies, once per event id.
A delivery that does not verify gets 400, so MDS logs the refusal; anything else gets 204.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Pure Python, no Django: copy core/webhooks/signing.py into your receiver.
from core.webhooks.signing import verify  # noqa: E402

DIRECTORY = Path(sys.argv[1])
seen: set[str] = set()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        secret = (DIRECTORY / "secret").read_text().strip()
        if not verify(secret, self.headers.get("MDS-Signature", ""), body):
            self.send_response(400)
            self.end_headers()
            return
        event = json.loads(body)
        # Retries and redeliveries carry the same id: act on each event once.
        if event["id"] not in seen:
            seen.add(event["id"])
            print(f"verified {event['event']} {event['id']}: {json.dumps(event['data'])}", flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
(DIRECTORY / "url").write_text(f"http://127.0.0.1:{server.server_address[1]}/mds-events\n")
server.serve_forever()
