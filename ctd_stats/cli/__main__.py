"""``python -m ctd_stats.cli``: the ``ctd`` command (same as the console script)."""

import sys

from ctd_stats.cli.entry import main

sys.exit(main())
