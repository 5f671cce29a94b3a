"""codeanatomy_assets: Python repositories to Code Property Graphs stored as Delta tables.

The package is layered (see DESIGN.md): Dagster code on top, then ``pipeline`` (Hamilton),
``plan`` (DataFusion plans to execution plans), ``cpg``/``normalize``/``extract``, and at the
bottom ``repo`` (git objects), ``storage`` (Delta Lake) and ``obs``. Importing this package does
no work: no Dagster, Hamilton or DataFusion import happens here.
"""

__version__ = "0.1.0"
