"""Hamilton owns one run: a plan-scoped driver, synthesized task nodes, hooks, outputs.

Entry point: ``pipeline.execution.build_commit``. Importing this package imports nothing heavy.
"""

from hamilton import registry as _hamilton_registry

# Hamilton imports, at its first decorator import, an extension for every dataframe library
# installed beside it: dask is (the remote mode), so every run paid for ``dask.dataframe``
# and ``dask.array`` (0.42 s of a build's start). The nodes here pass Arrow tables and use no
# extension. This is Hamilton's documented switch: an environment variable, so processes this
# one starts inherit it.
_hamilton_registry.disable_autoload()
