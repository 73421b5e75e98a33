"""The planner's tables and solved cuts on disk, so that a fresh process plans like a warm one.

Most of a first plan goes into work that depends only on the models and the kinds of
devices, not on the moment: the fit tables of every (model, board) pair and the cuts of
every device-class sequence (:mod:`.candidates`). The live coordinator keeps them in memory
across re-plans; a fresh ``synergy plan`` process would redo them every time.
:class:`PlanningCache` keeps the tables and the solved cuts in files, one per model, under
``$XDG_CACHE_HOME/synergy/planning`` (``~/.cache/synergy/planning`` when the variable is
unset). Templates (which depend on the space) are not stored: they are rebuilt from the
cuts faster than they would unpickle.

The planning core stays free of I/O: the caller loads the files into a
:class:`~synergy.planning.cost.CostModel` before planning (:meth:`PlanningCache.load`) and
saves what the cost model learned afterwards (:meth:`PlanningCache.save`).

Trust and validity:

* a file is named after a digest of the model's content and of a *fingerprint* of
  everything its contents depend on: this format's version, the source of the planning and
  hardware packages, the cost parameters, numpy's and Python's versions. A change to any of
  them names other files, so a stale entry is never read;
* a file is written to a temporary name in the same directory and renamed over the old one
  (atomic on POSIX), so a reader sees a whole file or none;
* files are pickles, which can run code when read: a file is read only when it is a
  regular file owned by this user and writable by nobody else, in a directory created
  private (0700). Any error while reading (truncated, foreign, unreadable) counts as a miss
  and the work is redone — the cache can make planning faster, never different. Solved
  cuts are decoded when a plan first asks for them (a file holds every cut earlier plans
  solved for the model); one that does not decode then is a miss too;
* a file holding more than :data:`MAX_ENTRIES_PER_MODEL` solved cuts is rewritten with only
  what the last plan used, and only the :data:`MAX_FILES` most recently written files are
  kept, so the cache does not grow without bound.
"""

from __future__ import annotations

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
from synergy.planning.candidates import cut_from_raw, cut_to_raw, is_cut_list
from synergy.planning.cost import BoardTable, CostModel
from synergy.planning.fit import default_checker

__all__ = ["CACHE_FORMAT", "MAX_ENTRIES_PER_MODEL", "MAX_FILES", "PlanningCache", "default_cache_dir"]

#: Bumped whenever what a file holds changes shape.
CACHE_FORMAT = 3
#: Solved cuts kept per model file.
MAX_ENTRIES_PER_MODEL = 20_000
#: Files kept in the directory (the most recently written).
MAX_FILES = 64
#: Packages whose source the cached results depend on.
_SOURCE_PACKAGES = (synergy.planning, synergy.hardware)


def _cuts_from_raw(raw: Any) -> list[Any]:
    return list(map(cut_from_raw, raw))


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/synergy/planning``, or ``~/.cache/synergy/planning``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "synergy" / "planning"


def _source_digest() -> str:
    digest = hashlib.sha256()
    for package in _SOURCE_PACKAGES:
        root = Path(package.__file__ or "").parent
        for path in sorted(root.glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
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
        # Tens of thousands of small objects come to life here, none of them in a cycle: the
        # cyclic collector would only walk them again and again (a third of the load time).
        with gc_paused():
            for model in {id(m): m for m in models}.values():
                path = self._path(cost, model)
                data = self._read(path)
                if data is None:
                    continue
                tables, raw = data
                # Decoded when a plan first asks for them: a file holds every cut earlier
                # plans solved for the model, a plan uses a part of them.
                cost.import_model(model, tables, raw, decode=_cuts_from_raw)
                loaded += len(tables) + len(raw)
        return loaded

    def _read(self, path: Path) -> tuple[list[BoardTable], dict[Hashable, Any]] | None:
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
            tables, memo = payload["tables"], payload["memo"]
            if not (isinstance(tables, list) and all(isinstance(t, BoardTable) for t in tables)):
                raise ValueError("tables malformed")
            if not isinstance(memo, dict):
                raise ValueError("memo malformed")
        except Exception as exc:  # any unreadable file is a miss: the work is redone, the file rewritten
            self.notes.append(f"{path}: unreadable ({type(exc).__name__}: {exc}), ignored")
            return None
        return tables, memo

    def save(self, cost: CostModel, models: Iterable[HardwareModel]) -> int:
        """Write what ``cost`` knows about ``models`` (atomically); returns the files written."""
        if not self._usable(cost):
            return 0
        written = 0
        for model in {id(m): m for m in models}.values():
            tables, everything = cost.export_model(model)
            # Only the solved cuts: templates and their arrays depend on the space and are
            # rebuilt from the cuts faster than they unpickle.
            memo = {key: [cut_to_raw(c) for c in value] for key, value in everything.items() if is_cut_list(value)}
            if not tables and not memo:
                continue
            path = self._path(cost, model)
            old = self._read(path)
            if old is not None:
                if len(old[1]) + len(memo) <= MAX_ENTRIES_PER_MODEL:
                    memo = {**old[1], **memo}
                if len(old[0]) >= len(tables) and len(memo) == len(old[1]) and memo.keys() == old[1].keys():
                    continue  # nothing new
                tables = list({t.board: t for t in [*old[0], *tables]}.values())
            try:
                self._write(path, {"format": CACHE_FORMAT, "tables": tables, "memo": memo})
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
