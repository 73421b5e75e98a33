"""End-to-end tests: `make e2e` (compose and network namespaces), never `make test`.

pyproject's testpaths are tests/unit and tests/integration, so a plain `pytest` never collects
this directory; `make e2e-compose` and `make e2e-netns` name their file.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Registered here, not in pyproject: the mark belongs to this directory alone, and an
    # unknown mark is an error under the suite's `filterwarnings = error`.
    config.addinivalue_line("markers", "e2e: end to end on this machine (Docker or network namespaces; root)")
