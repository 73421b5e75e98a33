"""The progress helper: a bar redrawn on a terminal, a line per ~10% elsewhere."""

from __future__ import annotations

import io

import pytest

from synergy.progress import Progress, format_duration
from synergy.terminal import CLEAR_LINE


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(tty: bool, items: int = 20, seconds_each: float = 2.0) -> str:
    out, clock = io.StringIO(), Clock()
    with Progress("bench", stream=out, tty=tty, clock=clock) as bar:
        for k in range(items):
            bar.update(k, items, f"w{k + 1}")
            clock.now += seconds_each
    return out.getvalue()


def test_off_a_terminal_one_line_per_tenth() -> None:
    lines = run(tty=False).splitlines()
    # The first update, then every 2 of 20 items (a tenth each), then the end.
    assert len(lines) == 1 + 9 + 1
    assert lines[0] == "bench [1/20] w1  (0% done)"
    assert lines[1] == "bench [3/20] w3  (10% done, 2s each, ETA 36s)"
    assert lines[-2] == "bench [19/20] w19  (90% done, 2s each, ETA 4s)"
    assert lines[-1] == "bench [20/20] done in 40s"
    assert CLEAR_LINE not in "".join(lines)


def test_off_a_terminal_few_items_print_a_line_each() -> None:
    lines = run(tty=False, items=3, seconds_each=30).splitlines()
    assert lines == [
        "bench [1/3] w1  (0% done)",
        "bench [2/3] w2  (33% done, 30s each, ETA 1m00s)",
        "bench [3/3] w3  (67% done, 30s each, ETA 30s)",
        "bench [3/3] done in 1m30s",
    ]


def test_on_a_terminal_the_bar_is_redrawn_on_one_line() -> None:
    text = run(tty=True, items=4, seconds_each=0.5)
    frames = text.split(CLEAR_LINE)[1:]
    assert len(frames) == 4 + 1  # every update, then the finished bar
    assert frames[0] == "bench [1/4] |--------------------|   0%  w1"
    assert frames[2] == "bench [3/4] |##########----------|  50% 2.0/s, ETA 1s  w3"
    assert frames[-1] == "bench [4/4] |####################| 100% done in 2s\n"
    assert text.count("\n") == 1  # only the end leaves the bar's line


def test_on_a_terminal_the_bar_fits_the_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "30")  # a stand-in stream has no terminal: COLUMNS says how wide
    out = io.StringIO()
    with Progress("fidelity", stream=out, tty=True) as bar:
        bar.update(1, 3, "three-apps-spread: starting 4 devices")
    for frame in out.getvalue().split(CLEAR_LINE)[1:]:
        assert len(frame.rstrip("\n")) <= 29  # one column spare
        assert frame.rstrip("\n").endswith("…")


def test_messages_print_above_the_bar() -> None:
    out = io.StringIO()
    with Progress("bench", stream=out, tty=True) as bar:
        bar.update(0, 2, "a")
        bar.message("wrote bench.csv")
    text = out.getvalue()
    # The bar's line is cleared, the message printed on it, the bar drawn again below.
    assert f"{CLEAR_LINE}wrote bench.csv\n{CLEAR_LINE}bench [1/2]" in text


def test_report_reads_the_projects_progress_lines() -> None:
    out = io.StringIO()
    with Progress("bench", stream=out, tty=False) as bar:
        bar.report("[3/8] w03-3dev-ble24: 3 devices, 2 apps")
        assert (bar.done, bar.total, bar.what) == (2, 8, "w03-3dev-ble24: 3 devices, 2 apps")
        bar.report("wrote bench-out/bench.csv")  # not counted: a message
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("bench [3/8] w03-3dev-ble24: 3 devices, 2 apps  (25% done")
    assert lines[1] == "wrote bench-out/bench.csv"
    assert lines[2].startswith("bench [8/8] done in ")


@pytest.mark.parametrize("tty", [True, False])
def test_an_error_leaves_the_bar_where_it_was(tty: bool) -> None:
    out = io.StringIO()
    with pytest.raises(RuntimeError), Progress("bench", stream=out, tty=tty) as bar:
        bar.update(1, 4, "b")
        raise RuntimeError("boom")
    assert "done in" not in out.getvalue()
    assert out.getvalue().endswith("\n")  # what follows (the traceback) starts on a line of its own


@pytest.mark.parametrize("tty", [True, False])
def test_nothing_counted_prints_nothing(tty: bool) -> None:
    out = io.StringIO()
    with Progress("bench", stream=out, tty=tty):
        pass
    assert out.getvalue() == ""


def test_the_terminal_is_detected_from_the_stream() -> None:
    assert not Progress("x", stream=io.StringIO()).tty


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0s"), (42, "42s"), (185, "3m05s"), (3720, "1h02m")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
