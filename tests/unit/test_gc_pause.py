"""The planner's collector pause: nests, spans threads, and restores what it found."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from synergy.gc_pause import gc_paused, heap_frozen, refreeze


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def test_pause_turns_the_collector_off_and_back_on() -> None:
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_nested_pauses_resume_only_at_the_outermost() -> None:
    gc.enable()
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "the inner pause ended but the outer one still runs"
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_an_exception_still_resumes_the_collector() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_overlapping_pauses_in_threads_resume_after_the_last() -> None:
    gc.enable()
    inside = threading.Barrier(2)
    first_done = threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with gc_paused():
            inside.wait()
        first_done.set()

    def second() -> None:
        with gc_paused():
            inside.wait()
            first_done.wait(5)
            seen.append(gc.isenabled())  # the first thread's pause has ended, ours has not

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [False]
    assert gc.isenabled()


def test_a_frozen_heap_is_unfrozen_after_the_block_even_on_error() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), heap_frozen():
        assert gc.get_freeze_count() > 0
        made = [[] for _ in range(100)]
        refreeze()
        assert gc.get_freeze_count() >= 100
        del made
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0  # an in-process caller (the tests) is left as it was
