"""The coordinator's live web dashboard: ``synergy coordinator --http-bind HOST:PORT``.

:mod:`~coordinator.dashboard.snapshot` turns the coordinator's state into JSON-ready data (a
pure function); :mod:`~coordinator.dashboard.server` serves it, and the page in ``static/``,
over HTTP with aiohttp. What it shows, the endpoints and the security notes: docs/dashboard.md.
"""
