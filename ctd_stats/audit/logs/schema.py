"""The decision-log schema, owned here: what ``ctd serve`` writes and ``ctd audit`` reads.

The gateway creates the table :data:`DECISIONS_TABLE` with :data:`DECISIONS_DDL` in SQLite
(:mod:`serve.decisionlog`) or :data:`POSTGRES_DECISIONS_DDL` in PostgreSQL (:mod:`serve.pglog`): the
same columns, in the same order, holding the same values; the audit reads that table (or any log file) through the column roles below,
taking the first present name of each alias list. Both sides import these names; neither spells them.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DECISIONS_DDL",
    "DECISIONS_TABLE",
    "DECISION_ALIASES",
    "DECISION_COLUMN",
    "GROUP_ALIASES",
    "GROUP_COLUMN",
    "POSTGRES_DECISIONS_DDL",
    "SCORE_ALIASES",
    "SCORE_COLUMN",
    "TIMESTAMP_ALIASES",
    "TIMESTAMP_COLUMN",
]

#: The SQLite table of decisions (the gateway writes it; the audit reads it when a database has several).
DECISIONS_TABLE: Final = "decisions"

#: Column names the gateway writes for the four roles the audit reads.
TIMESTAMP_COLUMN: Final = "timestamp"
SCORE_COLUMN: Final = "dv_score"
DECISION_COLUMN: Final = "delegated"
GROUP_COLUMN: Final = "group"

#: Accepted names per role in any log (the first present one is used); the gateway's name first.
TIMESTAMP_ALIASES: tuple[str, ...] = (TIMESTAMP_COLUMN, "ts", "time")
SCORE_ALIASES: tuple[str, ...] = (SCORE_COLUMN, "score")
DECISION_ALIASES: tuple[str, ...] = (DECISION_COLUMN, "decision", "delegate")
GROUP_ALIASES: tuple[str, ...] = (GROUP_COLUMN,)

#: The gateway's table of decisions (one row per decision, committed before the answer is sent).
DECISIONS_DDL: Final = f"""
CREATE TABLE IF NOT EXISTS {DECISIONS_TABLE} (
    seq INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    timestamp TEXT NOT NULL,
    dv_score REAL NOT NULL,
    probe_prob REAL,
    delegated INTEGER NOT NULL CHECK (delegated IN (0, 1)),
    expert_called INTEGER NOT NULL CHECK (expert_called IN (0, 1)),
    expert_prob REAL,
    probability REAL,
    verdict TEXT,
    outcome TEXT NOT NULL,
    threshold REAL NOT NULL,
    certificate_sha256 TEXT NOT NULL,
    expert TEXT,
    "group" TEXT,
    input_kind TEXT NOT NULL,
    expert_latency_ms REAL,
    payload_sha256 TEXT
);
"""

#: The same table in PostgreSQL (``ctd serve --db postgresql://...``): same columns and values.
#: ``seq`` is an identity column; rows are inserted only under the shared monitor-state row lock
#: (:mod:`serve.pglog`), so ``seq`` order is commit order across all gateways writing the log.
POSTGRES_DECISIONS_DDL: Final = f"""
CREATE TABLE IF NOT EXISTS {DECISIONS_TABLE} (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    timestamp TEXT NOT NULL,
    dv_score DOUBLE PRECISION NOT NULL,
    probe_prob DOUBLE PRECISION,
    delegated INTEGER NOT NULL CHECK (delegated IN (0, 1)),
    expert_called INTEGER NOT NULL CHECK (expert_called IN (0, 1)),
    expert_prob DOUBLE PRECISION,
    probability DOUBLE PRECISION,
    verdict TEXT,
    outcome TEXT NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    certificate_sha256 TEXT NOT NULL,
    expert TEXT,
    "group" TEXT,
    input_kind TEXT NOT NULL,
    expert_latency_ms DOUBLE PRECISION,
    payload_sha256 TEXT
);
"""
