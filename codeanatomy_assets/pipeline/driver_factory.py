"""Build Hamilton drivers per execution plan, cached by plan signature and config fingerprint.

A driver is the compiled DAG: building one costs the plan's synthesis and Hamilton's graph
construction, so a process that builds many partitions (a Dagster run, the benchmark) reuses
it. The cache lives in the factory object a caller owns, never in a module global.

Config keys: ``execution_mode`` (``parallel`` runs nodes on threads, ``pipeline.node_threads``;
``remote`` adds Hamilton's dynamic execution with the plan execution manager of
``pipeline.remote``), ``remote_cost_threshold``, and ``cache_dir``
(Hamilton's cache there, with the policy of ``pipeline.cache``; None: no cache).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hamilton import driver

from codeanatomy_assets.pipeline.cache import cache_adapter
from codeanatomy_assets.pipeline.hooks import DiagnosticsHook
from codeanatomy_assets.pipeline.modules import static_modules
from codeanatomy_assets.pipeline.node_threads import NodeThreads
from codeanatomy_assets.pipeline.remote import PlanExecutionManager
from codeanatomy_assets.pipeline.request import DEFAULT_REMOTE_COST_THRESHOLD
from codeanatomy_assets.pipeline.task_module_builder import (
    build_execution_plan_module,
    build_task_execution_module,
    module_names,
)
from codeanatomy_assets.plan.execution_plan import ExecutionPlan, compile_execution_plan

DRIVER_CACHE_SIZE = 4


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """Stable hash of the driver config (JSON, sorted keys)."""
    blob = json.dumps({"version": 1, "config": dict(config)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass
class DriverFactory:
    """Owns the compiled plan and a small LRU of drivers keyed by plan + config."""

    _plan: ExecutionPlan | None = None
    _drivers: OrderedDict[str, driver.Driver] = field(default_factory=OrderedDict)
    builds: int = 0

    def plan(self) -> ExecutionPlan:
        if self._plan is None:
            self._plan = compile_execution_plan()
        return self._plan

    def driver(self, config: Mapping[str, Any] | None = None) -> driver.Driver:
        """The driver for the current plan and ``config`` (built on first use)."""
        plan = self.plan()
        config = dict(config or {})
        key = f"{plan.signature}:{config_fingerprint(config)}"
        cached = self._drivers.get(key)
        if cached is not None:
            self._drivers.move_to_end(key)
            return cached
        names = module_names(plan.signature)
        modules = [
            *static_modules(),
            build_execution_plan_module(plan, names["plan"]),
            build_task_execution_module(plan, names["tasks"]),
        ]
        hook = DiagnosticsHook()
        builder = driver.Builder().with_modules(*modules).with_config(config).with_adapters(hook)
        cache_dir = config.get("cache_dir")
        if cache_dir:
            builder = builder.with_adapters(cache_adapter(Path(cache_dir)))
        if config.get("execution_mode") == "parallel":
            builder = builder.with_adapters(NodeThreads())
        if config.get("execution_mode") == "remote":
            threshold = float(config.get("remote_cost_threshold", DEFAULT_REMOTE_COST_THRESHOLD))
            manager = PlanExecutionManager(contexts=hook.context, cost_threshold=threshold)
            builder = builder.enable_dynamic_execution(allow_experimental_mode=True)
            builder = builder.with_execution_manager(manager)
        built = builder.build()
        self.builds += 1
        self._drivers[key] = built
        while len(self._drivers) > DRIVER_CACHE_SIZE:
            self._drivers.popitem(last=False)
        return built
