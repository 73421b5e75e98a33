"""The planner's tables and solved cuts on disk, so that a fresh process plans like a warm one.

Most of a first plan goes into work that depends only on the models and the kinds of
devices, not on the moment: the fit tables of every (model, board) pair and the cuts of
every device-class sequence (:mod:`.candidates`). The live coordinator keeps them in memory
across re-plans; a fresh ``synergy plan`` process would redo them every time.
:class:`PlanningCache` keeps them in files, one per model, under
``$XDG_CACHE_HOME/synergy/planning`` (``~/.cache/synergy/planning`` when the variable is
unset): the fit tables, the *sequence tables* (every solved cut of one kind of (source,
target) pair on one set of device classes, as arrays: :mod:`.templates`) and the solved
cuts of each slot sequence (for spaces whose classes no table covers yet). Templates and
candidates, which depend on the space's device names, are not stored.

The planning core stays free of I/O: the caller loads the files into a
:class:`~synergy.planning.cost.CostModel` before planning (:meth:`PlanningCache.load`) and
saves what the cost model learned afterwards (:meth:`PlanningCache.save`).

Trust and validity:

* a file is named after a digest of the model's content and of a *fingerprint* of
  everything its contents depend on: this format's version, the source of the planning and
  hardware packages (each file's name, size and modification time), the cost parameters,
  numpy's and Python's versions. A change to any of them names other files, so a stale
  entry is never read;
* a file is written to a temporary name in the same directory and renamed over the old one
  (atomic on POSIX), so a reader sees a whole file or none;
* files are pickles, which can run code when read: a file is read only when it is a
  regular file owned by this user and writable by nobody else, in a directory created
  private (0700). Any error while reading (truncated, foreign, unreadable) counts as a miss
  and the work is redone — the cache can make planning faster, never different. Entries
  are decoded when a plan first asks for them, and the solved cuts (one pickle inside the
  file) are not even read until a plan needs one; an entry that does not decode then is a
  miss too;
* a file holding more than :data:`MAX_ENTRIES_PER_MODEL` solved cuts or
  :data:`MAX_TABLES_PER_MODEL` sequence tables is rewritten with only what the last plan
  used, and only the :data:`MAX_FILES` most recently written files are kept, so the cache
  does not grow without bound.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import stat
import sys
import tempfile
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

import synergy.hardware
import synergy.planning
from synergy.gc_pause import gc_paused
from synergy.hardware.model import HardwareModel
from synergy.planning.candidates import cut_from_raw, cut_to_raw, is_cut_key, is_cut_list
from synergy.planning.cost import BoardTable, CostModel
from synergy.planning.fit import default_checker
from synergy.planning.templates import SequenceTable, is_sequence_table

__all__ = [
    "CACHE_FORMAT",
    "MAX_ENTRIES_PER_MODEL",
    "MAX_FILES",
    "MAX_TABLES_PER_MODEL",
    "PlanningCache",
    "default_cache_dir",
]

#: Bumped whenever what a file holds changes shape.
CACHE_FORMAT = 5
#: Solved cuts kept per model file.
MAX_ENTRIES_PER_MODEL = 20_000
#: Sequence tables kept per model file (about 130 kB each for a space of five device
#: classes, so a file stays within a few MB, as with its solved cuts).
MAX_TABLES_PER_MODEL = 32
#: Files kept in the directory (the most recently written).
MAX_FILES = 64
#: Packages whose source the cached results depend on.
_SOURCE_PACKAGES = (synergy.planning, synergy.hardware)


def _cuts_from_raw(raw: Any) -> list[Any]:
    return list(map(cut_from_raw, raw))


def _table_from_raw(raw: Any) -> SequenceTable:
    t = SequenceTable._make(raw)
    per_cut = (t.sequence, t.ranges, t.bottleneck, t.latency, t.serial, t.work, t.parts, t.reload)
    per_sequence = (t.codes, t.ordinals, t.combo_index)
    if not all(isinstance(a, np.ndarray) for a in (*per_cut, *per_sequence)):
        raise ValueError("sequence table malformed")
    if len({len(a) for a in per_cut}) != 1 or len({len(t.slots), len(t.class_positions)} | {
        len(a) for a in per_sequence
    }) != 1:
        raise ValueError("sequence table malformed")
    return t


def _unpickled_cuts(blob: bytes) -> dict[Hashable, Any]:
    cuts = pickle.loads(blob)
    if not isinstance(cuts, dict):
        raise ValueError("solved cuts malformed")
    return cuts


#: What a file holds: fit tables, sequence tables (as plain tuples) by memo key, and the solved
#: cuts by memo key as one pickle of its own (read only when a plan needs a cut no sequence
#: table holds).
_Contents = tuple[list[BoardTable], dict[Hashable, Any], bytes]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/synergy/planning``, or ``~/.cache/synergy/planning``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "synergy" / "planning"


def _source_digest() -> str:
    """A digest of the packages' source files by name, size and modification time.

    Not of their contents: reading and hashing some sixty files took a few ms of every
    fresh process's planning time. An edit changes a file's modification time (as for
    Python's own bytecode cache, which trusts the same two figures), and so the digest.
    """
    digest = hashlib.sha256()
    for package in _SOURCE_PACKAGES:
        root = Path(package.__file__ or "").parent
        with os.scandir(root) as entries:
            files = sorted((e.name, e.stat()) for e in entries if e.name.endswith(".py") and e.is_file())
        for name, info in files:
            digest.update(f"{name}|{info.st_size}|{info.st_mtime_ns};".encode())
    return digest.hexdigest()


class PlanningCache:
    """Per-model files of fit tables and solved cuts (see the module docstring)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else default_cache_dir()
        self._fingerprint: str | None = None
        #: Why the last load missed or a save was skipped, per model name (for people).
        self.notes: list[str] = []

    def fingerprint(self, cost: CostModel) -> str:
        """Everything cached results depend on besides the model itself."""
        if self._fingerprint is None:
            self._fingerprint = _source_digest()
        text = f"{CACHE_FORMAT}|{self._fingerprint}|{cost.params!r}|{np.__version__}|{sys.version}"
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, cost: CostModel, model: HardwareModel) -> Path:
        content = hashlib.sha256(pickle.dumps(model, protocol=4)).hexdigest()
        key = hashlib.sha256(f"{self.fingerprint(cost)}|{content}".encode()).hexdigest()[:32]
        return self.directory / f"{model.name[:40]}-{key}.pickle"

    @staticmethod
    def _usable(cost: CostModel) -> bool:
        # Tables depend on the checker; only the default one (the boards' own) is cached.
        return cost.checker is default_checker()

    def load(self, cost: CostModel, models: Iterable[HardwareModel]) -> int:
        """Load what the files hold for ``models`` into ``cost``; returns the entries loaded."""
        if not self._usable(cost):
            return 0
        loaded = 0
        with gc_paused():
            for model in {id(m): m for m in models}.values():
                path = self._path(cost, model)
                data = self._read(path)
                if data is None:
                    continue
                tables, sequences, cuts = data
                # Decoded when a plan first asks for them; the solved cuts (tens of thousands
                # of small objects, most of a file's reading time) are not even read unless a
                # plan needs a sequence no table holds.
                cost.import_model(model, tables, sequences, decode=_table_from_raw)
                cost.import_later(model, functools.partial(_unpickled_cuts, cuts), _cuts_from_raw, is_cut_key)
                loaded += len(tables) + len(sequences)
        return loaded

    def _read(self, path: Path) -> _Contents | None:
        try:
            info = path.lstat()
        except OSError:
            return None  # no file yet: the ordinary miss
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
            self.notes.append(f"{path}: not a private regular file of this user, ignored")
            return None
        try:
            with path.open("rb") as fh:
                payload = pickle.load(fh)
            if not (isinstance(payload, dict) and payload.get("format") == CACHE_FORMAT):
                raise ValueError("unknown format")
            tables, sequences, cuts = payload["tables"], payload["sequences"], payload["cuts"]
            if not (isinstance(tables, list) and all(isinstance(t, BoardTable) for t in tables)):
                raise ValueError("tables malformed")
            if not isinstance(sequences, dict):
                raise ValueError("sequence tables malformed")
            if not isinstance(cuts, bytes):
                raise ValueError("solved cuts malformed")
        except Exception as exc:  # any unreadable file is a miss: the work is redone, the file rewritten
            self.notes.append(f"{path}: unreadable ({type(exc).__name__}: {exc}), ignored")
            return None
        return tables, sequences, cuts

    def save(self, cost: CostModel, models: Iterable[HardwareModel]) -> int:
        """Write what ``cost`` knows about ``models`` (atomically); returns the files written."""
        if not self._usable(cost):
            return 0
        written = 0
        for model in {id(m): m for m in models}.values():
            tables, everything = cost.export_model(model)
            # Only solved cuts and sequence tables: templates and their arrays depend on the
            # space (device names, the sources' rate caps) and are rebuilt from the tables in
            # about a millisecond per app.
            cuts = {key: [cut_to_raw(c) for c in value] for key, value in everything.items() if is_cut_list(value)}
            sequences = {key: tuple(value) for key, value in everything.items() if is_sequence_table(value)}
            if not tables and not cuts and not sequences:
                continue
            path = self._path(cost, model)
            old = self._read(path)
            if old is not None:
                old_tables, old_sequences, blob = old
                try:
                    old_cuts = _unpickled_cuts(blob)
                except Exception:
                    old_cuts = {}
                if len(old_cuts) + len(cuts) <= MAX_ENTRIES_PER_MODEL:
                    cuts = {**old_cuts, **cuts}
                if len(old_sequences) + len(sequences) <= MAX_TABLES_PER_MODEL:
                    sequences = {**old_sequences, **sequences}
                if (
                    len(old_tables) >= len(tables)
                    and cuts.keys() == old_cuts.keys()
                    and sequences.keys() == old_sequences.keys()
                ):
                    continue  # nothing new
                tables = list({t.board: t for t in [*old_tables, *tables]}.values())
            payload = {
                "format": CACHE_FORMAT,
                "tables": tables,
                "sequences": sequences,
                "cuts": pickle.dumps(cuts, protocol=pickle.HIGHEST_PROTOCOL),
            }
            try:
                self._write(path, payload)
            except OSError as exc:
                self.notes.append(f"{path}: not written ({exc.strerror or exc})")
                continue
            written += 1
        if written:
            self._prune()
        return written

    def _prune(self) -> None:
        """Keep the :data:`MAX_FILES` most recently written files: a new version of the planner
        names new files, and the old ones would otherwise stay for ever."""
        try:
            files = sorted(self.directory.glob("*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)
            for old in files[MAX_FILES:]:
                old.unlink(missing_ok=True)
        except OSError as exc:
            self.notes.append(f"{self.directory}: not pruned ({exc.strerror or exc})")

    def _write(self, path: Path, payload: dict[str, Any]) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
