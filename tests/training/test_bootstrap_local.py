"""``bootstrap_local`` (``make run``): the admin's API token, the same on every start while it works."""

import io
import re

from django.core.management import call_command
from knox.models import AuthToken


def bootstrap() -> str:
    out = io.StringIO()
    call_command("bootstrap_local", stdout=out)
    return re.search(r"export TOKEN=(\S+)", out.getvalue()).group(1)


def test_the_same_token_is_printed_while_it_works_and_a_new_one_once_revoked(db, client, settings):
    # given
    first = bootstrap()

    # when
    again = bootstrap()
    AuthToken.objects.all().delete()
    after_revoking = bootstrap()

    # then
    assert again == first != after_revoking
    assert AuthToken.objects.count() == 1
    assert (settings.MDS_DATA_DIR / "api-token.txt").stat().st_mode & 0o777 == 0o600
    assert client.get("/train", HTTP_AUTHORIZATION=f"Token {after_revoking}").status_code == 200
    assert client.get("/train", HTTP_AUTHORIZATION=f"Token {first}").status_code == 401
