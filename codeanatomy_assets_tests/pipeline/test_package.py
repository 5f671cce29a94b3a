"""Importing the pipeline: Hamilton loads no dataframe extension."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_pipeline_loads_no_hamilton_extension():
    """Hamilton would import an extension per installed dataframe library (dask's costs
    ``dask.dataframe`` and ``dask.array``, 0.4 s of every build's start); the pipeline turns
    autoloading off before its first Hamilton decorator import."""
    probe = (
        "import sys, codeanatomy_assets.pipeline.execution; "
        "print(sorted(m for m in sys.modules if m.startswith(('dask', 'hamilton.plugins'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    # The one plugin module the pipeline imports itself (``pipeline.node_threads``): a thread
    # pool adapter, which imports no dataframe library.
    assert out.strip() in ("[]", "['hamilton.plugins', 'hamilton.plugins.h_threadpool']")
