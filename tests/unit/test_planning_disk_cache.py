"""The planner's disk cache: a fresh cost model reads what another wrote, plans the same, and
treats a damaged or foreign file as a miss."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from synergy.planning.cost import CostModel
from synergy.planning.disk_cache import PlanningCache, default_cache_dir
from synergy.planning.registry import MethodPlanner, PlanningOptions
from synergy.planning.synthetic import LayerSpec, app, chain_model, device
from synergy.planning.templates import SequenceTable
from synergy.types import DeviceSpec

MODEL = chain_model(
    "chain",
    [LayerSpec(200_000, 60_000, 4_000), LayerSpec(300_000, 90_000, 2_000), LayerSpec(100_000, 50_000, 100)],
    input_bytes=3_000,
)


def space() -> list[DeviceSpec]:
    return [
        device("glasses", sensors=[("camera", 30.0)], outputs=["display"], link="ble5_2m"),
        device("watch", outputs=["display"], link="ble5_2m"),
        device("patch", link="usb_hs"),
    ]


APPS = [app("a", MODEL, "camera", "display"), app("b", MODEL, "camera", "display")]


def plan_with(cache: PlanningCache) -> tuple[object, int, CostModel]:
    cost = CostModel()
    loaded = cache.load(cost, [MODEL])
    outcome = MethodPlanner("synergy", PlanningOptions(), cost).plan(space(), APPS)
    return outcome.plan, loaded, cost


def test_a_fresh_cost_model_reads_the_cache_and_plans_the_same(tmp_path: Path) -> None:
    cache = PlanningCache(tmp_path)
    first, loaded, cost = plan_with(cache)
    assert loaded == 0
    assert cache.save(cost, [MODEL]) == 1
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].stat().st_mode & 0o077 == 0
    again, loaded, _ = plan_with(PlanningCache(tmp_path))
    tables, memo = cost.export_model(MODEL)
    sequence_tables = sum(1 for v in memo.values() if isinstance(v, SequenceTable))
    assert sequence_tables > 0
    assert loaded == len(tables) + sequence_tables
    assert again == first


def test_a_space_of_known_kinds_of_devices_never_reads_the_solved_cuts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synergy.planning import disk_cache

    cache = PlanningCache(tmp_path)
    first, _, cost = plan_with(cache)
    cache.save(cost, [MODEL])
    reads: list[int] = []
    real = disk_cache._unpickled_cuts

    def counted(blob: bytes) -> dict[object, object]:
        reads.append(1)
        return real(blob)

    monkeypatch.setattr(disk_cache, "_unpickled_cuts", counted)
    again, _, _ = plan_with(PlanningCache(tmp_path))
    assert again == first and reads == []  # the sequence tables answered every lookup
    # Another kind of device: its sequences are solved from the stored cuts (read once) and
    # the plan is the one a cold cost model makes.
    bigger = [*space(), device("ring", link="ble_48k")]
    fresh = CostModel()
    PlanningCache(tmp_path).load(fresh, [MODEL])
    from_cache = MethodPlanner("synergy", PlanningOptions(), fresh).plan(bigger, APPS).plan
    assert reads == [1]
    assert from_cache == MethodPlanner("synergy", PlanningOptions(), CostModel()).plan(bigger, APPS).plan


def test_a_malformed_sequence_table_is_a_miss(tmp_path: Path) -> None:
    cache = PlanningCache(tmp_path)
    first, _, cost = plan_with(cache)
    cache.save(cost, [MODEL])
    (path,) = tmp_path.iterdir()
    payload = pickle.loads(path.read_bytes())
    payload["sequences"] = {key: ("not", "a", "table") for key in payload["sequences"]}
    path.write_bytes(pickle.dumps(payload))
    again, loaded, _ = plan_with(PlanningCache(tmp_path))
    assert loaded > 0 and again == first


def test_a_damaged_file_is_a_miss_and_is_rewritten(tmp_path: Path) -> None:
    cache = PlanningCache(tmp_path)
    first, _, cost = plan_with(cache)
    cache.save(cost, [MODEL])
    (path,) = tmp_path.iterdir()
    path.write_bytes(path.read_bytes()[:100])  # truncated mid-write by someone else
    reader = PlanningCache(tmp_path)
    again, loaded, cost2 = plan_with(reader)
    assert loaded == 0 and again == first
    assert any("unreadable" in note for note in reader.notes)
    assert reader.save(cost2, [MODEL]) == 1
    assert plan_with(PlanningCache(tmp_path))[1] > 0


def test_a_file_others_may_write_is_not_read(tmp_path: Path) -> None:
    cache = PlanningCache(tmp_path)
    _, _, cost = plan_with(cache)
    cache.save(cost, [MODEL])
    (path,) = tmp_path.iterdir()
    os.chmod(path, 0o666)
    reader = PlanningCache(tmp_path)
    assert plan_with(reader)[1] == 0
    assert any("not a private regular file" in note for note in reader.notes)


def test_other_cost_parameters_name_other_files(tmp_path: Path) -> None:
    from synergy.planning.cost import CostParameters

    cache = PlanningCache(tmp_path)
    _, _, cost = plan_with(cache)
    cache.save(cost, [MODEL])
    other = CostModel(CostParameters(reload_fixed_s=1e-3))
    assert PlanningCache(tmp_path).load(other, [MODEL]) == 0


def test_the_default_directory_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "synergy" / "planning"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "synergy" / "planning"


def test_only_the_most_recent_files_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from synergy.planning import disk_cache

    monkeypatch.setattr(disk_cache, "MAX_FILES", 2)
    for k in range(3):
        stale = tmp_path / f"old-{k}.pickle"
        stale.write_bytes(b"x")
        os.utime(stale, (1_000 + k, 1_000 + k))
    cache = PlanningCache(tmp_path)
    _, _, cost = plan_with(cache)
    assert cache.save(cost, [MODEL]) == 1
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert len(kept) == 2 and "old-2.pickle" in kept and not any(n in kept for n in ("old-0.pickle", "old-1.pickle"))


def test_entries_are_decoded_when_first_used_and_a_malformed_one_is_a_miss(tmp_path: Path) -> None:
    cache = PlanningCache(tmp_path)
    first, _, cost = plan_with(cache)
    cache.save(cost, [MODEL])
    _, memo = cost.export_model(MODEL)
    some_key = next(k for k, v in memo.items() if isinstance(v, list) and v)
    decoded: list[object] = []

    def decode(raw: object) -> object:
        decoded.append(raw)
        raise ValueError("malformed entry")  # as a foreign or damaged entry would

    fresh = CostModel()
    fresh.import_model(MODEL, [], {some_key: [("not", "a", "cut")]}, decode=decode)
    assert decoded == []  # nothing decoded at import
    assert fresh.memo(MODEL, some_key, lambda: ["recomputed"]) == ["recomputed"]
    assert len(decoded) == 1
    assert fresh.memo(MODEL, some_key, lambda: ["again"]) == ["recomputed"]  # decoded (or redone) once
    again, _, _ = plan_with(PlanningCache(tmp_path))
    assert again == first


def test_a_file_over_its_table_limit_keeps_the_last_plans_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synergy.planning import disk_cache

    cache = PlanningCache(tmp_path)
    _, _, cost = plan_with(cache)
    cache.save(cost, [MODEL])
    (path,) = tmp_path.iterdir()
    first_keys = set(pickle.loads(path.read_bytes())["sequences"])
    monkeypatch.setattr(disk_cache, "MAX_TABLES_PER_MODEL", len(first_keys))
    # Another space: new kinds of (source, target) pairs, so new tables.
    other = [device("ring", sensors=[("camera", 30.0)], outputs=["display"], link="ble_48k"), *space()[1:]]
    fresh = CostModel()
    PlanningCache(tmp_path).load(fresh, [MODEL])
    MethodPlanner("synergy", PlanningOptions(), fresh).plan(other, APPS)
    assert PlanningCache(tmp_path).save(fresh, [MODEL]) == 1
    kept = set(pickle.loads(path.read_bytes())["sequences"])
    assert len(kept) <= len(first_keys) and kept - first_keys  # bounded, and the new plan's are there


def test_an_edited_source_file_changes_the_fingerprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files are named after the planner's source files by name, size and modification time:
    any edit (a new size or a new time) or a new module names other files; other files and
    an untouched tree do not."""
    import types

    from synergy.planning import disk_cache

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    module = package / "costs.py"
    module.write_text("X = 1\n")
    os.utime(module, ns=(1_000_000_000, 1_000_000_000))
    monkeypatch.setattr(disk_cache, "_SOURCE_PACKAGES", (types.SimpleNamespace(__file__=str(package / "__init__.py")),))
    first = disk_cache._source_digest()
    assert disk_cache._source_digest() == first
    (package / "notes.txt").write_text("not source")
    assert disk_cache._source_digest() == first
    os.utime(module, ns=(1_000_000_000, 2_000_000_000))  # same bytes, touched
    touched = disk_cache._source_digest()
    assert touched != first
    module.write_text("X = 22\n")  # a new size
    os.utime(module, ns=(1_000_000_000, 2_000_000_000))
    resized = disk_cache._source_digest()
    assert resized not in (first, touched)
    (package / "extra.py").write_text("")
    assert disk_cache._source_digest() not in (first, touched, resized)
    # And the fingerprint, which names the files, follows it.
    cache = PlanningCache(tmp_path / "cache")
    before = cache.fingerprint(CostModel())
    os.utime(module, ns=(1_000_000_000, 3_000_000_000))
    assert PlanningCache(tmp_path / "cache").fingerprint(CostModel()) != before
