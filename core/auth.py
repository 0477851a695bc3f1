"""API tokens: django-rest-knox's hashed, expiring tokens behind ``Authorization: Token <key>``, checked through a
short per-process cache.

The hot path of an inference server is small requests, and a token lookup costs as much as the model, so a
checked token is remembered for ``MDS_TOKEN_CACHE_TTL`` seconds (default 5): a revoked token is refused by every
process within that time. While the database cannot be reached, a token checked in the last
``MDS_TOKEN_OUTAGE_GRACE`` seconds (default 300) is still trusted, so that loaded versions keep serving through an
outage. The cache is keyed by the token's digest (what the database stores), never the token
itself, and a token's expiry is checked on every request, cached or not.
"""

import binascii
import logging
import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.crypto import hash_token
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

if TYPE_CHECKING:
    from cachetools import TTLCache

# The scheme of the Authorization header, as DRF's tokens had it (REST_KNOX["AUTH_HEADER_PREFIX"]).
KEYWORD = "Token"

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_cache: "TTLCache[str, Any] | None" = None
_fallback: "TTLCache[str, Any] | None" = None
_cache_settings: tuple[float, float] | None = None


def token_cache():
    """This process's checked tokens, ``digest → AuthToken`` (its user loaded), rebuilt when the TTL setting
    changes (tests)."""
    return _caches()[0]


def _caches() -> tuple["TTLCache[str, Any]", "TTLCache[str, Any]"]:
    """The checked tokens, and the same for ``MDS_TOKEN_OUTAGE_GRACE`` seconds: what a request may still trust
    while the database cannot be reached."""
    from cachetools import TTLCache

    global _cache, _fallback, _cache_settings
    ttl, grace = settings.MDS_TOKEN_CACHE_TTL, settings.MDS_TOKEN_OUTAGE_GRACE
    with _lock:
        if _cache is None or _fallback is None or _cache_settings != (ttl, grace):
            # TTLCache needs a positive TTL; with 0 nothing is put in it (TokenAuthentication).
            _cache = TTLCache(maxsize=10_000, ttl=max(ttl, 1e-9))
            _fallback = TTLCache(maxsize=10_000, ttl=max(grace, 1e-9))
            _cache_settings = (ttl, grace)
        return _cache, _fallback


def token_cache_clear() -> None:
    with _lock:
        for cache in (_cache, _fallback):
            if cache is not None:
                cache.clear()


def token_cache_forget(digest: str) -> None:
    """Drop one token from this process's cache (others forget it within ``MDS_TOKEN_CACHE_TTL``)."""
    caches = _caches()
    with _lock:
        for cache in caches:
            cache.pop(digest, None)


class TokenAuthentication(BaseAuthentication):
    """knox's token check (``knox.auth.TokenAuthentication``) by digest, the primary key: one indexed lookup
    instead of knox's scan of the token's prefix and its clean-up writes, and cached for ``MDS_TOKEN_CACHE_TTL``
    seconds. Not a subclass of knox's: that module loads models, and DRF imports this class before they are ready.
    """

    keyword = KEYWORD

    def authenticate(self, request):
        auth = get_authorization_header(request).split()
        if not auth or auth[0].lower() != self.keyword.lower().encode():
            return None
        if len(auth) != 2:
            raise AuthenticationFailed(f"Invalid token header: send `Authorization: {self.keyword} <token>`.")
        return self.authenticate_credentials(auth[1])

    def authenticate_header(self, request) -> str:
        return self.keyword

    def authenticate_credentials(self, token: bytes):
        try:
            digest = hash_token(token.decode())
        except (UnicodeDecodeError, TypeError, binascii.Error) as exc:
            raise AuthenticationFailed("Invalid token.") from exc
        cache, fallback = _caches()
        with _lock:
            auth_token = cache.get(digest)
        if auth_token is None:
            auth_token = _lookup(digest, cache, fallback)
            if auth_token is None:
                raise AuthenticationFailed("Invalid token.")
        if auth_token.expiry is not None and auth_token.expiry <= timezone.now():
            raise AuthenticationFailed(
                "Token expired: ask for a new one (python manage.py issue_token, POST /tokens)."
            )
        if not auth_token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        return auth_token.user, auth_token


def _lookup(digest: str, cache: "TTLCache[str, Any]", fallback: "TTLCache[str, Any]"):
    """The token whose digest is ``digest`` (``None``: there is none), read from the database and remembered; while
    the database cannot be reached, this process's check of it from the last ``MDS_TOKEN_OUTAGE_GRACE`` seconds."""
    try:
        auth_token = _query(digest)
    except (OperationalError, InterfaceError) as exc:
        # The database is down: a token this process checked lately is still trusted, so that a loaded version
        # keeps serving through a short outage; any other gets the 503. Asked again after the cache's TTL, not on
        # every request (a database that times out would hold each one that long).
        with _lock:
            known = fallback.get(digest)
            if known is not None:
                cache[digest] = known
        if known is None:
            raise
        logger.warning("Token check without the database (%s): trusting this process's check from before", exc)
        return known
    with _lock:
        if auth_token is None:
            fallback.pop(digest, None)
        elif settings.MDS_TOKEN_CACHE_TTL > 0:
            cache[digest] = auth_token
            if settings.MDS_TOKEN_OUTAGE_GRACE > 0:
                fallback[digest] = auth_token
    return auth_token


def _query(digest: str):
    from knox.models import get_token_model

    def query():
        auth_token = get_token_model().objects.select_related("user").filter(digest=digest).first()
        if auth_token is not None:
            # The user's permissions are read with the token, so that a connection lost between the two is retried
            # (or an outage met) as one; Django's backend keeps them on the user the cache holds.
            auth_token.user.get_all_permissions()
        return auth_token

    try:
        return query()
    except (OperationalError, InterfaceError):
        # A connection the database (or a proxy) closed under us: one fresh connection, then whatever happens.
        if connection.in_atomic_block:
            raise
        connection.close()
        return query()


class TokenScheme(OpenApiAuthenticationExtension):
    """The schema's name for the token check: ``Authorization: Token <key>``."""

    target_class = TokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix=KEYWORD)
