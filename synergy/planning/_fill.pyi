"""Type stub of the C extension built from _fill.c (see batch.py)."""

from collections.abc import Mapping, Sequence
from typing import Any

def fill_many(
    base: Sequence[Sequence[tuple[int, float]]],
    base_caps: Sequence[float],
    trials: Sequence[tuple[Sequence[tuple[int, float]], float, Mapping[int, Sequence[tuple[int, float]]]]],
) -> list[list[float]]: ...

def fill(demands: Sequence[Sequence[tuple[int, float]]], caps: Sequence[float]) -> list[float]: ...

def proxy_rates(work: Any, total: Any, dev: Any, inv_free: Any, serial: Any, cap: Any, out: Any) -> None: ...

def rates_many(
    base: Sequence[bytes],
    trials: Sequence[bytes],
    boards: dict[int, tuple[int, int, int, int, int, float]],
    allow_parallel: bool,
    min_batch: int,
) -> list[tuple[list[float], list[float], list[float]] | None]: ...

def select_ranked(
    rate: Any, static_rank: Any, bands: Any, size: int, ladder: int, top: Any, firsts: Any
) -> tuple[int, int]: ...
