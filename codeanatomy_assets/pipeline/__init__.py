"""Hamilton owns one run: a plan-scoped driver, synthesized task nodes, hooks, outputs.

Entry point: ``pipeline.execution.build_commit``. Importing this package imports nothing heavy.
"""
