"""structlog, configured once per process from ``main()``.

JSON lines when stderr is not a terminal (daemons under a supervisor, tests, containers),
coloured key=value lines on a terminal. Events are snake_case facts with key/value fields;
device, app and epoch ids are bound as context by the components that own them.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

__all__ = ["configure_logging"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure_logging(level: str = "info", *, json: bool | None = None, process: str = "") -> None:
    """Set up structlog for this process. ``json=None`` picks JSON unless stderr is a TTY."""
    if level.lower() not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}")
    use_json = (not sys.stderr.isatty()) if json is None else json
    if os.environ.get("SYNERGY_LOG_FORMAT") in ("json", "console"):
        use_json = os.environ["SYNERGY_LOG_FORMAT"] == "json"
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if process:
        processors.insert(0, _bind_process(process))
    if use_json:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level.lower()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def _bind_process(name: str) -> structlog.typing.Processor:
    def add_process(
        _logger: structlog.typing.WrappedLogger, _method: str, event: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        event.setdefault("process", name)
        return event

    return add_process
