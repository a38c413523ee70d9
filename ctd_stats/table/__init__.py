"""The score table: THE seam between the probes layer and the statistics (read, write, splits).

:mod:`~ctd_stats.table.score_table` reads, checks and writes the table; :mod:`~ctd_stats.table.read`
turns file bytes into typed columns; the split vocabulary is :class:`~ctd_stats.table.score_table.splits.Split`.
"""
