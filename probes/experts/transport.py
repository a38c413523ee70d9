"""Transport of the HTTP expert: POST a JSON body with a timeout and bounded retries.

Standard library only (``urllib``). Connection errors, timeouts and HTTP 408/425/429/5xx are retried
with exponential backoff ``min(backoff_s * 2**attempt, max_backoff_s)`` (a numeric ``Retry-After``
is honoured up to ``max_backoff_s``); other HTTP errors, oversized or invalid JSON responses fail at
once. Every failure raises :class:`~probes.experts.base.ExpertError`. Proxies from the environment
are used except for loopback hosts.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from probes.experts.base import ExpertError, snippet

__all__ = ["RETRYABLE_STATUS", "build_opener", "is_loopback", "post_json"]

#: HTTP statuses that are retried.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost`` or a loopback address)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_opener(host: str) -> urllib.request.OpenerDirector:
    """A ``urllib`` opener for ``host``: environment proxies, bypassed for loopback hosts."""
    handlers: list[urllib.request.BaseHandler] = []
    if is_loopback(host):
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    """The numeric ``Retry-After`` header of a response, if any."""
    ra = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return float(ra) if ra is not None else None
    except ValueError:
        return None


def _decode(raw: bytes, where: str, max_response_bytes: int) -> dict[str, Any]:
    """The JSON object of a response body (ExpertError if too large, not JSON or not an object)."""
    if len(raw) > max_response_bytes:
        raise ExpertError(f"{where}: response larger than {max_response_bytes} bytes")
    try:
        decoded = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExpertError(
            f"{where}: response is not valid JSON: {snippet(raw.decode('utf-8', 'replace'))!r}"
        ) from exc
    if not isinstance(decoded, dict):
        raise ExpertError(f"{where}: expected a JSON object, got {snippet(decoded)}")
    return decoded


def post_json(
    opener: urllib.request.OpenerDirector,
    url: str,
    body: Mapping[str, Any],
    *,
    api_key: str | None,
    timeout_s: float,
    max_retries: int,
    backoff_s: float,
    max_backoff_s: float,
    max_response_bytes: int,
) -> dict[str, Any]:
    """POST ``body`` as JSON to ``url`` with retries; return the decoded JSON object.

    Raises
    ------
    ExpertError
        On a non-retryable HTTP error or an unusable response at once, else after
        ``max_retries + 1`` failed attempts (the message gives the last reason).
    """
    data = json.dumps(body).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": "ctd-probes",
    }
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    where = url
    attempts = max_retries + 1
    reason = "no attempt made"
    last_exc: BaseException | None = None
    for attempt in range(attempts):
        retry_after: float | None = None
        try:
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            with opener.open(req, timeout=timeout_s) as resp:
                raw = resp.read(max_response_bytes + 1)
        except urllib.error.HTTPError as exc:
            try:
                text = exc.read(300).decode("utf-8", "replace")
            except Exception:
                text = ""
            reason = f"HTTP {exc.code}: {snippet(text)}"
            if exc.code not in RETRYABLE_STATUS:
                raise ExpertError(f"{where}: {reason}") from exc
            retry_after = _retry_after(exc)
            last_exc = exc
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            inner = getattr(exc, "reason", exc)
            if isinstance(inner, TimeoutError) or isinstance(exc, TimeoutError):
                reason = f"timed out after {timeout_s:g} s"
            else:
                reason = f"{type(exc).__name__}: {snippet(str(inner))}"
            last_exc = exc
        else:
            return _decode(raw, where, max_response_bytes)
        if attempt + 1 < attempts:
            delay = min(backoff_s * (2**attempt), max_backoff_s)
            if retry_after is not None and retry_after > delay:
                delay = min(retry_after, max_backoff_s)
            time.sleep(delay)
    raise ExpertError(f"{where}: {reason} (after {attempts} attempt(s))") from last_exc
