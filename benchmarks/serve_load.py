"""Load benchmark of ``ctd serve`` in scores-only mode on loopback (bounded in count and time).

Starts the real server (uvicorn, one process, SQLite log) with ``--sync full`` (fsync at every
group commit) on loopback port ``--port``, a *bare* FastAPI/uvicorn endpoint on ``--port + 1`` (same
request model, same uvicorn settings, no token, no log, no monitor) and the server with
``--sync normal`` (durable against ``kill -9``, not power loss) on ``--port + 2``; drives them from
``--clients`` keep-alive connections in alternating rounds, and prints, for single decisions
(``POST /v1/decide``) on all three and for batches (``POST /v1/decide/batch``) on the ``full``
gateway: decisions per second and the p50/p99 request latency, and the ratios gateway / bare
measured in the same run. It then checks the log: every
acknowledged request id exactly once, no other row (zero lost, zero duplicated). Prints one JSON
object on stdout; exits 1 on a lost or duplicated row.

    python benchmarks/serve_load.py --port 18080          # defaults: 8 clients, 20 s cap per phase
    python benchmarks/serve_load.py --port 18080 --requests 2000 --batch 64
    python benchmarks/serve_load.py --port 18080 --postgres local   # + PostgreSQL logs

With ``--postgres URL`` (an empty database) or ``--postgres local`` (a throw-away server started
like the tests' fixture, ``tests/_support/postgres.py``, with ``fsync=on`` so that a commit is as
durable as ``--sync full``), two more single-decision phases run in the same rounds: one gateway on
the PostgreSQL log (``pg``, port ``+ 3``) and two replicas sharing one PostgreSQL log with the
clients split between them (``pg2``, ports ``+ 4`` and ``+ 5``; its own database).

Client and server share the machine's cores, so the figures are a lower bound for the server alone;
compare the ratio, not the absolute rates, across machines.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TOKEN = "bench-token-0123456789abcdef"


def write_certificate(path: Path) -> Path:
    """A one-entry certificate (τ = 0.5, budget 0.2) built with the core's models."""
    import numpy as np

    from ctd_stats.certificate.build import budget_certificate
    from ctd_stats.certificate.model import ASSUMPTION, Certificate
    from ctd_stats.stats.ltt import calibrate_budget

    # A real calibration (uniform DV scores, budget 0.2): a sealed, internally consistent certificate.
    scores = np.random.default_rng(0).random(4000)
    cal = calibrate_budget(scores, 0.2, 0.1)
    Certificate(
        cascade="bench", created_at="2024-01-01T00:00:00Z", package_version="0", seed=0,
        n={"ht": scores.size}, assumption=ASSUMPTION,
        results=[budget_certificate(cal, "expert", None, scores)],
    ).write(path)  # fmt: skip
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bare_server(port: int) -> None:
    """The reference: FastAPI + uvicorn, the gateway's request model, a fixed-shape answer."""
    import uvicorn
    from fastapi import FastAPI

    from serve.schemas import DecideRequest

    globals()["DecideRequest"] = DecideRequest  # the annotation below is resolved in globals
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/v1/decide")
    async def decide(req: DecideRequest) -> dict[str, Any]:
        return {
            "request_id": req.request_id,
            "verdict": "safe",
            "probability": req.probe_prob,
            "delegated": bool((req.dv_score or 0.0) > 0.5),
            "outcome": "probe",
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_server(
    cert: Path, db: Path | str, port: int, bare: bool = False, sync: str = "full"
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CTD_SERVE_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    if bare:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--bare-server", str(port)]
    else:
        cmd = [sys.executable, "-m", "ctd_stats.cli", "serve", "--certificate", str(cert),
               "--db", str(db), "--port", str(port), "--max-batch", "1024", "--sync", sync]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server on port {port} exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start within 60 s")


def client(
    port: int, jobs: list[list[str]], out: list[tuple[float, list[str]]], deadline: float
) -> None:
    """Send each job (a list of request ids: 1 = single decision, more = a batch) in turn."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    rng = np.random.default_rng(abs(hash(jobs[0][0])) % 2**32 if jobs else 0)
    for ids in jobs:
        if time.monotonic() > deadline:
            break
        d = rng.random(len(ids)) * 0.55  # P(d > 0.5) ≈ 0.09, within the budget of 0.2
        items = [
            {"request_id": r, "probe_prob": 0.3, "dv_score": float(x)}
            for r, x in zip(ids, d, strict=True)
        ]
        if len(ids) == 1:
            path, body = "/v1/decide", items[0]
        else:
            path, body = "/v1/decide/batch", {"items": items}
        t0 = time.perf_counter()
        conn.request("POST", path, json.dumps(body), headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status == 200:
            out.append((time.perf_counter() - t0, ids))
    conn.close()


def phase(
    port: int | list[int], name: str, requests: int, batch: int, clients: int, seconds: float
) -> dict[str, Any]:
    """Run ``requests`` requests of ``batch`` decisions each over ``clients`` connections (spread
    over the ports of ``port`` when it is a list: replicas)."""
    ports = port if isinstance(port, list) else [port]
    per = [
        [[f"{name}-{c}-{i}-{j}" for j in range(batch)] for i in range(c, requests, clients)]
        for c in range(clients)
    ]
    outs: list[list[tuple[float, list[str]]]] = [[] for _ in range(clients)]
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client, args=(ports[c % len(ports)], per[c], outs[c], deadline))
        for c in range(clients)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array([x[0] for o in outs for x in o])
    acked = [r for o in outs for x in o for r in x[1]]
    return {
        "phase": name,
        "batch": batch,
        "requests": int(lat.size),
        "decisions": len(acked),
        "seconds": round(wall, 3),
        "decisions_per_s": round(len(acked) / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 2) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 2) if lat.size else None,
        "acked": acked,
        "latencies": lat,
    }


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One phase's figures from its rounds (rates from summed counts and times)."""
    lat = np.concatenate([p.pop("latencies") for p in parts])
    decisions = sum(p["decisions"] for p in parts)
    seconds = sum(p["seconds"] for p in parts)
    return {
        "phase": parts[0]["phase"],
        "batch": parts[0]["batch"],
        "rounds": len(parts),
        "requests": int(lat.size),
        "decisions": decisions,
        "seconds": round(seconds, 3),
        "decisions_per_s": round(decisions / seconds, 1),
        "p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 2) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 2) if lat.size else None,
        "acked": [r for p in parts for r in p["acked"]],
    }


@contextlib.contextmanager
def postgres_databases(spec: str | None) -> Iterator[tuple[str, str] | None]:
    """Two empty PostgreSQL databases (one gateway, two replicas), or None without ``--postgres``."""
    if spec is None:
        yield None
        return
    import psycopg

    server = None
    if spec == "local":
        from tests._support.postgres import LocalPostgres, find_bin_dir

        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise SystemExit(
                "--postgres local: no PostgreSQL server binaries (pip install pgserver)"
            )
        server = LocalPostgres(bin_dir, fsync=True)
        spec = server.create_database("bench")
    try:
        base, _, name = spec.rpartition("/")
        with psycopg.connect(spec, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}_pg2"')
        yield spec, f"{base}/{name}_pg2"
    finally:
        if server is not None:
            server.stop()


def logged_ids(db: Path | str) -> list[str]:
    """The request ids in a SQLite or PostgreSQL decision log."""
    if isinstance(db, str):
        import psycopg

        with psycopg.connect(db) as pcon:
            return [str(r[0]) for r in pcon.execute("SELECT request_id FROM decisions")]
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute("SELECT request_id FROM decisions")]
    finally:
        con.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--port",
        type=int,
        default=None,
        help="gateway (--sync full) port; the bare endpoint uses +1, the --sync normal gateway +2",
    )
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=3000, help="single-decision requests per round")
    ap.add_argument("--rounds", type=int, default=2, help="alternating bare/gateway rounds")
    ap.add_argument("--batch-requests", type=int, default=300, help="batch requests")
    ap.add_argument("--batch", type=int, default=64, help="decisions per batch request")
    ap.add_argument("--seconds", type=float, default=20.0, help="time cap per phase")
    ap.add_argument(
        "--postgres",
        default=None,
        metavar="URL|local",
        help="also run gateways on a PostgreSQL log: an empty database's URL (a second database "
        "<URL>_pg2 is created for the two-replica phase), or 'local' for a throw-away server",
    )
    ap.add_argument("--bare-server", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_server is not None:
        bare_server(args.bare_server)
        return 0
    if args.port is None or not 1 <= args.port <= 65533:
        raise SystemExit("--port must be in 1-65533 (the benchmark also uses --port + 1 and + 2)")
    with tempfile.TemporaryDirectory() as tmp, postgres_databases(args.postgres) as pg:
        cert = write_certificate(Path(tmp) / "certificate.json")
        dbs: dict[str, Path | str] = {
            "full": Path(tmp) / "full.db",
            "normal": Path(tmp) / "normal.db",
        }
        ports: dict[str, int | list[int]] = {
            "full": args.port, "bare": args.port + 1, "normal": args.port + 2,
        }  # fmt: skip
        procs: list[subprocess.Popen[bytes]] = []
        parts: dict[str, list[dict[str, Any]]] = {"bare": [], "full": [], "normal": []}
        try:
            procs.append(start_server(cert, dbs["full"], args.port))
            procs.append(start_server(cert, dbs["full"], args.port + 1, bare=True))
            procs.append(start_server(cert, dbs["normal"], args.port + 2, sync="normal"))
            if pg is not None:
                dbs["pg"], dbs["pg2"] = pg
                ports["pg"], ports["pg2"] = args.port + 3, [args.port + 4, args.port + 5]
                procs.append(start_server(cert, pg[0], args.port + 3))
                procs.extend(start_server(cert, pg[1], p) for p in (args.port + 4, args.port + 5))
                parts.update(pg=[], pg2=[])
            for r in range(args.rounds):
                for name in parts:
                    parts[name].append(
                        phase(
                            ports[name], f"{name}{r}", args.requests, 1, args.clients, args.seconds
                        )
                    )
            batched = phase(
                args.port, "batch", args.batch_requests, args.batch, args.clients, args.seconds
            )
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=60)
        ids = {name: logged_ids(db) for name, db in dbs.items()}
    merged = {name: _merge(ps) for name, ps in parts.items()}
    batched.pop("latencies")
    acked = {name: set(m.pop("acked")) for name, m in merged.items() if name != "bare"}
    acked["full"] |= set(batched.pop("acked"))
    merged["bare"].pop("acked")
    lost = sum(len(acked[n] - set(ids[n])) for n in acked)
    duplicated = sum(len(ids[n]) - len(set(ids[n])) for n in acked)
    bare_rate = merged["bare"]["decisions_per_s"]
    report = {
        "machine": f"{os.cpu_count()} cores (shared with the load generator)",
        "single_sync_full": merged["full"],
        "single_sync_normal": merged["normal"],
        "bare_fastapi": merged["bare"],
        "ratio_full_vs_bare": round(merged["full"]["decisions_per_s"] / bare_rate, 3),
        "ratio_normal_vs_bare": round(merged["normal"]["decisions_per_s"] / bare_rate, 3),
        **(
            {
                "single_postgres": merged["pg"],
                "single_postgres_two_replicas": merged["pg2"],
                "ratio_postgres_vs_sqlite_full": round(
                    merged["pg"]["decisions_per_s"] / merged["full"]["decisions_per_s"], 3
                ),
                "ratio_postgres_vs_bare": round(merged["pg"]["decisions_per_s"] / bare_rate, 3),
            }
            if "pg" in merged
            else {}
        ),
        "batch_sync_full": batched,
        "log_rows": {n: len(v) for n, v in ids.items()},
        "lost": lost,
        "duplicated": duplicated,
        "unacknowledged_rows": sum(len(set(ids[n]) - acked[n]) for n in acked),
    }
    print(json.dumps(report, indent=2))
    return 0 if report["lost"] == 0 and report["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
