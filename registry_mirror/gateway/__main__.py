"""``python -m registry_mirror.gateway IDLE_SECONDS``: the child side of ``RegistryProcess``."""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mds_project.settings.base")

from .process import serve_calls  # noqa: E402

serve_calls(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
