"""Fixtures of the batch tests: a version, small chunks, and POST /batch with its messages run."""

import pytest


@pytest.fixture
def small_chunks(settings):
    # ~40 rows per chunk and ~10 per piece: a few hundred rows make several chunks of several pieces.
    settings.MDS_BATCH_CHUNK_BYTES = 4000
    settings.MDS_BATCH_PIECE_BYTES = 1000


@pytest.fixture
def version(train):
    return train()["registered_version"]


@pytest.fixture
def batch(api_client, django_capture_on_commit_callbacks, model_name):
    def run(body: bytes, *, client=None, content_type="text/csv", **query):
        query = {"model_name": model_name, **query}
        url = "/batch?" + "&".join(f"{key}={value}" for key, value in query.items())
        with django_capture_on_commit_callbacks(execute=True):
            response = (client or api_client).generic("POST", url, body, content_type=content_type)
        return response

    return run
