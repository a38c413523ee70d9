"""Input files are read only when they are regular files of a bounded size.

A path given by a user may name a FIFO (``open`` blocks until a writer comes), a character device
(``/dev/zero`` never ends and fills memory), a socket or a directory. Every reader of a spec, score
table, certificate or sidecar goes through :func:`check_regular_file` (or :func:`read_capped_bytes`),
which refuses anything but a regular file, and a file larger than the cap for its kind, with one
line naming the file, what it is, the cap and the environment variable that raises it.

The check opens the path with ``O_NONBLOCK`` and inspects the *open* descriptor (``fstat``), so a
FIFO never blocks and the file checked is the file read.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ctd_stats.errors import CTDInputError


@dataclass(frozen=True)
class InputCap:
    """The largest file of one kind that ctd reads, overridable by an environment variable."""

    what: str
    default_bytes: int
    env: str

    @property
    def max_bytes(self) -> int:
        """The cap in force: ``$env`` (bytes, an integer ≥ 1) if set, else the default."""
        raw = os.environ.get(self.env, "").strip()
        if not raw:
            return self.default_bytes
        try:
            value = int(raw)
        except ValueError:
            raise CTDInputError(
                f"{self.env}={raw!r}: expected a number of bytes (an integer ≥ 1)"
            ) from None
        if value < 1:
            raise CTDInputError(f"{self.env}={raw!r}: expected a number of bytes (an integer ≥ 1)")
        return value


_MIB = 1 << 20
#: A YAML spec (a few kB in practice; the YAML parser is pure Python, about 1 MB/s).
SPEC = InputCap("spec", 1 * _MIB, "CTD_MAX_SPEC_BYTES")
#: A score table (CSV or Parquet).
TABLE = InputCap("score table", 16 * 1024 * _MIB, "CTD_MAX_TABLE_BYTES")
#: A certificate (every tested threshold with its counts: tens of MB for 10^6 distinct scores).
CERTIFICATE = InputCap("certificate", 512 * _MIB, "CTD_MAX_CERTIFICATE_BYTES")
#: A deployment decision log (JSONL, CSV, Parquet or SQLite; read in chunks, so it may be large).
LOG = InputCap("decision log", 1 << 40, "CTD_MAX_LOG_BYTES")
#: A JSON sidecar or metadata file.
SIDECAR = InputCap("metadata file", 16 * _MIB, "CTD_MAX_METADATA_BYTES")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", _MIB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def _open_checked(path: Path, cap: InputCap) -> tuple[int, int]:
    """An open read-only descriptor of ``path`` and its size, after the checks (see the module)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise CTDInputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise CTDInputError(f"{path}: is a directory, expected a {cap.what} file") from None
    except OSError as exc:
        raise CTDInputError(f"{path}: cannot read the {cap.what} ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            what = _kind(st.st_mode)
            raise CTDInputError(
                f"{path}: is {what}, expected a {cap.what} file (ctd reads inputs only from regular "
                "files)"
            )
        limit = cap.max_bytes
        if st.st_size > limit:
            raise CTDInputError(
                f"{path}: file too large for a {cap.what}: {_human(st.st_size)} ({st.st_size} bytes), "
                f"over the limit of {_human(limit)} ({limit} bytes); raise it with {cap.env}=BYTES"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd, int(st.st_size)


def check_regular_file(path: str | os.PathLike[str], cap: InputCap) -> int:
    """Refuse ``path`` unless it is a regular file of at most ``cap.max_bytes``; return its size.

    Raises
    ------
    CTDInputError
        Missing, a directory, FIFO, device or socket, unreadable, or larger than the cap; the
        message names the file (and the cap and its environment variable when too large).
    """
    fd, size = _open_checked(Path(path), cap)
    os.close(fd)
    return size


def read_capped_bytes(path: str | os.PathLike[str], cap: InputCap) -> bytes:
    """The bytes of a regular file of at most ``cap.max_bytes`` (see :func:`check_regular_file`).

    Reads at most one byte more than the cap, so a file that grows while it is read is refused too.
    """
    p = Path(path)
    fd, _ = _open_checked(p, cap)
    limit = cap.max_bytes
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise CTDInputError(
                f"{p}: cannot read the {cap.what} ({exc.strerror or exc})"
            ) from None
    if len(data) > limit:
        raise CTDInputError(
            f"{p}: file too large for a {cap.what}: over the limit of {_human(limit)} ({limit} "
            f"bytes); raise it with {cap.env}=BYTES"
        )
    return data
