"""``python -m fastgd``: the same as the ``fastgd`` command."""

import sys

from .cli import main

sys.exit(main())
