"""Which package may import which: the layering rules, read from the source with ``ast``.

- library code (``synergy/`` outside ``synergy/cli``, ``coordinator/``, ``agent/``) never
  imports the CLI;
- the hardware analysis never imports the models (models build on hardware, not the reverse);
- the agent's device parser (``synergy.devices``) never imports the planner;
- no import is hidden behind ``importlib`` / ``__import__``: every dependency is a plain
  import, so these checks (and readers) see it.

Imports are followed transitively through our own modules (an import of ``a.b.c`` also runs
``a`` and ``a.b``), wherever they sit: module level, functions, ``TYPE_CHECKING`` blocks.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("synergy", "coordinator", "agent")
#: Generated protobuf code: not ours to lint.
GENERATED = ROOT / "synergy" / "v1"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _source_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if GENERATED not in path.parents:
                files[_module_name(path)] = path
    return files


MODULES = _source_files()


def _is_package(module: str) -> bool:
    return MODULES.get(module, Path()).name == "__init__.py"


def _imported_names(module: str, tree: ast.AST) -> Iterator[str]:
    """Every module name ``module`` imports (``from p import x`` yields ``p.x`` and ``p``)."""
    package = module if _is_package(module) else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def _with_parents(name: str) -> Iterator[str]:
    parts = name.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])


@functools.cache
def direct_imports(module: str) -> frozenset[str]:
    """Our modules that ``module`` imports itself (package ``__init__`` modules included)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"), str(MODULES[module]))
    out = {parent for name in _imported_names(module, tree) for parent in _with_parents(name)}
    return frozenset(name for name in out if name in MODULES and name != module)


def import_chain(module: str, forbidden: str) -> list[str] | None:
    """The shortest chain of imports from ``module`` to ``forbidden`` (or a submodule), or None."""
    queue: list[list[str]] = [[module]]
    seen = {module}
    while queue:
        chain = queue.pop(0)
        for name in sorted(direct_imports(chain[-1])):
            if name == forbidden or name.startswith(forbidden + "."):
                return [*chain, name]
            if name not in seen:
                seen.add(name)
                queue.append([*chain, name])
    return None


def modules_under(prefix: str) -> list[str]:
    return [m for m in MODULES if m == prefix or m.startswith(prefix + ".")]


def test_the_walk_sees_our_modules() -> None:
    # Guards the rules below against passing vacuously.
    assert {"synergy.cli.main", "synergy.devices", "synergy.hardware.analysis", "agent.runtime"} <= set(MODULES)
    assert "synergy.hardware.model" in direct_imports("synergy.hardware.analysis")
    assert import_chain("synergy.cli.main", "synergy.cli.daemons") is not None


def violations(modules: list[str], forbidden: str) -> list[str]:
    chains = (import_chain(module, forbidden) for module in modules)
    return [" -> ".join(chain) for chain in chains if chain is not None]


def test_library_code_never_imports_the_cli() -> None:
    library = [m for m in MODULES if not (m == "synergy.cli" or m.startswith("synergy.cli."))]
    assert violations(library, "synergy.cli") == []


def test_hardware_never_imports_models() -> None:
    assert violations(modules_under("synergy.hardware"), "synergy.models") == []


def test_the_device_parser_never_imports_the_planner() -> None:
    assert violations(["synergy.devices"], "synergy.planning") == []


def _called_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _hidden_imports(tree: ast.AST) -> Iterator[int]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called_name(node) in ("import_module", "__import__"):
            yield node.lineno


def test_no_import_hidden_behind_importlib() -> None:
    hidden = []
    for path in MODULES.values():
        lines = list(_hidden_imports(ast.parse(path.read_text(encoding="utf-8"), str(path))))
        if lines:
            hidden.append(f"{path.relative_to(ROOT)}:{lines}")
    assert hidden == [], "use a plain import (and break a cycle properly)"
