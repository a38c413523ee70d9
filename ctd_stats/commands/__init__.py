"""Sub-commands of the ``ctd`` command line, one module each (see :mod:`ctd_stats.cli`)."""
