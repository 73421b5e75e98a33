"""An app's templates as arrays: one table of solved cuts per kind of (source, target) pair.

A *template* (:class:`Template`) fixes an app's source and target device, a sequence of
slots (the source, the target, or "some device of class c") and the cut of the model into
one layer range per slot (:mod:`.candidates` solves the cuts). An app on a body of five
device classes has about a thousand of them, and a plan reads most of them only as numbers:
the ranker (:mod:`.shortlist`) scores them all at once under a load, the baselines look for
the fastest. So they are kept as arrays, and a :class:`Template` object is made only for the
few a plan instantiates.

* A :class:`SequenceTable` holds every solved cut of every slot sequence of one kind of
  (source, target) pair: source class, target class, and whether they are one device. It
  depends only on the model and the classes' values (boards, links, calibration) and
  member counts, so re-plans, other apps of the model and other spaces with the same kinds
  of devices share it, and :mod:`.disk_cache` stores it.
* A :class:`TemplateSet` is an app's templates: its (source, target) pairs, each with the
  table of its kind, ordered by own bottleneck, then latency, then number of slots.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, Protocol, overload

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "PAD_SLOT",
    "SOURCE_SLOT",
    "TARGET_SLOT",
    "EndpointPair",
    "PartFigures",
    "SequenceTable",
    "SolvedCut",
    "Template",
    "TemplateSet",
    "Work",
    "is_sequence_table",
    "sequence_table",
]

#: Slot codes: the app's source device, its target device; ``>= 0`` is a device class.
SOURCE_SLOT = -1
TARGET_SLOT = -2
#: Padding after a sequence's slots and endpoints in :attr:`SequenceTable.codes`.
PAD_SLOT = -3

#: Busy seconds per frame on (accelerator, CPU, radio).
Work = tuple[float, float, float]
#: A partition's figures in the order of :class:`~synergy.planning.cost.PartitionFootprint`'s
#: fields (weight, bias, layers, peak data, frame buffer, reload seconds).
PartFigures = tuple[int, int, int, int, int, float]


class Template(NamedTuple):
    """Source, target, slot sequence and layer ranges of one app (devices still open)."""

    app_index: int
    source: str
    target: str
    slots: tuple[int, ...]
    ranges: tuple[tuple[int, int], ...]
    #: The app's own bottleneck (overlapped devices) and latency, seconds per frame.
    bottleneck_s: float
    latency_s: float
    #: Work per slot and of the endpoints holding no slot (before weight reloads).
    slot_work: tuple[Work, ...] = ()
    endpoint_work: tuple[tuple[str, Work], ...] = ()
    #: Per slot: the partition as its device holds it.
    slot_parts: tuple[PartFigures, ...] = ()
    #: The source's rate cap.
    cap_hz: float = 0.0
    #: The app's own bottleneck when no device overlaps its resources (busy times add).
    serial_bottleneck_s: float = 0.0


class SolvedCut(Protocol):
    """What a table needs of one solved cut (:mod:`.candidates`' cuts)."""

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]: ...
    @property
    def bottleneck_s(self) -> float: ...
    @property
    def latency_s(self) -> float: ...
    @property
    def slot_work(self) -> tuple[Work, ...]: ...
    #: (SOURCE_SLOT or TARGET_SLOT, work) for endpoints that hold no slot.
    @property
    def endpoint_work(self) -> tuple[tuple[int, Work], ...]: ...
    @property
    def slot_parts(self) -> tuple[PartFigures, ...]: ...
    @property
    def serial_s(self) -> float: ...


class SequenceTable(NamedTuple):
    """Every solved cut of every slot sequence of one kind of (source, target) pair.

    Rows are cuts, in the order of their sequences and, within one, of the solver.
    """

    #: Per sequence: its slot codes.
    slots: tuple[tuple[int, ...], ...]
    #: Per sequence and position: slot codes, then the codes (SOURCE_SLOT or TARGET_SLOT) of
    #: the endpoints that hold no slot, then PAD_SLOT.
    codes: NDArray[np.int64]
    #: Per cut: its sequence.
    sequence: NDArray[np.int64]
    #: Per cut and slot: first and last layer (-1 after the last slot).
    ranges: NDArray[np.int64]
    bottleneck: NDArray[np.float64]
    latency: NDArray[np.float64]
    serial: NDArray[np.float64]
    #: Per cut, position (as in ``codes``) and kind: busy seconds per frame (zero padding);
    #: an endpoint's work is the same for every cut of a sequence.
    work: NDArray[np.float64]
    #: Per cut and slot: the integer figures of :data:`PartFigures` (weight, bias, layers,
    #: peak data, frame buffer) and the reload seconds.
    parts: NDArray[np.int64]
    reload: NDArray[np.float64]
    #: Per sequence: the positions of its class slots; per sequence and position, the number
    #: of the class slot among them (0 elsewhere).
    class_positions: tuple[tuple[int, ...], ...]
    ordinals: NDArray[np.int64]
    #: The distinct (class, occurrence) of the sequences' class slots (the k-th slot of class c
    #: in a sequence is occurrence k), and per sequence and class slot the number of its pair
    #: (-1 after the last class slot).
    combos: tuple[tuple[int, int], ...]
    combo_index: NDArray[np.int64]


def sequence_table(solved: Sequence[tuple[tuple[int, ...], Sequence[SolvedCut]]]) -> SequenceTable:
    """The table of ``(slot sequence, its solved cuts)`` pairs (sequences without cuts left out)."""
    solved = [(slots, cuts) for slots, cuts in solved if cuts]
    slots = tuple(s for s, _ in solved)
    ends = tuple(cuts[0].endpoint_work for _, cuts in solved)
    width_slots = max((len(s) for s in slots), default=1)
    width = max((len(s) + len(e) for s, e in zip(slots, ends, strict=True)), default=1)
    codes = np.full((len(slots), width), PAD_SLOT, dtype=np.int64)
    for g, (s, e) in enumerate(zip(slots, ends, strict=True)):
        codes[g, : len(s)] = s
        codes[g, len(s) : len(s) + len(e)] = [role for role, _ in e]
    # Rows as flat lists, converted once (numpy converts flat lists several times faster
    # than nested ones, and per-element assignment is slower still).
    sequence: list[int] = []
    ranges: list[int] = []
    scalars: list[float] = []
    work: list[float] = []
    parts: list[int] = []
    reload: list[float] = []
    for g, (s, cuts) in enumerate(solved):
        pad_ranges = [-1, -1] * (width_slots - len(s))
        pad_parts = [0] * (5 * (width_slots - len(s)))
        pad_reload = [0.0] * (width_slots - len(s))
        tail = [x for _, w in ends[g] for x in w]
        tail += [0.0] * (3 * (width - len(s)) - len(tail))
        for cut in cuts:
            sequence.append(g)
            for first, last in cut.ranges:
                ranges += (first, last)
            ranges += pad_ranges
            scalars += (cut.bottleneck_s, cut.latency_s, cut.serial_s)
            for w in cut.slot_work:
                work += w
            work += tail
            for part in cut.slot_parts:
                parts += part[:5]
                reload.append(part[5])
            parts += pad_parts
            reload += pad_reload
    n = len(sequence)
    figures = np.array(scalars, dtype=np.float64).reshape(n, 3)
    class_positions = tuple(tuple(p for p, slot in enumerate(seq) if slot >= 0) for seq in slots)
    is_class = codes >= 0
    ordinals = np.where(is_class, np.cumsum(is_class, axis=1) - 1, 0)
    numbers: dict[tuple[int, int], int] = {}
    combo_index = np.full((len(slots), max((len(p) for p in class_positions), default=0) or 1), -1, dtype=np.int64)
    for g, seq in enumerate(slots):
        seen: dict[int, int] = {}
        for k, slot in enumerate(c for c in seq if c >= 0):
            occurrence = seen.get(slot, 0)
            seen[slot] = occurrence + 1
            combo_index[g, k] = numbers.setdefault((slot, occurrence), len(numbers))
    return SequenceTable(
        slots,
        codes,
        np.array(sequence, dtype=np.int64),
        np.array(ranges, dtype=np.int64).reshape(n, width_slots, 2),
        np.ascontiguousarray(figures[:, 0]),
        np.ascontiguousarray(figures[:, 1]),
        np.ascontiguousarray(figures[:, 2]),
        np.array(work, dtype=np.float64).reshape(n, width, 3),
        np.array(parts, dtype=np.int64).reshape(n, width_slots, 5),
        np.array(reload, dtype=np.float64).reshape(n, width_slots),
        class_positions,
        ordinals,
        tuple(numbers),
        combo_index,
    )


def is_sequence_table(value: object) -> bool:
    """Whether a memo entry is a :class:`SequenceTable` (the entries :mod:`.disk_cache` stores)."""
    return isinstance(value, SequenceTable)


class EndpointPair(NamedTuple):
    """One (source, target) pair of an app with the table of its kind."""

    source: str
    target: str
    #: The source's rate cap.
    cap_hz: float
    table: SequenceTable


class TemplateSet(Sequence[Template]):
    """An app's templates, best own bottleneck first (then latency, then fewer slots).

    Indexing makes the :class:`Template` (once: the same object every time, so its ``id``
    names it for as long as the set lives); the arrays give every template's figures in
    this order without making any.
    """

    def __init__(self, app_index: int, pairs: Sequence[EndpointPair]) -> None:
        self.app_index = app_index
        self.pairs = tuple(pairs)
        sizes = [len(p.table.sequence) for p in self.pairs]
        #: Per pair: the number of its first row among all pairs' rows, and of its first sequence.
        self.row_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.sequence_offsets = np.concatenate(
            [[0], np.cumsum([len(p.table.slots) for p in self.pairs])]
        ).astype(np.int64)
        if self.pairs:
            pair_of = np.repeat(np.arange(len(self.pairs), dtype=np.int64), sizes)
            bottleneck = np.concatenate([p.table.bottleneck for p in self.pairs])
            latency = np.concatenate([p.table.latency for p in self.pairs])
            lengths = np.concatenate(
                [np.array([len(s) for s in p.table.slots], dtype=np.int64)[p.table.sequence] for p in self.pairs]
            )
            first_slot = np.concatenate([p.table.codes[:, 0][p.table.sequence] for p in self.pairs])
            # A stable sort: equal templates keep the order of pairs, sequences and cuts.
            order = np.lexsort((lengths, latency, bottleneck))
        else:
            pair_of = order = np.zeros(0, dtype=np.int64)
            bottleneck = latency = np.zeros(0)
            lengths = first_slot = np.zeros(0, dtype=np.int64)
        #: Per template (in this set's order): its row among all pairs' rows, its pair.
        self.row = order
        self.pair = pair_of[order]
        self.bottleneck = bottleneck[order]
        self.latency = latency[order]
        #: Per template: its number of slots, its first slot's code.
        self.lengths = lengths[order]
        self.first_slot = first_slot[order]
        self.serial = (
            np.concatenate([p.table.serial for p in self.pairs])[order] if self.pairs else np.zeros(0)
        )
        self.cap = np.array([p.cap_hz for p in self.pairs], dtype=np.float64)[self.pair] if self.pairs else np.zeros(0)
        self._items: list[Template | None] = [None] * len(order)
        self._positions: tuple[list[int], list[int], list[list[int]]] | None = None
        self._figures: tuple[list[float], list[float], list[float]] | None = None

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Template: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Template]: ...

    def __getitem__(self, index: int | slice) -> Template | Sequence[Template]:
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(len(self)))]
        item = self._items[index]
        if item is None:
            item = self._items[index] = self._make(index if index >= 0 else index + len(self))
        return item

    def __iter__(self) -> Iterator[Template]:
        for k in range(len(self)):
            yield self[k]

    def where(self, row: int) -> tuple[EndpointPair, int, int]:
        """The pair, its table's row and the sequence of the template numbered ``row``."""
        pairs, rows, sequences = self._lookup()
        p = pairs[row]
        local = rows[row]
        return self.pairs[p], local, sequences[p][local]

    def _lookup(self) -> tuple[list[int], list[int], list[list[int]]]:
        """Per template its pair and table row, per pair its rows' sequences, as Python lists
        (made once: a template is made by plain indexing, not numpy scalars)."""
        if self._positions is None:
            local = self.row - self.row_offsets[self.pair] if len(self.row) else self.row
            self._positions = (
                self.pair.tolist(), local.tolist(), [p.table.sequence.tolist() for p in self.pairs]
            )
        return self._positions

    def _make(self, k: int) -> Template:
        pair, r, g = self.where(k)
        ranges, slot_work, endpoints, parts = _table_row(pair.table, r, g)
        figures = self._figures
        if figures is None:
            figures = self._figures = (self.bottleneck.tolist(), self.latency.tolist(), self.serial.tolist())
        return Template(
            self.app_index,
            pair.source,
            pair.target,
            pair.table.slots[g],
            ranges,
            figures[0][k],
            figures[1][k],
            slot_work,
            tuple((pair.source if role == SOURCE_SLOT else pair.target, w) for role, w in endpoints),
            parts,
            pair.cap_hz,
            figures[2][k],
        )


#: One table row as a template holds it: (ranges, slot work, (endpoint role, work) pairs, parts).
_Row = tuple[tuple[tuple[int, int], ...], tuple[Work, ...], tuple[tuple[int, Work], ...], tuple[PartFigures, ...]]
#: Rows already converted, per table (kept, so that its id stays its own): the pairs of one kind
#: share a table, and their templates its rows.
_ROWS: dict[int, tuple[SequenceTable, dict[int, _Row]]] = {}
_ROWS_LIMIT = 64


def _table_row(t: SequenceTable, r: int, g: int) -> _Row:
    """Row ``r`` (of sequence ``g``) of ``t`` as Python tuples, converted once per table."""
    hit = _ROWS.get(id(t))
    if hit is None or hit[0] is not t:
        if len(_ROWS) >= _ROWS_LIMIT:
            _ROWS.clear()
        hit = _ROWS[id(t)] = (t, {})
    row = hit[1].get(r)
    if row is None:
        n = len(t.slots[g])
        ranges: list[Any] = t.ranges[r].tolist()
        work: list[Any] = t.work[r].tolist()
        roles: list[int] = t.codes[g, n:].tolist()
        parts: list[Any] = t.parts[r].tolist()
        reload: list[float] = t.reload[r].tolist()
        row = hit[1][r] = (
            tuple(map(tuple, ranges[:n])),
            tuple(map(tuple, work[:n])),
            tuple((role, tuple(w)) for role, w in zip(roles, work[n:], strict=False) if role != PAD_SLOT),
            tuple((*p, s) for p, s in zip(parts[:n], reload[:n], strict=True)),
        )
    return row
