"""Panels other apps add to a mirrored version's admin page, as told by those apps.

Like ``origins``: the mirror depends on no other app. An app with something to say about a version (serving: its
live performance and drift) registers a function here from its ``AppConfig.ready``; the version's page shows the
panels those functions return, after its own sections. A function that fails costs only its own panel.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.utils.html import format_html

from .models import ModelVersion

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionPanel:
    title: str
    html: str  # safe HTML (rendered from a template or with format_html)


VersionPanels = Callable[[ModelVersion], list[VersionPanel]]

_panels: list[VersionPanels] = []


def version_panels_register(panels: VersionPanels) -> None:
    """Add ``panels`` to the functions asked for a version page's panels (once; a repeated call is ignored)."""
    if panels not in _panels:
        _panels.append(panels)


def model_version_panels(version: ModelVersion) -> list[VersionPanel]:
    found = []
    for panels in _panels:
        try:
            found.extend(panels(version))
        except Exception as exc:
            logger.exception("A panel of %s failed", version)
            found.append(VersionPanel("Unavailable", format_html("<p>This panel failed: {}</p>", exc)))
    return found
