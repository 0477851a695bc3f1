"""``python -m mds``: see :mod:`mds.cli`."""

import sys

from .cli import main

sys.exit(main())
