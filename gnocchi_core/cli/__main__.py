"""`python -m gnocchi_core.cli ...`: the `gnocchi` command without the installed script."""

import sys

from . import main

sys.exit(main())
