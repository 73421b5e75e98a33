"""A fixture for tests that run the ``synergy`` command in-process (``synergy.cli.main.main()``).

Its logging setup binds structlog to the stderr of the moment, which capsys closes after the
test, and caches each logger on first use with that configuration: the next test to log would
write to a closed file, and ``structlog.testing.capture_logs`` would see nothing of a logger
first used here. :func:`logs_outlive_the_test` sends those logs to a stream that stays open,
caches nothing, and gives the next tests the configuration they had.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

import pytest
import structlog

from synergy.cli import daemon_main

__all__ = ["logs_outlive_the_test"]

#: Where the logs of in-process `synergy` commands go: never closed.
_LOGS = io.StringIO()


@pytest.fixture
def logs_outlive_the_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    configure = daemon_main.configure_logging
    saved = structlog.get_config()

    def lasting(level: str = "info", *, json: bool | None = None, process: str = "") -> None:
        with contextlib.redirect_stderr(_LOGS):
            configure(level, json=True, process=process)
        structlog.configure(cache_logger_on_first_use=False)

    monkeypatch.setattr(daemon_main, "configure_logging", lasting)
    yield
    structlog.configure(**saved)
