"""Synergy: compose the tiny AI accelerators worn on one body into one virtual computer."""

__version__ = "0.1.0"
