"""Terminal output without curses: whole frames redrawn in place, sizes, lines cut to fit.

A :class:`Screen` draws frames (lists of lines): on a terminal each frame replaces the last
(cursor home, clear to the end of the screen; optionally on the alternate screen, as ``top``
does, so the shell's screen comes back untouched); anywhere else (a pipe, a CI log) each frame
is printed in full, frames separated by a blank line, so a log keeps every snapshot.

Used by ``synergy status`` / ``synergy top``, ``synergy demo``'s live view and the progress
bars of :mod:`synergy.progress`. Only ANSI sequences every terminal emulator in use knows are
written, so no curses (and no terminfo database) is needed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import TracebackType
from typing import TextIO

from synergy.tables import ellipsize

__all__ = [
    "ALTERNATE_OFF",
    "ALTERNATE_ON",
    "CLEAR_LINE",
    "HIDE_CURSOR",
    "HOME_CLEAR",
    "LOG_WIDTH",
    "SHOW_CURSOR",
    "Screen",
    "fit",
    "is_terminal",
    "terminal_size",
    "truncate",
]

#: Cursor to the top left, then clear from there to the end of the screen.
HOME_CLEAR = "\x1b[H\x1b[J"
#: Back to the start of the line, then clear to its end (a bar redrawn on its own line).
CLEAR_LINE = "\r\x1b[K"
ALTERNATE_ON = "\x1b[?1049h"
ALTERNATE_OFF = "\x1b[?1049l"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"
#: Width of lines where no terminal says how wide it is (logs, pipes) and COLUMNS is unset:
#: wide enough for every column of the status tables, narrow enough to keep a log readable.
LOG_WIDTH = 200


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed stream, or a stand-in without isatty
        return False


def terminal_size(stream: TextIO) -> tuple[int, int | None]:
    """(columns, rows) of the terminal behind ``stream``; elsewhere (COLUMNS or :data:`LOG_WIDTH`, None)."""
    if is_terminal(stream):
        try:
            size = os.get_terminal_size(stream.fileno())
        except (OSError, ValueError):
            pass
        else:
            if size.columns > 0 and size.lines > 0:  # 0 x 0: a pseudo-terminal nobody sized
                return size.columns, size.lines
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    return (columns if columns > 0 else LOG_WIDTH), None


def truncate(line: str, width: int) -> str:
    """``line`` cut to ``width`` characters, the last an ellipsis when cut (as table cells are)."""
    return ellipsize(line, width) if width > 0 else ""


def fit(lines: Sequence[str], width: int, height: int | None = None) -> list[str]:
    """Every line cut to ``width``; beyond ``height`` lines, the last one says how many are hidden."""
    out = [truncate(line, width) for line in lines]
    if height is None or len(out) <= height:
        return out
    if height < 1:
        return []
    keep = height - 1
    return [*out[:keep], truncate(f"... {len(out) - keep} more lines (a taller terminal shows them)", width)]


class Screen:
    """Draws whole frames on ``stream``: in place on a terminal, as separate snapshots elsewhere.

    ``alternate`` puts the frames on the terminal's alternate screen (left on exit, restoring
    what was there), for views that leave nothing behind; without it the last frame stays.
    ``tty`` overrides the detection (tests).
    """

    def __init__(self, stream: TextIO, *, alternate: bool = False, tty: bool | None = None) -> None:
        self.stream = stream
        self.alternate = alternate
        self.tty = is_terminal(stream) if tty is None else tty
        self.frames = 0

    def __enter__(self) -> Screen:
        if self.tty:
            self._write((ALTERNATE_ON if self.alternate else "") + HIDE_CURSOR)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.tty:
            return
        # A frame ends without a newline (see draw): what follows the last one starts below it.
        end = "" if self.alternate or not self.frames else "\n"
        self._write(end + SHOW_CURSOR + (ALTERNATE_OFF if self.alternate else ""))

    def size(self) -> tuple[int, int | None]:
        """(columns, rows) a frame may use; rows is None where frames do not replace each other."""
        columns, rows = terminal_size(self.stream)
        return columns, rows if self.tty else None

    def draw(self, lines: Sequence[str]) -> None:
        """One frame (already fitted to :meth:`size`, e.g. by :func:`fit`)."""
        if self.tty:
            # No newline after the last line: a frame as tall as the screen would scroll it.
            text = HOME_CLEAR + "\n".join(lines)
        else:
            text = ("\n" if self.frames else "") + "".join(f"{line}\n" for line in lines)
        self.frames += 1
        self._write(text)

    def _write(self, text: str) -> None:
        # One write per frame, then flush: the terminal shows whole frames, never half of one.
        self.stream.write(text)
        self.stream.flush()
