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
    for link in ('href="/api/docs"', 'href="/admin/"', 'href="http://mlflow.example:5000"', 'href="/health"'):
        assert link in page
    assert ("Logged in as <strong>ada</strong>" in page) is logged_in
    assert ("/admin/login/?next=/" in page) is not logged_in
