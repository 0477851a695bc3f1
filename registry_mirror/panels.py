"""Panels other apps add to a mirrored version's or model's admin page, as told by those apps.

Like ``origins``: the mirror depends on no other app. An app with something to say about a version (serving: its
live performance and drift) or a model (training: its dataset series; serving: its live trials and decisions)
registers a function here from its ``AppConfig.ready``; the page shows the panels those functions return, after
its own sections. A function that fails costs only its own panel.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.utils.html import format_html

from .models import ModelVersion, RegisteredModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Panel:
    title: str
    html: str  # safe HTML (rendered from a template or with format_html)


VersionPanels = Callable[[ModelVersion], list[Panel]]
ModelPanels = Callable[[RegisteredModel], list[Panel]]

_version_panels: list[VersionPanels] = []
_model_panels: list[ModelPanels] = []


def version_panels_register(panels: VersionPanels) -> None:
    """Add ``panels`` to the functions asked for a version page's panels (once; a repeated call is ignored)."""
    if panels not in _version_panels:
        _version_panels.append(panels)


def model_panels_register(panels: ModelPanels) -> None:
    """Add ``panels`` to the functions asked for a registered model page's panels (once, as above)."""
    if panels not in _model_panels:
        _model_panels.append(panels)


def model_version_panels(version: ModelVersion) -> list[Panel]:
    return _collected(_version_panels, version)


def registered_model_panels(model: RegisteredModel) -> list[Panel]:
    return _collected(_model_panels, model)


def _collected(functions: list, obj) -> list[Panel]:
    found = []
    for panels in functions:
        try:
            found.extend(panels(obj))
        except Exception as exc:
            logger.exception("A panel of %s failed", obj)
            found.append(Panel("Unavailable", format_html("<p>This panel failed: {}</p>", exc)))
    return found
