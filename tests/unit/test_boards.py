"""Board profiles: the presets' derived sizes, and boards described in files."""

from __future__ import annotations

from pathlib import Path

import pytest

from synergy.errors import InvalidArgument, NotFound
from synergy.hardware.boards import MAX78000, MAX78002, load_board


def test_preset_memories_match_the_data_sheet_figures() -> None:
    assert MAX78000.weight_bytes == 442_368
    assert MAX78002.weight_bytes == 2_396_160
    assert MAX78000.bias_bytes == 2_048 and MAX78002.bias_bytes == 8_192
    assert MAX78000.data_bytes == 512 * 1024 and MAX78002.data_bytes == 1280 * 1024


def test_board_file_with_a_base_preset(tmp_path: Path) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text("base: max78000\nname: max78000-25mhz\ncnn_clock_hz: 25000000\n")
    board = load_board(str(path))
    assert board.name == "max78000-25mhz" and board.cnn_clock_hz == 25e6
    assert board.weight_words_per_processor == MAX78000.weight_words_per_processor


def test_board_file_errors_name_the_problem(tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("base: max78000\ncnn_clok_hz: 1\n")
    with pytest.raises(InvalidArgument, match=r"unknown field\(s\) \['cnn_clok_hz'\]"):
        load_board(str(typo))
    partial = tmp_path / "partial.json"
    partial.write_text('{"name": "x"}')
    with pytest.raises(InvalidArgument, match="missing field"):
        load_board(str(partial))
    with pytest.raises(NotFound, match="unknown board 'max99999'"):
        load_board("max99999")
