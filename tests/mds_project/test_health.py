def test_health_answers_without_auth_or_database(db, client, django_assert_num_queries):
    # given / when
    with django_assert_num_queries(0):
        response = client.get("/health")

    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
