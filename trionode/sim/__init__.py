"""Deterministic whole-network simulation (issue #9)."""
