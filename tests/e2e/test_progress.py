"""Progress when piped: long stages print throttled lines with counts and ETA; short ones stay silent."""

from __future__ import annotations

from ctd_stats.cli import progress as _progress
from ctd_stats.cli.progress import LineProgress, progress


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_long_stage_prints_throttled_lines_with_eta(capsys, monkeypatch):
    monkeypatch.setattr(_progress, "progress_enabled", lambda: False)
    clock = FakeClock()
    p = LineProgress("study [strong]", 200, clock=clock)
    for _ in range(200):
        clock.t += 0.5  # 100 s in all
        p.update()
    p.close()
    lines = capsys.readouterr().err.splitlines()
    # first line once QUIET_FOR (5 s) has passed, then one per EVERY (15 s), then the closing line
    assert lines[0] == "ctd: study [strong]: 10/200 (5%), 5 s elapsed, ETA 95 s"
    assert lines[-1] == "ctd: study [strong]: done, 200 in 100 s"
    assert 6 <= len(lines) <= 8


def test_short_stage_is_silent(capsys, monkeypatch):
    monkeypatch.setattr(_progress, "progress_enabled", lambda: False)
    assert list(progress(range(50), desc="calibrating")) == list(range(50))
    assert capsys.readouterr().err == ""
