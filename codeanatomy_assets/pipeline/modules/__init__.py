"""Static Hamilton modules, in load order: inputs, dataloaders.

The plan-specific modules (``execution_plan`` values and one node per task) are synthesized
by ``pipeline.task_module_builder`` and appended by the driver factory.
"""

from __future__ import annotations

from types import ModuleType


def static_modules() -> list[ModuleType]:
    from codeanatomy_assets.pipeline.modules import dataloaders, inputs

    return [inputs, dataloaders]
