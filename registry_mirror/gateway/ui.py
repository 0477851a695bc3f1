"""The MLflow UI that MDS's pages link to (``MLFLOW_UI_URL``): whether it answers, and how to start one.

Plain ``manage.py runserver`` starts no MLflow server, so a link to the UI would lead nowhere: pages ask
``ui_status`` first and, where nothing answers, say so and show the command that serves the embedded store.
"""

import shlex
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings

# A page asks at most this often per URL; a refused connection answers at once, a silent host within the timeout.
_CHECK_EVERY = 10.0
_TIMEOUT = 0.5

_checked: dict[str, tuple[float, bool]] = {}
_checked_lock = threading.Lock()


# MLflow 3's UI keeps one switch between its GenAI and its model-training views, in the browser's storage, GenAI by
# default; a link that carries this parameter opens the model-training view (runs, models, registry) and sets it.
MODEL_TRAINING_VIEW = "workflowType=machine_learning"


def ui_link(route: str) -> str:
    """The MLflow UI's page at ``route`` (``experiments/1/runs/abc``, ``models/NAME``), in the model-training view."""
    return f"{settings.MLFLOW_UI_URL.rstrip('/')}/#/{route}?{MODEL_TRAINING_VIEW}"


@dataclass(frozen=True)
class UiStatus:
    url: str
    # Where the landing page's link leads: the experiments, in the model-training view.
    home: str
    up: bool
    # The command that serves the embedded store on ``url`` (empty when MDS's store is an MLflow server elsewhere).
    start_command: str


def ui_status() -> UiStatus:
    """Whether the MLflow UI at ``MLFLOW_UI_URL`` answers (any HTTP answer counts: it may ask for a login)."""
    url = settings.MLFLOW_UI_URL.rstrip("/")
    now = time.monotonic()
    with _checked_lock:
        checked_at, up = _checked.get(url, (-_CHECK_EVERY, False))
    if now - checked_at >= _CHECK_EVERY:
        try:
            requests.get(f"{url}/health", timeout=_TIMEOUT, allow_redirects=False)
            up = True
        except requests.RequestException:
            up = False
        with _checked_lock:
            _checked[url] = (now, up)
    return UiStatus(url=url, home=ui_link("experiments"), up=up, start_command="" if up else _start_command(url))


def _start_command(url: str) -> str:
    store = settings.MLFLOW_TRACKING_URI
    if not store.startswith("sqlite:///"):
        return ""
    parts = urlsplit(url)
    return shlex.join(
        [
            "mlflow",
            "server",
            "--backend-store-uri",
            store,
            "--default-artifact-root",
            settings.MLFLOW_ARTIFACT_ROOT,
            "--host",
            parts.hostname or "127.0.0.1",
            "--port",
            str(parts.port or 5000),
        ]
    )
