"""What one build shares with its hooks and nodes: collector, telemetry, the remote backend,
the scratch space.

A ``RunContext`` is passed to Hamilton as the input ``run_context`` (no node depends on it);
the lifecycle hook binds it to Hamilton's run id and makes it current for the run. Where a
task's heavy work runs is a second, narrower context: ``placement()`` is ``remote`` only while
the remote executor chosen by the execution manager runs that task (``placed``), so node code
never decides routing itself, it only asks where it was placed.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from codeanatomy_assets.obs.diagnostics import DiagnosticsCollector
from codeanatomy_assets.obs.otel import Telemetry
from codeanatomy_assets.storage.scratch import Scratch

if TYPE_CHECKING:
    from codeanatomy_assets.pipeline.remote import RemoteBackend
    from codeanatomy_assets.pipeline.request import OutputWrite

_CURRENT: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "codeanatomy_run", default=None
)
_PLACEMENT: contextvars.ContextVar[str] = contextvars.ContextVar(
    "codeanatomy_placement", default="local"
)


@dataclass(eq=False)
class RunContext:
    """Run-scoped handles; created by ``build_commit`` for one build, never shared."""

    run_id: str
    repo_id: str
    commit: str
    execution_mode: str
    collector: DiagnosticsCollector
    telemetry: Telemetry
    remote: RemoteBackend | None = None
    scratch: Scratch | None = None
    run_span: trace.Span | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    # Told of each output once its Delta commit is done (``build_commit(on_output=...)``).
    on_output: Callable[[OutputWrite], None] | None = None

    def span_attributes(self) -> dict[str, Any]:
        """Attributes every span of the run carries, so one run is one filter in a trace UI."""
        return {
            "codeanatomy.run_id": self.run_id,
            "codeanatomy.repo_id": self.repo_id,
            "codeanatomy.commit": self.commit,
            "codeanatomy.execution_mode": self.execution_mode,
        }


def current_run() -> RunContext | None:
    """The build whose Hamilton graph is executing in this context, if any."""
    return _CURRENT.get()


def run_scratch() -> Scratch:
    """Where the current build spills tables (``storage.scratch``); outside a build, a scratch
    of its own that goes when the last table spilled there does."""
    context = _CURRENT.get()
    if context is None:
        return Scratch()
    if context.scratch is None:
        context.scratch = Scratch()
    return context.scratch


def enter_run(context: RunContext) -> contextvars.Token[RunContext | None]:
    """Make ``context`` current (the hook, at graph start); ``exit_run`` undoes it."""
    return _CURRENT.set(context)


def exit_run(token: contextvars.Token[RunContext | None]) -> None:
    """Restore the context that was current before ``enter_run`` (at graph end)."""
    _CURRENT.reset(token)


def placement() -> str:
    """``remote`` while the remote executor runs the current task, else ``local``."""
    return _PLACEMENT.get()


@contextmanager
def placed(where: str) -> Iterator[None]:
    """Run the enclosed task with placement ``where`` (set by the task executors)."""
    token = _PLACEMENT.set(where)
    try:
        yield
    finally:
        _PLACEMENT.reset(token)
