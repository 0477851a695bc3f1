"""API tokens as a user sees them: issue one, list them, revoke one.

A token's secret is shown once, when it is made; the database keeps its SHA-512 digest (django-rest-knox). Its
owner and maintainers (``knox.view_authtoken`` to list everyone's, ``knox.delete_authtoken`` to revoke anyone's)
manage it; to anyone else another user's token does not exist.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from knox.crypto import hash_token
from knox.models import AuthToken

from .auth import token_cache_forget
from .errors import NotFound


def token_ttl(days: float | None = None) -> timedelta | None:
    """How long a new token works: ``days``, else ``MDS_TOKEN_TTL_DAYS``; ``None`` (for 0 days): until revoked."""
    days = settings.MDS_TOKEN_TTL_DAYS if days is None else days
    return timedelta(days=days) if days and days > 0 else None


@transaction.atomic
def token_create(*, user, days: float | None = None) -> tuple[AuthToken, str]:
    """A new token of ``user``, working for ``days`` (default ``MDS_TOKEN_TTL_DAYS``; 0: until revoked).

    Returns:
        The row and the token itself: the only time it is known, the database keeps its digest.
    """
    return AuthToken.objects.create(user=user, expiry=token_ttl(days))


def token_usable(*, user, token: str) -> bool:
    """Whether ``token`` is one of ``user``'s and has not expired."""
    try:
        digest = hash_token(token)
    except (TypeError, ValueError):
        return False
    return (
        AuthToken.objects.filter(digest=digest, user=user)
        .filter(Q(expiry__isnull=True) | Q(expiry__gt=timezone.now()))
        .exists()
    )


def tokens_visible(*, user, owner: str | None = None) -> QuerySet[AuthToken]:
    """The tokens ``user`` may see: their own, or everyone's (``owner``: one username's) for maintainers."""
    tokens = AuthToken.objects.select_related("user").order_by("-created")
    if not user.has_perm("knox.view_authtoken"):
        return tokens.filter(user=user)
    return tokens.filter(user__username=owner) if owner else tokens


@transaction.atomic
def token_revoke(*, user, token_id: str) -> None:
    """Delete a token, so that it is refused by every process within ``MDS_TOKEN_CACHE_TTL`` seconds (by this
    one at once).

    Raises:
        NotFound: no such token, or one of another user to a user who may not revoke it (which is not told).
    """
    tokens = AuthToken.objects.all()
    if not user.has_perm("knox.delete_authtoken"):
        tokens = tokens.filter(user=user)
    if tokens.filter(digest=token_id).delete()[0] == 0:
        raise NotFound("No such token.", code="unknown_token", extra={"id": token_id[:128]})
    token_cache_forget(token_id)
