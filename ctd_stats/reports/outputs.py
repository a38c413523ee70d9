"""A command's outputs: only its own files, each atomic, recorded in ``manifest.json``.

Contract (every command that writes a folder uses :func:`output_set`):

* **Only its own files.** A command writes the files it names and nothing else: it never copies,
  moves or deletes a file it did not write, never replaces a file by a folder, and follows no
  symlink out of the folder (an existing symlink at one of its file names is an error).
* **Atomic per file, committed together.** Every file is first written to a hidden temporary file in
  the target folder; only when the whole command has succeeded are they renamed into place (each
  rename is atomic), then ``manifest.json`` is written last. On error or Ctrl-C the temporaries are
  removed and the folder is as it was.
* **One run per folder.** ``manifest.json`` records the command, the spec's sha256, the time, a run
  id, and every file with its sha256. A folder that holds another run's outputs (another command or
  spec), or files at our names that no ctd run wrote, is refused unless ``force=True`` (``--force``).
  Files of the previous run of the *same* command that this run does not write again, and that are
  unchanged since (same sha256), are removed so that no stale file survives beside new ones; only
  when the previous manifest's ``seal`` verifies (so a hand-edited manifest removes nothing) and only
  files whose name is one the command itself can write (``may_write``), so no manifest, however
  edited, can make a run delete a file of the user's.
* **The manifest is sealed.** ``seal`` is an HMAC-SHA256 over the manifest's canonical JSON keyed by
  the certificate's digest (``certificate_sha256``, the run's ``certificate.json``; the sha256 of
  the file list for commands without a certificate), or by ``CTD_CERTIFICATE_KEY`` when one is set.
  It detects edits of the manifest; without a secret key it does not stop an editor who recomputes it,
  which is why removal is also restricted to the command's own file names.
* **No temporaries left behind.** A folder is locked (``flock``) while a run writes into it, so a
  second concurrent run is refused; under the lock, hidden temporaries that an earlier run killed by
  ``SIGKILL`` left behind (``.NAME.*.tmp`` for the names this run writes and ``manifest.json``) are
  removed first. ``SIGTERM``/``SIGINT`` during the run unwind through the cleanup (the command line
  turns ``SIGTERM`` into an exception), and both are held back during the final renames so that the
  files and the manifest are committed together.
* :func:`check_manifest` lets a reader (``ctd audit``) verify that the files it reads belong to one
  run and are unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ctd_stats._version import __version__
from ctd_stats.errors import CTDInputError
from ctd_stats.io import write_error

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "ctd.manifest/1"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none (or an unreadable one)."""
    path = directory / MANIFEST
    if not path.is_file() or path.is_symlink():
        return None
    from ctd_stats.input_files import SIDECAR, read_capped_bytes

    try:
        data = json.loads(read_capped_bytes(path, SIDECAR).decode("utf-8"))
    except (CTDInputError, ValueError, RecursionError):  # unreadable, too large, not JSON, too deep
        return None
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        return None
    return data


@dataclass
class OutputSet:
    """Files staged by one command run (see the module docstring); build it with :func:`output_set`."""

    directory: Path
    command: str
    spec_sha256: str | None = None
    force: bool = False
    may_write: frozenset[str] = frozenset()
    _staged: dict[str, tuple[Path, str]] = field(default_factory=dict)

    def _check_name(self, name: str) -> Path:
        if "/" in name or "\\" in name or name in ("", ".", "..", MANIFEST) or name.startswith("."):
            raise ValueError(f"invalid output file name {name!r}")
        if name in self._staged:
            raise ValueError(f"output file {name!r} written twice in one run")
        target = self.directory / name
        if target.is_symlink():
            raise CTDInputError(f"{target}: is a symlink; ctd writes only regular files it owns")
        if target.exists() and not target.is_file():
            raise CTDInputError(f"{target}: exists and is not a file; ctd never replaces it")
        return target

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Stage ``data`` as ``name`` (renamed into place when the run commits)."""
        target = self._check_name(name)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(exc, OSError) and not isinstance(exc, PermissionError):
                raise CTDInputError(write_error(target, exc)) from None
            raise
        self._staged[name] = (Path(tmp), sha256_bytes(data))
        return target

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode("utf-8"))

    def write_json(self, name: str, obj: Any) -> Path:
        """Strict JSON (no NaN/Infinity literals), indented."""
        return self.write_text(name, json.dumps(obj, indent=2, allow_nan=False) + "\n")

    @property
    def files(self) -> list[Path]:
        """The files of this run, in the order they were written."""
        return [self.directory / n for n in self._staged]

    def _discard(self) -> None:
        for tmp, _ in self._staged.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._staged.clear()

    def _commit(self, previous: dict[str, Any] | None) -> None:
        with _signals_held():
            for name, (tmp, _) in self._staged.items():
                os.replace(tmp, self.directory / name)
            for stale in self._stale_files(previous):
                stale.unlink()
            manifest: dict[str, Any] = {
                "schema": MANIFEST_SCHEMA,
                "run_id": secrets.token_hex(8),
                "command": self.command,
                "spec_sha256": self.spec_sha256,
                "package_version": __version__,
                "created_at": datetime.now(UTC)
                .replace(microsecond=0)
                .isoformat()
                .replace("+00:00", "Z"),
                "files": {name: digest for name, (_, digest) in self._staged.items()},
            }
            cert = manifest["files"].get(CERTIFICATE)
            if cert is not None:
                manifest["certificate_sha256"] = cert
            manifest["seal"] = manifest_seal(manifest)
            from ctd_stats.io import atomic_write_json

            atomic_write_json(self.directory / MANIFEST, manifest)

    def _stale_files(self, previous: dict[str, Any] | None) -> list[Path]:
        """Files of the previous run of this command that this run replaces by nothing.

        Only from a manifest whose seal verifies, only names this command can write, only regular
        files still byte-identical to what that run recorded.
        """
        if previous is None or previous.get("command") != self.command or not verify_seal(previous):
            return []
        out = []
        for name, digest in (previous.get("files") or {}).items():
            name = str(name)
            stale = self.directory / name
            if name in self._staged or name not in self.may_write or "/" in name or "\\" in name:
                continue
            if stale.is_symlink() or not stale.is_file():
                continue
            if file_sha256(stale) == digest:  # ours and untouched: it would be stale
                out.append(stale)
        return out


#: The file whose digest keys the manifest's seal.
CERTIFICATE = "certificate.json"


def _canonical(manifest: dict[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "seal"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _seal_key(manifest: dict[str, Any]) -> bytes:
    from ctd_stats.certificate.seal import deployment_key

    secret = deployment_key()
    if secret is not None:
        return secret
    anchor = manifest.get("certificate_sha256")
    if not isinstance(anchor, str):
        anchor = sha256_bytes(json.dumps(manifest.get("files"), sort_keys=True).encode("utf-8"))
    return anchor.encode("ascii", "replace")


def manifest_seal(manifest: dict[str, Any]) -> str:
    """``hmac-sha256:<hex>`` over the manifest's canonical JSON (see the module docstring)."""
    return (
        "hmac-sha256:" + hmac.new(_seal_key(manifest), _canonical(manifest), "sha256").hexdigest()
    )


def verify_seal(manifest: dict[str, Any]) -> bool:
    """Whether the manifest's ``seal`` matches its content (False when absent or on a wrong key)."""
    seal = manifest.get("seal")
    if not isinstance(seal, str):
        return False
    try:
        expected = manifest_seal(manifest)
    except CTDInputError:  # an unreadable key file: nothing verifies
        return False
    return hmac.compare_digest(seal, expected)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back (delivered on exit) so that a commit is not cut in half."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not on POSIX
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _temp_pattern(names: Iterable[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in sorted({*names, MANIFEST}))
    return re.compile(rf"^\.(?:{alternatives})\.[A-Za-z0-9_]+\.tmp$")


def remove_stale_temporaries(directory: Path, names: Iterable[str]) -> list[Path]:
    """Remove the hidden temporaries (``.NAME.XXXXXXXX.tmp``) a killed run left for ``names``.

    Call only while holding the folder's lock (:func:`_folder_lock`): then no other run is writing.
    Only regular files whose name has exactly the temporary-file pattern for one of ``names`` (or
    ``manifest.json``) are removed; returns them.
    """
    pattern = _temp_pattern(names)
    removed = []
    with os.scandir(directory) as it:
        for entry in it:
            if pattern.match(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def _folder_lock(directory: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the folder for the run (refused at once if another run holds it)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX: no lock
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CTDInputError(
                f"{directory}: another ctd run is writing into this folder; wait for it or choose another"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _prepare(directory: Path) -> None:
    if directory.is_symlink() and not directory.exists():
        raise CTDInputError(f"{directory}: is a dangling symlink; choose an output folder")
    if directory.exists() and not directory.is_dir():
        what = "a file" if directory.is_file() else "not a folder (a device, FIFO or socket)"
        raise CTDInputError(
            f"{directory}: exists and is {what}; give a folder for the outputs (ctd never replaces a "
            "file by a folder)"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CTDInputError(
            f"{directory}: cannot create the output folder ({exc.strerror or exc}); choose another "
            "with --output/-o or outputs.directory"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CTDInputError(f"{directory}: the output folder is not writable; choose another")


def _refuse_foreign(
    directory: Path, names: set[str], out: OutputSet, previous: dict[str, Any] | None
) -> None:
    """Refuse to overwrite another run's outputs or files that no ctd run wrote (unless forced)."""
    if out.force:
        return
    if previous is not None:
        other = previous.get("command") != out.command or (
            out.spec_sha256 is not None
            and previous.get("spec_sha256") not in (None, out.spec_sha256)
        )
        if other:
            raise CTDInputError(
                f"{directory}: holds the outputs of another run ({previous.get('command')!r}, spec "
                f"sha256 {str(previous.get('spec_sha256'))[:12]}…); choose another folder or pass "
                "--force to write beside them"
            )
    known = set((previous or {}).get("files") or {})
    clash = sorted(n for n in names if (directory / n).exists() and n not in known)
    if clash:
        raise CTDInputError(
            f"{directory}: would overwrite {', '.join(clash)}, which no ctd run recorded there; "
            "choose another folder or pass --force"
        )


@contextlib.contextmanager
def output_set(
    directory: str | os.PathLike[str],
    command: str,
    *,
    spec_sha256: str | None = None,
    force: bool = False,
    names: Iterator[str] | list[str] | tuple[str, ...] = (),
    may_write: Iterable[str] = (),
) -> Iterator[OutputSet]:
    """Stage a run's files in ``directory`` and commit them together when the block succeeds.

    Parameters
    ----------
    directory
        The output folder (created if missing; an existing file there is an error).
    command
        The command writing (``"calibrate"``, ``"run"``, ``"simulate"``, ``"audit"``...).
    spec_sha256
        Hash of the spec the run used (runs of different specs do not share a folder).
    force
        Write even beside another run's outputs or over files that no ctd run recorded.
    names
        The file names the run will write, checked up front so that a refusal comes before the work.
    may_write
        Every file name this command can write (for any options): the only names a previous run's
        file may have to be removed as stale.

    Raises
    ------
    CTDInputError
        The folder is a file, cannot be created or written, or holds another run's outputs.
    """
    target = Path(directory)
    _prepare(target)
    wanted = list(names)
    out = OutputSet(target, command, spec_sha256, force, frozenset(may_write) | frozenset(wanted))
    with _folder_lock(target):
        remove_stale_temporaries(target, out.may_write)
        previous = read_manifest(target)
        _refuse_foreign(target, set(wanted), out, previous)
        try:
            yield out
            _refuse_foreign(target, set(out._staged), out, previous)
            out._commit(previous)
        except BaseException:
            out._discard()
            raise


def check_manifest(path: str | os.PathLike[str]) -> str | None:
    """Check that ``path`` is the file its folder's manifest recorded; a warning line, or None if so.

    Returns None when the folder has no manifest (nothing to check) or the file matches it.
    """
    p = Path(path)
    manifest = read_manifest(p.parent)
    if manifest is None:
        return None
    digest = (manifest.get("files") or {}).get(p.name)
    if digest is None:
        return f"{p}: not among the files of the run recorded in {p.parent / MANIFEST}"
    if file_sha256(p) != digest:
        return (
            f"{p}: changed since the run that wrote it (sha256 differs from {p.parent / MANIFEST}); "
            "it may be from another run"
        )
    return None
