"""Protos stop at the edge: ``*_pb2`` is imported only by the wire layer and the servicers.

DESIGN.md §9: cores, the SDK's public types and the CLI work on our dataclasses; only
``synergy/wire/`` (converters and transports), the two servicer modules and the generated
code itself may import protobuf modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("synergy", "coordinator", "agent")
ALLOWED = ("synergy/v1/", "synergy/wire/", "coordinator/servicers.py", "agent/servicer.py")


def _proto_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = [module] + [f"{module}.{a.name}" for a in node.names]
        else:
            continue
        found += [n for n in names if n.endswith(("_pb2", "_pb2_grpc")) or n == "synergy.v1"]
    return found


def test_no_proto_imports_outside_the_edges() -> None:
    offenders = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(ALLOWED):
                continue
            imports = _proto_imports(path)
            if imports:
                offenders[relative] = imports
    assert offenders == {}, f"protobuf imported outside the edge modules: {offenders}"


def test_the_check_itself_sees_a_proto_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from synergy.v1 import common_pb2\nimport grpc_health.v1.health_pb2 as h\n")
    assert _proto_imports(sample) == ["synergy.v1", "synergy.v1.common_pb2", "grpc_health.v1.health_pb2"]
