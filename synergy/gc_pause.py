"""Pausing Python's cyclic garbage collector around allocation-heavy work that makes no cycles.

A planning process holds millions of long-lived objects (models, fit tables, solved cuts,
templates). A plan allocates hundreds of thousands of short-lived ones; with the collector
on, enough of them survive a young collection to trigger full collections, and each full
collection walks every object of the process: 70-270 ms on an 8-device space, more than the
plan itself, in about one plan of five (``synergy bench --planning-time`` saw them as its
p95). The planner's objects are freed by reference counting (it makes no reference cycles
worth collecting), so the collector is paused while it runs and resumes afterwards.

:func:`heap_frozen` goes further for a one-shot process (``synergy plan``): every object made so
far moves out of the collector's sight (``gc.freeze``), and comes back when the block ends, so
that a caller running it in-process (the tests) is left as it was.

The pause is process-wide (the collector has no per-thread switch) and nests: the
coordinator plans in worker threads, and the collector resumes only when the last pause
ends, and only if it was on when the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused", "heap_frozen", "refreeze"]

_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off (reference counting still frees memory)."""
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()


@contextmanager
def heap_frozen() -> Iterator[None]:
    """Run the block with every object made so far hidden from the collector (``gc.freeze``);
    call :func:`refreeze` inside to hide what the block made too. Unfrozen at the end."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def refreeze() -> None:
    """Hide what was made since the last freeze too (inside :func:`heap_frozen`)."""
    gc.freeze()
