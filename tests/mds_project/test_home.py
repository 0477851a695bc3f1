import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.mark.parametrize("logged_in", [False, True])
def test_the_landing_page_shows_where_to_go(client, db, settings, logged_in):
    # given
    from tests.factories import StaffUserFactory

    settings.MLFLOW_UI_URL = "http://mlflow.example:5000"
    if logged_in:
        client.force_login(StaffUserFactory(username="ada"))

    # when
    response = client.get("/")

    # then: links to the docs, the admin, MLflow and health, and who is logged in
    assert response.status_code == 200
    page = response.content.decode()
    for link in (
        'href="/api/docs"',
        'href="/admin/"',
        'href="http://mlflow.example:5000/#/experiments?workflowType=machine_learning"',
        'href="/health"',
    ):
        assert link in page
    assert ("Logged in as <strong>ada</strong>" in page) is logged_in
    assert ("/admin/login/?next=/" in page) is not logged_in


def test_an_mlflow_ui_nobody_started_is_shown_as_not_running_with_the_command_that_starts_it(
    client, db, settings, closed_port
):
    # given: plain runserver: the embedded store, and no MLflow server where the links point
    settings.MLFLOW_UI_URL = f"http://127.0.0.1:{closed_port}"
    settings.MLFLOW_TRACKING_URI = "sqlite:////data/mlflow/mlflow.db"
    settings.MLFLOW_ARTIFACT_ROOT = "file:///data/mlflow/artifacts"

    # when
    page = client.get("/").content.decode()

    # then
    assert f"Not running: nothing answers at http://127.0.0.1:{closed_port}." in page
    assert (
        '<pre id="mlflow-start">mlflow server --backend-store-uri sqlite:////data/mlflow/mlflow.db '
        f"--default-artifact-root file:///data/mlflow/artifacts --host 127.0.0.1 --port {closed_port}</pre>"
    ) in page


def test_a_running_mlflow_ui_is_linked_without_a_warning(client, db, settings):
    # given: something answering where the UI should be
    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.MLFLOW_UI_URL = f"http://127.0.0.1:{server.server_address[1]}"

    # when
    try:
        page = client.get("/").content.decode()
    finally:
        server.shutdown()
        server.server_close()

    # then: linked in MLflow's model-training view, not its default GenAI one
    assert f'href="{settings.MLFLOW_UI_URL}/#/experiments?workflowType=machine_learning"' in page
    assert "Not running" not in page
