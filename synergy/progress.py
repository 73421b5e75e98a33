"""Progress of long work on stderr: a bar redrawn in place on a terminal, a line per ~10% elsewhere.

    with Progress("bench") as bar:
        for k, workload in enumerate(workloads):
            bar.update(k, len(workloads), workload.name)   # k done, working on item k + 1
            ...

On a terminal one line is redrawn, ``bench [3/21] |##------------------|  10% 1.2/s, ETA 16s  w03``
(item under way, bar, share done, rate, time left, what), cut to the terminal's width. Anywhere else (CI logs, pipes, a
test's captured stderr) a line is printed at the first update, whenever another tenth of the
work is done, and at the end, so logs stay short and still show the pace. Messages
(:meth:`Progress.message`) print above the bar.

Code that reports progress as text follows one convention across the project (the bench, the
fidelity runs, ``deploy/images/build.sh``): ``[k/N] what`` means "working on item k of N".
:meth:`Progress.report` takes such lines (others become messages), so it is the callback a
long job is handed (``run_bench(progress=...)``, ``run_fidelity(options, bar.report)``). No
dependency (no tqdm): this is the whole of what the commands need.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from synergy.terminal import CLEAR_LINE, is_terminal, terminal_size, truncate

__all__ = ["Progress", "format_duration"]

#: ``[k/N] what``: working on item k of N.
_COUNTED = re.compile(r"^\[(\d+)/(\d+)\]\s*(.*)$", re.DOTALL)
BAR_WIDTH = 20
#: Lines printed off a terminal: one per this share of the work.
LOG_STEP = 0.1


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Counted progress of one piece of work (see the module doc); a context manager."""

    def __init__(
        self,
        label: str,
        total: int = 0,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.what = ""
        self.stream = stream if stream is not None else sys.stderr
        self.tty = is_terminal(self.stream) if tty is None else tty
        self._clock = clock
        self._started = clock()
        #: Something was counted, so the exit has a bar or a line to finish.
        self._drawn = False
        #: Tenths of the work done when a line was last printed off a terminal (-1: none yet).
        self._logged = -1
        #: The bar is on screen, the cursor at its end.
        self._shown = False

    def __enter__(self) -> Progress:
        self._started = self._clock()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._drawn:  # nothing was counted (e.g. a branch that reports no progress)
            return
        if exc_type is None:
            if self.total:
                self.done = self.total
            self.what = ""
            self._draw(final=True)
        if self._shown:  # the cursor is still on the bar's line: what follows goes below it
            self._write("\n")
            self._shown = False

    # -- input ----------------------------------------------------------------------------

    def update(self, done: int, total: int | None = None, what: str = "") -> None:
        """``done`` items of ``total`` (default: as before) are finished; ``what`` is under way."""
        if total is not None:
            self.total = total
        self.done = max(0, min(done, self.total)) if self.total else max(0, done)
        self.what = what
        self._draw(final=False)

    def report(self, text: str) -> None:
        """A progress callback: ``[k/N] what`` updates the bar (k - 1 done), other text is a message."""
        counted = _COUNTED.match(text.strip())
        if counted is None:
            self.message(text)
            return
        k, n, what = int(counted[1]), int(counted[2]), counted[3]
        self.update(k - 1, n, what)

    def message(self, text: str) -> None:
        """A line for people, printed above the bar."""
        if self._shown:
            self._write(CLEAR_LINE)
            self._shown = False
        self._write(text.rstrip("\n") + "\n")
        if self.tty and self._drawn:
            self._draw(final=False)

    # -- output -----------------------------------------------------------------------------

    def _draw(self, *, final: bool) -> None:
        self._drawn = True
        elapsed = max(0.0, self._clock() - self._started)
        share = self.done / self.total if self.total else 0.0
        if self.tty:
            width = terminal_size(self.stream)[0]
            # One column spare: a line filling the last column leaves some terminals wrapping.
            self._write(CLEAR_LINE + truncate(self._bar_line(share, elapsed, final), width - 1))
            self._shown = True
            return
        tenth = int(share / LOG_STEP + 1e-9)
        if final or tenth > self._logged:
            self._write(self._log_line(share, elapsed, final) + "\n")
            self._logged = tenth

    def _pace(self, elapsed: float) -> str:
        """Rate and time left, from the items done so far ("" before the first is done)."""
        if self.done <= 0 or elapsed <= 0:
            return ""
        rate = self.done / elapsed
        speed = f"{rate:.1f}/s" if rate >= 1 else f"{format_duration(1 / rate)} each"
        if not self.total or self.done >= self.total:
            return speed
        return f"{speed}, ETA {format_duration((self.total - self.done) / rate)}"

    def _counter(self) -> str:
        """``[k/N]``: the item under way (the last one once all are done)."""
        if not self.total:
            return f"[{self.done}]"
        return f"[{min(self.done + 1, self.total)}/{self.total}]"

    def _bar_line(self, share: float, elapsed: float, final: bool) -> str:
        filled = round(BAR_WIDTH * share)
        parts = [self.label, self._counter(), "|" + "#" * filled + "-" * (BAR_WIDTH - filled) + "|", f"{share:4.0%}"]
        if final:
            parts.append(f"done in {format_duration(elapsed)}")
        elif pace := self._pace(elapsed):
            parts.append(pace)
        line = " ".join(parts)
        return f"{line}  {self.what}" if self.what else line

    def _log_line(self, share: float, elapsed: float, final: bool) -> str:
        head = f"{self.label} {self._counter()}"
        if final:
            return f"{head} done in {format_duration(elapsed)}"
        pace = self._pace(elapsed)
        figures = f"{share:.0%} done" + (f", {pace}" if pace else "")
        return f"{head} {self.what}  ({figures})" if self.what else f"{head} ({figures})"

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
