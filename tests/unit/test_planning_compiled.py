"""The compiled planner modules run only while they are the code of the sources beside them."""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from pathlib import Path

import pytest

from synergy.planning import compiled

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _tree(tmp_path: Path, modules: tuple[str, ...] = ("alpha", "beta")) -> Path:
    """A package directory as `make` leaves it: sources, compiled files, the group's library
    and the manifest of the sources' digests. The "compiled" files are not loadable."""
    package = tmp_path / "fakeplanner"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for m in modules:
        (package / f"{m}.py").write_text(f"WHO = 'source of {m}'\n")
        (package / f"{m}{SUFFIX}").write_bytes(b"not a shared library")
    (package / f"{compiled.GROUP}{SUFFIX}").write_bytes(b"not a shared library")
    digests = compiled.source_digests(package, modules)
    (package / compiled.MANIFEST).write_text("".join(f"{m} {d}\n" for m, d in digests.items()))
    return package


def test_current_compiled_modules_are_used(tmp_path: Path) -> None:
    package = _tree(tmp_path)
    assert compiled.decide(package, ("alpha", "beta"), {}) == "compiled"


def test_an_edited_source_runs_as_python(tmp_path: Path) -> None:
    package = _tree(tmp_path)
    (package / "beta.py").write_text("WHO = 'edited'\n")
    state = compiled.decide(package, ("alpha", "beta"), {})
    assert state == "sources: changed since they were compiled: beta"


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda p: (p / compiled.MANIFEST).unlink(), "_compiled_sources.txt is missing or malformed"),
        (lambda p: (p / compiled.MANIFEST).write_text("alpha\n"), "_compiled_sources.txt is missing or malformed"),
        (lambda p: (p / compiled.MANIFEST).write_bytes(b"\xff\xfe"), "_compiled_sources.txt is missing or malformed"),
        (lambda p: (p / f"beta{SUFFIX}").unlink(), "incomplete"),
        (lambda p: (p / f"{compiled.GROUP}{SUFFIX}").unlink(), "incomplete"),
        (lambda p: [(p / f"{m}{SUFFIX}").unlink() for m in ("alpha", "beta")], "not compiled"),
    ],
)
def test_anything_amiss_runs_the_sources(tmp_path: Path, damage: object, why: str) -> None:
    package = _tree(tmp_path)
    damage(package)  # type: ignore[operator]
    state = compiled.decide(package, ("alpha", "beta"), {})
    assert state.startswith("sources:") and why in state


def test_the_sources_on_purpose(tmp_path: Path) -> None:
    package = _tree(tmp_path)
    assert compiled.decide(package, ("alpha", "beta"), {"SYNERGY_PLANNER_SOURCES": "1"}) == (
        "sources: SYNERGY_PLANNER_SOURCES=1"
    )


def test_the_finder_loads_the_source_where_a_compiled_file_would_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = _tree(tmp_path)
    (package / "beta.py").write_text("WHO = 'edited beta'\n")
    monkeypatch.delenv("SYNERGY_PLANNER_SOURCES", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    for name in ("fakeplanner", "fakeplanner.alpha", "fakeplanner.beta"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.invalidate_caches()
    # Without the finder the import system prefers the (here broken) compiled file.
    with pytest.raises(ImportError):
        importlib.import_module("fakeplanner.alpha")
    monkeypatch.delitem(sys.modules, "fakeplanner.alpha", raising=False)
    state = compiled.activate(package, "fakeplanner", ("alpha", "beta"))
    assert state == "sources: changed since they were compiled: beta"
    assert importlib.import_module("fakeplanner.alpha").WHO == "source of alpha"
    assert importlib.import_module("fakeplanner.beta").WHO == "edited beta"
    # Activating again adds no second finder.
    before = len(sys.meta_path)
    compiled.activate(package, "fakeplanner", ("alpha", "beta"))
    assert len(sys.meta_path) == before
    for name in ("fakeplanner", "fakeplanner.alpha", "fakeplanner.beta"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_this_process_runs_what_the_state_says() -> None:
    """In `make`'s environment the planner is compiled; the state must match the modules
    actually loaded, whichever it is."""
    from synergy.planning import fast

    loaded_compiled = Path(fast.__file__ or "").name.endswith(SUFFIX)
    assert loaded_compiled == (compiled.STATE == "compiled"), compiled.STATE
