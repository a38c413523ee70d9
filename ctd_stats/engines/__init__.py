"""Execution engines: where independent pieces of work run (``local`` in process, ``ray`` on a cluster)."""
