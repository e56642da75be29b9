"""``python -m specref``: the same as the ``specref`` console script."""
import sys

from .cli import main

sys.exit(main())
