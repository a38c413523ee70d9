"""Deployment decision logs: the schema the gateway writes (:mod:`.schema`), and the readers the audit
uses (:mod:`.reader` for files, :mod:`.sqlite` for the gateway's database, :mod:`.chunks` for parsed
chunks, :mod:`.ray_logs` for partitioned Parquet logs on a Ray cluster).
"""
