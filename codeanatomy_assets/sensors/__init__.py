"""Sensors over watched git repositories."""

from codeanatomy_assets.sensors.commits import CommitCursor, build_commit_sensor

__all__ = ["CommitCursor", "build_commit_sensor"]
