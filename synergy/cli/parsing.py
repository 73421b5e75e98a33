"""The ``synergy`` command line's parser: help that shows defaults, usage errors in one line.

Every parser of the command (subcommands inherit the class) formats help with
:class:`HelpFormatter` — plain text, each option's default shown unless its help already
says it — and reports a usage error as ``synergy COMMAND: MESSAGE (see `synergy COMMAND
--help`)`` with exit status 2 (:mod:`synergy.cli.exits`).
"""

from __future__ import annotations

import argparse
import re
from typing import Any, NoReturn

from synergy.cli.exits import EXIT_USAGE

__all__ = ["HelpFormatter", "Parser"]

#: How a help text says its default itself: "(default 1)", "(default; ...)", "default: X".
_STATES_DEFAULT = re.compile(r"\(default\b|\bdefault[:;]|%\(default\)")


def _unshown(default: object) -> bool:
    """Defaults not worth showing: a flag that is off, an option that is unset or empty."""
    if default is None or default is False or default is argparse.SUPPRESS:
        return True
    return isinstance(default, str | list | tuple) and not default


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help, unless its help states its default already
    ("(default ...", "default: ...") or the default is nothing worth showing (unset, off, empty)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if _unshown(default):
            return text
        if _STATES_DEFAULT.search(text):
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser with :class:`HelpFormatter` and one-line usage errors (exit 2)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")
