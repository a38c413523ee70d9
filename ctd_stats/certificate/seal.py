"""Tamper evidence for certificates: a content digest, or an HMAC signature with a deployment key.

A certificate's ``integrity`` block is computed over its canonical JSON (every other field, keys
sorted, no whitespace, floats as Python writes them, infinities as ``"inf"``), so it does not depend
on how the file was indented or in which order its keys were written. The loader checks it over the
file's parsed content, not over a re-serialised model, so a field added to the format later with a
default does not invalidate certificates written before it.

Two modes, and what each protects against:

``sha256`` (default)
    A plain digest. Catches accidental corruption and hand edits (a budget changed from 0.3 to 0.9
    in an editor). It does **not** stop someone who edits the file on purpose and recomputes the
    digest; the consistency check (:mod:`ctd_stats.certificate.checks`) then still catches edits that
    make τ disagree with the recorded counts, p-values and budget.
``hmac-sha256``
    Used when the environment variable ``CTD_CERTIFICATE_KEY`` (the key itself) or
    ``CTD_CERTIFICATE_KEY_FILE`` (a file holding it) is set while the certificate is written. Only a
    holder of the key can produce a valid signature. When a key is set at load time, unsigned
    certificates are refused too (otherwise stripping the signature would defeat it). The key is
    never written anywhere; the certificate records only a key id (the first 16 hex digits of the
    key's sha256) so that a verifier with the wrong key gets a precise message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from ctd_stats.errors import CTDInputError

#: Environment variable holding the signing/verification key (text, used as UTF-8 bytes).
KEY_ENV: Final = "CTD_CERTIFICATE_KEY"
#: Environment variable naming a file that holds the key (trailing newline ignored).
KEY_FILE_ENV: Final = "CTD_CERTIFICATE_KEY_FILE"


class Integrity(BaseModel):
    """The ``integrity`` block of a certificate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    algorithm: Literal["sha256", "hmac-sha256"]
    digest: str = Field(description="Hex digest of the canonical JSON of every other field.")
    key_id: str | None = Field(
        default=None, description="For hmac-sha256: first 16 hex of sha256(key)."
    )


def canonical_bytes(content: dict[str, Any]) -> bytes:
    """The canonical JSON encoding that the digest covers (``integrity`` itself excluded)."""
    body = {k: v for k, v in content.items() if k != "integrity"}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def deployment_key() -> bytes | None:
    """The key from ``CTD_CERTIFICATE_KEY`` or ``CTD_CERTIFICATE_KEY_FILE``, or None if neither is set.

    Raises
    ------
    CTDInputError
        Both are set, the key file cannot be read, or the key is empty.
    """
    text, path = os.environ.get(KEY_ENV), os.environ.get(KEY_FILE_ENV)
    if text is not None and path is not None:
        raise CTDInputError(f"set only one of {KEY_ENV} and {KEY_FILE_ENV}, not both")
    if path is not None:
        from ctd_stats.input_files import SIDECAR, read_capped_bytes

        try:
            text = read_capped_bytes(path, SIDECAR).decode("utf-8").rstrip("\r\n")
        except CTDInputError as exc:
            raise CTDInputError(
                f"{KEY_FILE_ENV}={path}: cannot read the key file ({exc})"
            ) from None
        except UnicodeDecodeError as exc:
            raise CTDInputError(
                f"{KEY_FILE_ENV}={path}: cannot read the key file ({exc})"
            ) from None
    if text is None:
        return None
    if not text:
        raise CTDInputError(f"{KEY_FILE_ENV if path else KEY_ENV} is set but the key is empty")
    return text.encode("utf-8")


def key_id(key: bytes) -> str:
    """A public identifier of ``key`` (first 16 hex digits of its sha256)."""
    return hashlib.sha256(key).hexdigest()[:16]


def seal(content: dict[str, Any], key: bytes | None = None) -> Integrity:
    """The integrity block for ``content``: HMAC-SHA256 with ``key``, else a plain sha256."""
    data = canonical_bytes(content)
    if key is None:
        return Integrity(algorithm="sha256", digest=hashlib.sha256(data).hexdigest())
    mac = hmac.new(key, data, hashlib.sha256).hexdigest()
    return Integrity(algorithm="hmac-sha256", digest=mac, key_id=key_id(key))


def verify(
    content: dict[str, Any], integrity: Integrity | None, key: bytes | None, where: str
) -> None:
    """Check ``content`` against its integrity block; raise :class:`CTDInputError` naming ``where``.

    With a ``key`` (a deployment that signs), only a valid HMAC made with that key passes. Without
    one, a plain digest must match, and an HMAC-signed certificate cannot be checked (refused, with
    the variable to set).
    """
    if integrity is None:
        raise CTDInputError(
            f"{where}: the certificate has no integrity digest, so edits cannot be detected "
            "(written by an older ctd?); recalibrate to get a sealed certificate"
        )
    data = canonical_bytes(content)
    if integrity.algorithm == "sha256":
        if key is not None:
            raise CTDInputError(
                f"{where}: the certificate is not signed, but {KEY_ENV}/{KEY_FILE_ENV} is set, so "
                "signatures are required; recalibrate with the key set"
            )
        expected = hashlib.sha256(data).hexdigest()
    else:
        if key is None:
            raise CTDInputError(
                f"{where}: the certificate is signed (hmac-sha256, key id {integrity.key_id}); set "
                f"{KEY_ENV} or {KEY_FILE_ENV} to the signing key to verify it"
            )
        if integrity.key_id != key_id(key):
            raise CTDInputError(
                f"{where}: the certificate was signed with key id {integrity.key_id}, but the key "
                f"set here has id {key_id(key)} (wrong key)"
            )
        expected = hmac.new(key, data, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, integrity.digest):
        what = "signature" if integrity.algorithm == "hmac-sha256" else "digest"
        raise CTDInputError(
            f"{where}: the certificate's content does not match its {what}: it was edited or "
            "corrupted after calibration; refusing to use it (recalibrate)"
        )
