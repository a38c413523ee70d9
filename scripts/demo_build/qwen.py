"""Committing shards as a build writes them (the demo's and the weak-expert build's shard stores).

The shard store itself is the product's (:class:`probes.shards.ShardStore`, re-exported here for the
weak-expert build); this module adds what only a build in this repository does: ``git commit`` of
each new shard on its own, so an interrupted multi-hour build loses at most one shard.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from probes.shards import ShardStore

__all__ = ["ShardStore", "git_commit"]


def git_commit(
    path: Path, message: str, repo: Path, log: Callable[[str], None] = print, tries: int = 30
) -> bool:
    """``git add`` + ``git commit -- path`` (only that path); waits out an index lock; never raises."""
    lock = repo / ".git" / "index.lock"
    rel = str(path.resolve().relative_to(repo.resolve()))
    for _ in range(tries):
        if lock.exists():
            time.sleep(2)
            continue
        try:
            a = subprocess.run(
                ["git", "-C", str(repo), "add", "--", rel],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if a.returncode == 0:
                c = subprocess.run(
                    ["git", "-C", str(repo), "commit", "-q", "-m", message, "--", rel],
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                if c.returncode == 0:
                    return True
                err = c.stderr + c.stdout
            else:
                err = a.stderr
        except (OSError, subprocess.SubprocessError) as exc:  # never fail the build on a commit
            err = str(exc)
        if "index.lock" in err:
            time.sleep(2)
            continue
        log(f"commit of {rel} failed: {err.strip()[:300]}")
        return False
    log(f"commit of {rel} gave up: {lock} kept existing")
    return False
