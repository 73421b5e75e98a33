"""Which planner modules run compiled to C (mypyc), and the sources whenever those are stale.

The planner spends a plan in many small Python steps (making candidates, keeping scores,
ranking), not in arithmetic: compiled with mypyc, the modules named in :data:`MODULES` plan
the same plans, bit for bit, in about two thirds of the time. ``make`` compiles them in
place (``setup.py``, with ``SYNERGY_COMPILE_PLANNER=1``), next to their sources, and writes
:data:`MANIFEST`: the SHA-256 of every source it compiled.

A compiled module is the code of the source it was compiled from, not of the source beside
it now: after an edit or a ``git pull`` it would silently run old code. (Only the modules of
the group are bound at compile time; what they import from elsewhere, e.g. ``synergy.types``,
they call as it is when they run.) So, when the package
is imported, :func:`activate` compares the manifest with the sources; unless every compiled
module is there and matches, the planner runs its sources (a finder put first on
``sys.meta_path`` loads them instead; the same plans, slower) and :data:`STATE` says why.
``SYNERGY_PLANNER_SOURCES=1`` runs the sources on purpose.

This module imports nothing of the planner (``setup.py`` reads :data:`MODULES` and
:func:`source_digests` from it before anything is built).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["MANIFEST", "MODULES", "STATE", "activate", "read_manifest", "source_digests"]

#: The planner's modules compiled with mypyc (the rest of the package stays Python).
MODULES = (
    "baselines",
    "batch",
    "candidates",
    "cost",
    "fast",
    "links",
    "memory",
    "objectives",
    "problem",
    "search",
    "shortlist",
    "templates",
    "throughput",
)
#: The sources' digests at compile time, one "module sha256" line each (beside the modules).
MANIFEST = "_compiled_sources.txt"
#: The shared library mypyc builds for the group (``setup.py``'s group name).
GROUP = "_compiled__mypyc"

PACKAGE = __name__.rpartition(".")[0]
HERE = Path(__file__).resolve().parent

#: What :func:`activate` found for this package when it was imported: "compiled", or why the
#: planner runs its sources.
STATE = "sources: not activated"


def source_digests(directory: Path = HERE, modules: Sequence[str] = MODULES) -> dict[str, str]:
    """SHA-256 of each module's source in ``directory``."""
    return {m: hashlib.sha256((directory / f"{m}.py").read_bytes()).hexdigest() for m in modules}


def read_manifest(path: Path) -> dict[str, str]:
    """The manifest's digests by module ({} when it is missing or malformed)."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    out: dict[str, str] = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2:
            return {}
        out[parts[0]] = parts[1]
    return out


def _compiled_files(directory: Path, name: str) -> list[Path]:
    candidates = [directory / f"{name}{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    return [path for path in candidates if path.is_file()]


class SourcesFirst(importlib.abc.MetaPathFinder):
    """Loads the named modules of ``package`` from their ``.py`` files in ``directory``, even
    where a compiled module sits beside them (the import system would prefer that)."""

    def __init__(self, package: str, directory: Path, modules: Sequence[str]) -> None:
        self.directory = directory
        self.names = {f"{package}.{m}": m for m in modules}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        short = self.names.get(fullname)
        if short is None:
            return None
        return importlib.util.spec_from_file_location(fullname, self.directory / f"{short}.py")


def decide(directory: Path, modules: Sequence[str], environ: Mapping[str, str]) -> str:
    """"compiled" when every module's compiled file is there and was compiled from the source
    beside it now; otherwise why the sources must run instead."""
    if environ.get("SYNERGY_PLANNER_SOURCES") == "1":
        return "sources: SYNERGY_PLANNER_SOURCES=1"
    built = [m for m in modules if _compiled_files(directory, m)]
    if not built:
        return "sources: not compiled"
    if len(built) < len(modules) or not _compiled_files(directory, GROUP):
        return "sources: the compiled modules are incomplete"
    recorded = read_manifest(directory / MANIFEST)
    if not recorded:
        return f"sources: {MANIFEST} is missing or malformed"
    try:
        current = source_digests(directory, modules)
    except OSError as exc:
        return f"sources: cannot read a source ({exc})"
    changed = sorted(m for m in modules if recorded.get(m) != current[m])
    if changed:
        return f"sources: changed since they were compiled: {', '.join(changed)}"
    return "compiled"


def activate(directory: Path = HERE, package: str = PACKAGE, modules: Sequence[str] = MODULES) -> str:
    """Decide (:func:`decide`) before any of ``modules`` is imported; unless "compiled", put a
    :class:`SourcesFirst` finder first on ``sys.meta_path``. Returns the state (the package
    keeps its own in :data:`STATE`)."""
    state = decide(directory, modules, os.environ)
    if state != "compiled" and not any(isinstance(f, SourcesFirst) and f.directory == directory for f in sys.meta_path):
        already = [m for m in modules if f"{package}.{m}" in sys.modules]
        if already:  # the package's __init__ runs this first: a module imported before would be the compiled one
            raise ImportError(f"{package}: {', '.join(already)} imported before the compiled-module check")
        sys.meta_path.insert(0, SourcesFirst(package, directory, modules))
    return state
