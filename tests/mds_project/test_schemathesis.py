"""The running app, driven from its own OpenAPI schema: schemathesis generates requests for every operation, valid
and invalid, and no answer may be a 5xx.

Bounded (``EXAMPLES`` per operation and mode, ~1 minute in all) to keep the suite fast; authenticated as a
superuser so every endpoint is reached past its permission check. Runs on the database the suite runs on
(PostgreSQL in CI, which refuses NUL in text), and sends NUL and lone surrogates in every parameter on purpose:
random generation seldom hits them.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from mds_project.wsgi import application
from tests.factories import StaffUserFactory, api_token

EXAMPLES = 10


@pytest.fixture
def token(db):
    return api_token(StaffUserFactory(username="schemathesis"))


@pytest.fixture
def in_process_requests():
    # Requests run in this thread through the WSGI app; a server would close the database connection around
    # each one, which inside the test's transaction would close the test's own.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_no_request_the_schema_allows_or_refuses_gets_a_server_error(token, in_process_requests, settings):
    # given: the schema as the running app serves it, to a signed-in client
    settings.MDS_THROTTLE_TRAIN = "off"
    headers = {"Authorization": f"Token {token}"}
    api_schema = schemathesis.openapi.from_wsgi("/api/schema?format=json", application, headers=headers)
    operations = [result.ok() for result in api_schema.get_all_operations()]
    failures = {}

    # when
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                # The same examples on every run: CI fails on a regression, never on the luck of a draw.
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def exercise(case):
                response = case.call(headers=headers)
                case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])

            try:
                exercise()
            except Unsatisfiable:
                # No invalid request can be built for this operation (e.g. all its inputs are free strings).
                continue
            except Exception as exc:  # noqa: BLE001 - every failure is reported below, by operation
                failures[f"{operation.label} ({mode.value})"] = f"{type(exc).__name__}: {exc}"[:2000]

    # then
    assert len(operations) >= 9
    assert failures == {}, "\n\n".join(f"{label}: {failure}" for label, failure in failures.items())


# A NUL (PostgreSQL's text refuses it) and a lone surrogate (no UTF-8 for it). A URL or a form cannot carry a surrogate
# (a client must encode it first), so they get NUL only; JSON bodies get both, as "\u0000" and "\ud800" escapes.
IN_URLS = ("a\x00b",)
IN_BODIES = ("a\x00b", "a\ud800b")


def test_nul_and_lone_surrogates_in_any_parameter_get_no_server_error(token, in_process_requests, settings):
    # given: one valid request per operation, each of its text parameters then replaced in turn
    settings.MDS_THROTTLE_TRAIN = "off"
    headers = {"Authorization": f"Token {token}"}
    api_schema = schemathesis.openapi.from_wsgi("/api/schema?format=json", application, headers=headers)
    operations = [result.ok() for result in api_schema.get_all_operations()]
    answers = {}

    # when
    for operation in operations:
        label = operation.label

        @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
        @hypothesis_settings(
            max_examples=1, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        def exercise(case):
            places = [(case.path_parameters, IN_URLS), (case.query, IN_URLS)]
            if isinstance(case.body, dict):
                places.append((case.body, IN_BODIES if case.media_type == "application/json" else IN_URLS))
            for values, bad_values in places:
                for name, value in list((values or {}).items()):
                    for bad in bad_values:
                        values[name] = bad
                        response = case.call(headers=headers)
                        answers[f"{label} {name}={bad!r}"] = response.status_code  # noqa: B023 - run at once
                    values[name] = value

        exercise()

    # then
    assert len(answers) >= 10
    server_errors = {label: status for label, status in answers.items() if status >= 500}
    assert server_errors == {}
