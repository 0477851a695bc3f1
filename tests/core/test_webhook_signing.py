"""The signature scheme (Stripe's): a receiver accepts what was signed with its secret, recently, and nothing else."""

import time

from core.webhooks.signing import sign, verify

SECRET = "whsec_test"
BODY = b'{"id":"1","event":"ping","data":{}}'


def test_a_fresh_signature_over_the_body_verifies():
    # given
    header = sign(SECRET, BODY)

    # then
    assert header.startswith("t=") and ",v1=" in header
    assert verify(SECRET, header, BODY)
    assert verify(SECRET, header, BODY.decode())


def test_a_tampered_body_a_wrong_secret_or_a_bad_header_is_refused():
    # given
    header = sign(SECRET, BODY)

    # then
    assert not verify(SECRET, header, BODY.replace(b"ping", b"pong"))
    assert not verify("whsec_other", header, BODY)
    assert not verify(SECRET, header.split(",")[1], BODY)  # no timestamp
    assert not verify(SECRET, header.split(",")[0], BODY)  # no signature
    assert not verify(SECRET, "t=abc,v1=00", BODY)
    assert not verify(SECRET, "", BODY)


def test_a_stale_or_future_timestamp_is_refused_even_with_a_good_signature():
    # given: signed ten minutes ago, and ten minutes ahead
    now = time.time()
    old, ahead = sign(SECRET, BODY, int(now) - 600), sign(SECRET, BODY, int(now) + 600)

    # then
    assert not verify(SECRET, old, BODY, now=now)
    assert not verify(SECRET, ahead, BODY, now=now)
    assert verify(SECRET, old, BODY, tolerance=700, now=now)


def test_any_of_several_signatures_may_match():
    # given: a header signed with an old and a new secret, as while a secret changes
    timestamp = int(time.time())
    old, new = sign("whsec_old", BODY, timestamp), sign(SECRET, BODY, timestamp)
    header = f"{old},{new.split(',')[1]}"

    # then
    assert verify(SECRET, header, BODY) and verify("whsec_old", header, BODY)
