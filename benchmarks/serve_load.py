"""Load benchmark of ``ctd serve`` in scores-only mode on loopback (bounded in count and time).

Starts the real server (uvicorn, one process, SQLite log with synchronous=FULL) on a free loopback
port, drives it from ``--clients`` keep-alive connections, and prints, for single decisions
(``POST /v1/decide``) and for batches (``POST /v1/decide/batch``): decisions per second and the
p50/p99 request latency. It then checks the log: every acknowledged request id exactly once, no
other row (zero lost, zero duplicated). Prints one JSON object on stdout; exits 1 on a lost or
duplicated row.

    python benchmarks/serve_load.py                       # defaults: 8 clients, 20 s cap per phase
    python benchmarks/serve_load.py --requests 2000 --batch 64

Client and server share the machine's cores, so the figures are a lower bound for the server alone.
"""

from __future__ import annotations

import argparse
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


def start_server(cert: Path, db: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CTD_SERVE_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "ctd_stats.cli", "serve", "--certificate", str(cert),
           "--db", str(db), "--port", str(port), "--max-batch", "1024"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
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
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
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
    port: int, name: str, requests: int, batch: int, clients: int, seconds: float
) -> dict[str, Any]:
    """Run ``requests`` requests of ``batch`` decisions each over ``clients`` connections."""
    per = [
        [[f"{name}-{c}-{i}-{j}" for j in range(batch)] for i in range(c, requests, clients)]
        for c in range(clients)
    ]
    outs: list[list[tuple[float, list[str]]]] = [[] for _ in range(clients)]
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client, args=(port, per[c], outs[c], deadline))
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
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=3000, help="single-decision requests")
    ap.add_argument("--batch-requests", type=int, default=300, help="batch requests")
    ap.add_argument("--batch", type=int, default=64, help="decisions per batch request")
    ap.add_argument("--seconds", type=float, default=20.0, help="time cap per phase")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cert = write_certificate(Path(tmp) / "certificate.json")
        db = Path(tmp) / "gateway.db"
        port = free_port()
        proc = start_server(cert, db, port)
        try:
            single = phase(port, "single", args.requests, 1, args.clients, args.seconds)
            batched = phase(
                port, "batch", args.batch_requests, args.batch, args.clients, args.seconds
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        con = sqlite3.connect(db)
        ids = [r[0] for r in con.execute("SELECT request_id FROM decisions")]
        con.close()
    acked = set(single.pop("acked")) | set(batched.pop("acked"))
    logged = set(ids)
    report = {
        "machine": f"{os.cpu_count()} cores (shared with the load generator)",
        "single": single,
        "batch": batched,
        "log_rows": len(ids),
        "lost": len(acked - logged),
        "duplicated": len(ids) - len(logged),
        "unacknowledged_rows": len(logged - acked),
    }
    print(json.dumps(report, indent=2))
    return 0 if report["lost"] == 0 and report["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
