"""Signing webhook deliveries, and checking a signature on the receiving side. Pure Python: copy this file.

The scheme is Stripe's: the header ``MDS-Signature: t=<unix seconds>,v1=<hex>`` carries the time of signing and
the HMAC-SHA256, keyed with the subscription's secret, of ``f"{t}.{raw body}"``. The timestamp is signed with the
body, so a captured delivery cannot be replayed later than ``tolerance`` seconds after it was signed.
"""

import hashlib
import hmac
import time

SCHEME = "v1"
DEFAULT_TOLERANCE = 300


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` keyed with ``secret``."""
    message = f"{int(timestamp)}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``MDS-Signature`` header's value for ``body`` signed at ``timestamp`` (default: now)."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={timestamp},{SCHEME}={signature(secret, body, timestamp)}"


def verify(
    secret: str, header: str, body: bytes | str, tolerance: int = DEFAULT_TOLERANCE, now: float | None = None
) -> bool:
    """Whether ``header`` (``MDS-Signature``) signs ``body`` (the raw request body) with ``secret``, signed at most
    ``tolerance`` seconds from ``now`` (default: the current time).

    Compares in constant time; any ``v1`` entry may match (several are sent while a secret is being changed).
    """
    if isinstance(body, str):
        body = body.encode()
    timestamp: int | None = None
    candidates: list[str] = []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = signature(secret, body, timestamp)
    # Every candidate is compared, so the time taken tells nothing about which one (or how much of it) matched.
    return any([hmac.compare_digest(expected, candidate) for candidate in candidates])
