"""``python -m yoloanonymize_ray``: the same as the ``yoloanonymize-ray`` command."""

import sys

from .cli import main

sys.exit(main())
