"""Where a mirrored version came from, as told by the apps that produce versions.

The mirror depends on no other app. An app that registers versions in MLflow (training) registers a function
here, from its ``AppConfig.ready``, that links a version to its own pages; a version's admin page shows what
those functions return. Versions registered outside this service simply have no links.
"""

from collections.abc import Callable
from dataclasses import dataclass

from .models import ModelVersion


@dataclass(frozen=True)
class OriginLink:
    label: str  # what the link is, e.g. "training job"
    text: str
    url: str


OriginLinks = Callable[[ModelVersion], list[OriginLink]]

_origin_links: list[OriginLinks] = []


def origin_links_register(links: OriginLinks) -> None:
    """Add ``links`` to the functions asked for a version's origin (once; a repeated call is ignored)."""
    if links not in _origin_links:
        _origin_links.append(links)


def model_version_origin_links(version: ModelVersion) -> list[OriginLink]:
    return [link for links in _origin_links for link in links(version)]
