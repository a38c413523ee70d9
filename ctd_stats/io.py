"""Atomic output: nothing is ever half-written.

Files are written to a temporary sibling and renamed into place; whole output directories are
assembled in a temporary sibling directory and renamed at the end.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ctd_stats.errors import CTDInputError


def json_float(x: float) -> float | str:
    """A float for strict JSON: ``+inf``/``-inf``/NaN become ``"inf"``/``"-inf"``/``"nan"``.

    The one infinity encoding of the package (certificates, results, audits, the gateway): strict
    JSON has no infinity, and τ = +inf (never delegate) must survive a round trip.
    """
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(x)


def json_safe(obj: Any) -> Any:
    """``obj`` with every float, at any depth of dicts, lists and tuples, passed through :func:`json_float`."""
    if isinstance(obj, float):
        return json_float(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_error(target: Path, exc: OSError) -> str:
    """One line naming the file that could not be written and why (``File too large``, ``No space
    left on device``...); the OS error of a write names no file by itself."""
    return f"{target}: cannot write ({exc.strerror or exc}); check free space and file-size limits"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, then ``os.replace``).

    The file gets the usual permissions (0666 minus the umask), not the 0600 of a temp file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, PermissionError):
            raise CTDInputError(write_error(target, exc)) from None
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented, strict JSON (no NaN/Infinity literals) atomically."""
    return atomic_write_text(
        path, json.dumps(obj, indent=2, allow_nan=False, sort_keys=False) + "\n"
    )


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only if the block succeeds.

    Files already in ``path`` that the block does not write are kept (they are copied into the
    staging directory first), so re-running a command updates its outputs in one step. On error the
    staging directory is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(staging, 0o777 & ~_umask())
    try:
        if target.is_dir():
            shutil.copytree(target, staging, dirs_exist_ok=True)
        yield staging
        if target.exists():
            backup = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            )
            backup.rmdir()
            os.replace(target, backup)
            os.replace(staging, target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def first_bad_json_line(path: Path, skip_records: int) -> tuple[int | None, str]:
    """The 1-based line number of the first line (after ``skip_records`` records) that is not JSON.

    Only runs on the error path; reads the file line by line (constant memory).
    """
    seen = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            seen += 1
            if seen <= skip_records:
                continue
            try:
                obj = json.loads(text.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                return number, f"{exc.msg} at column {exc.colno}"
            except RecursionError:
                return number, "JSON nested too deeply"
            if not isinstance(obj, dict):
                return number, f"expected a JSON object, got {type(obj).__name__}"
    return None, ""
