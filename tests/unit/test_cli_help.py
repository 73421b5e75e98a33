"""Every command's help: plain text (no docstring markup) and every option's default shown."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest
from cli_logs import logs_outlive_the_test

from synergy.cli import bench_cmd
from synergy.cli.main import build_parser, main
from synergy.cli.parsing import HelpFormatter

pytestmark = pytest.mark.usefixtures(logs_outlive_the_test.__name__)


def parsers(parser: argparse.ArgumentParser, path: str = "synergy") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, f"{path} {name}")


ALL = list(parsers(build_parser()))


def _shows_default(action: argparse.Action) -> bool:
    default = action.default
    if default is None or default is False or default is argparse.SUPPRESS:
        return True  # nothing to show: unset or off
    if isinstance(default, str | list | tuple) and not default:
        return True
    help_text = HelpFormatter("x")._get_help_string(action) or ""
    return "(default" in help_text or "default:" in help_text or "default;" in help_text


@pytest.mark.parametrize(("path", "parser"), ALL, ids=[p for p, _ in ALL])
def test_help_shows_every_default_in_plain_text(path: str, parser: argparse.ArgumentParser) -> None:
    text = parser.format_help()
    for markup in ("``", ":mod:", ":class:", ":func:", ":data:"):
        assert markup not in text, f"`{path} --help` prints docstring markup {markup!r}"
    hidden = [a.option_strings[0] for a in parser._actions if a.option_strings and not _shows_default(a)]
    assert not hidden, f"`{path} --help` does not show the default of {hidden}"


def test_bench_help_is_plain(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert "``" not in out and ":mod:" not in out and "--quick" in out


def test_the_bench_table_has_a_legend(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """`synergy bench` prints the summary table and, under it, what its columns mean."""
    monkeypatch.setattr(bench_cmd, "run_bench", lambda **_: object())
    monkeypatch.setattr(bench_cmd, "summarize", lambda _: {})
    monkeypatch.setattr(bench_cmd, "write_outputs", lambda *_: [])
    monkeypatch.setattr(bench_cmd, "format_summary", lambda _: "method  thr x geo  (mean)  latency  J/inf")
    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == bench_cmd.LEGEND
    assert "thr x geo" in bench_cmd.LEGEND and len(bench_cmd.LEGEND) < 240
