"""Shared words: defaults that daemons, clients, the demo and the CLI must agree on.

One place for each, so the coordinator's default bind address and the address clients dial
by default cannot drift apart. Plain values only: environment overrides (``SYNERGY_*``) are
applied by the command line, never at import.
"""

from __future__ import annotations

__all__ = ["DEFAULT_COORDINATOR", "DEFAULT_MQTT_PREFIX", "DEFAULT_PLANNER"]

#: host:port the coordinator binds by default, and the address clients and agents dial.
DEFAULT_COORDINATOR = "127.0.0.1:50051"

#: First level of every MQTT topic (``<prefix>/devices/<id>/state``, ``<prefix>/apps/...``).
DEFAULT_MQTT_PREFIX = "synergy"

#: The planning method the coordinator, the demo and ``synergy plan`` use unless told otherwise.
DEFAULT_PLANNER = "synergy"
