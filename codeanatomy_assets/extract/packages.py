"""Package rows from the paths of a commit: every directory that holds Python files.

A directory with ``__init__.py`` (or ``.pyi``) is a regular package; one without is a
namespace package (PEP 420). Ancestors of a package directory are packages too.
"""

from __future__ import annotations

import pyarrow as pa

from codeanatomy_assets.extract.columns import Columns
from codeanatomy_assets.extract.evidence import PACKAGES


def packages_table(paths: list[str]) -> pa.Table:
    """One row per directory that contains (directly or below) a Python file."""
    dirs: set[str] = set()
    with_init: set[str] = set()
    for path in paths:
        parent, _, name = path.rpartition("/")
        if name in ("__init__.py", "__init__.pyi"):
            with_init.add(parent)
        while parent:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    rows = Columns(PACKAGES)
    for d in sorted(dirs):
        parent, _, name = d.rpartition("/")
        rows.append(
            path=d,
            parent_path=parent,
            name=name,
            qualified_name=d.replace("/", "."),
            is_namespace=d not in with_init,
        )
    return rows.to_table()
