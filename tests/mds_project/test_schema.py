def test_the_openapi_schema_documents_train_and_predict(db, client):
    # when
    response = client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    # then
    assert response.status_code == 200
    paths = response.json()["paths"]
    train_body = paths["/train"]["post"]["requestBody"]["content"]
    predict = paths["/predict"]["post"]
    assert "multipart/form-data" in train_body
    assert {"multipart/form-data", "text/csv", "application/json"} <= predict["requestBody"]["content"].keys()
    assert {"model_name", "version", "alias", "format"} <= {p["name"] for p in predict["parameters"]}
