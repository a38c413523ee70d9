"""``python -m ctd_stats``: the ``ctd`` command line (same arguments, same exit codes)."""

from __future__ import annotations

import sys

from ctd_stats.cli.entry import main

if __name__ == "__main__":
    sys.exit(main())
