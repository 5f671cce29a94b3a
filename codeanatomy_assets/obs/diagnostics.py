"""Diagnostics events of one run: node start/finish with durations, plan events, routing.

The collector is created per run (never module-level) and handed to lifecycle hooks and the
execution manager; the run manifest reads the per-node timings back from it, and the build
persists every event as a row of ``pipeline_events``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DiagnosticsCollector:
    """Thread-safe list of events; each is a dict with ``event`` and ``time_unix_ms``."""

    events: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, event: str, **fields: Any) -> None:
        payload = {"event": event, "time_unix_ms": int(time.time() * 1000), **fields}
        with self._lock:
            self.events.append(payload)

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of the events so far, in recording order."""
        with self._lock:
            return list(self.events)

    def node_durations(self) -> dict[str, float]:
        """Seconds per finished node, by node name."""
        with self._lock:
            return {e["node"]: e["duration_s"] for e in self.events if e["event"] == "node_finish"}
