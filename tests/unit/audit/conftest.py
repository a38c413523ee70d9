"""Fixtures for the audit tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from audit_fixtures import make_certificate


@pytest.fixture
def write_cert(tmp_path: Path):
    def _write(**kw: Any) -> Path:
        p = tmp_path / "certificate.json"
        p.write_text(json.dumps(make_certificate(**kw)))
        return p

    return _write
