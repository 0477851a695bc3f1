"""Where a webhook may be sent: public addresses only, unless ``MDS_WEBHOOK_ALLOW_PRIVATE``.

A subscription's URL is sent to by MDS's own servers, inside its network: one naming a loopback, private,
link-local (a cloud's metadata service, 169.254.169.254) or other non-public address would let whoever sets it
reach what only MDS should. The URL is checked when it is set or changed (a name that does not resolve yet is
accepted; a subscription whose name was pointed inward since can still be changed otherwise, deactivated say) and
again before each attempt, so such a name's deliveries are refused; the few milliseconds between that check and
the connection remain.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError


def non_public_addresses(url: str) -> list[str]:
    """The addresses ``url``'s host resolves to that are not public (empty: all are, or it does not resolve).

    A literal address is taken as it is; an IPv4 address mapped into IPv6 is judged as the IPv4 address.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = {str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except (OSError, ValueError, UnicodeError):
        return []
    return sorted(address for address in found if not _public(address))


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global


def destination_refusal(url: str) -> str:
    """Why ``url`` may not be sent to (``""``: it may)."""
    if settings.MDS_WEBHOOK_ALLOW_PRIVATE:
        return ""
    inner = non_public_addresses(url)
    if not inner:
        return ""
    return (
        f"{urlsplit(url).hostname} resolves to {', '.join(inner)}, not a public address: webhooks are sent to public "
        "addresses only (MDS_WEBHOOK_ALLOW_PRIVATE allows the others)."
    )


def destination_check(url: str) -> None:
    """Refuse ``url`` as a subscription's new URL if it may not be sent to (the API's ``400`` naming the field).

    Raises:
        ValidationError: ``{"url": ...}``, as the field's own validators give it.
    """
    refusal = destination_refusal(url)
    if refusal:
        raise ValidationError({"url": ValidationError(refusal, code="webhook_url_not_public")})
