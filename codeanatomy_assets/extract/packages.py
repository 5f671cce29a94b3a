"""Package rows from the paths of a commit: every directory that holds Python files.

A directory with ``__init__.py`` (or ``.pyi``) is a regular package; one without is a
namespace package (PEP 420). Ancestors of a package directory are packages too.

Import roots. Module names are relative to the directory Python would import them from,
which the paths alone decide (per commit, so the per-blob evidence stays path-based and the
views rewrite names, see ``cpg.views``): the repository root, plus every directory that is
not a regular package, lies inside no regular package, and either is named ``src`` (the
src layout) or sits at depth two or more and directly holds a regular package (a project
in a monorepo: ``libs/mlib/mlib/__init__.py`` makes ``libs/mlib`` a root). A top-level
directory without ``__init__.py`` stays a namespace package (``ns/sub/mod.py`` is
``ns.sub.mod``), since that is how it imports from the repository root. A file's module name
is relative to its nearest root.
"""

from __future__ import annotations

import pyarrow as pa

from codeanatomy_assets.extract.columns import Columns
from codeanatomy_assets.extract.evidence import PACKAGES


def import_roots(dirs: set[str], regular: set[str]) -> set[str]:
    """Directories (besides the repository root) that module names are relative to."""

    def inside_regular(d: str) -> bool:
        while d:
            if d in regular:
                return True
            d = d.rpartition("/")[0]
        return False

    holds_regular = {d.rpartition("/")[0] for d in regular if "/" in d}
    return {
        d
        for d in dirs
        if not inside_regular(d)
        and (d.rpartition("/")[2] == "src" or (d.count("/") >= 1 and d in holds_regular))
    }


def _layout(paths: list[str]) -> tuple[set[str], set[str], set[str]]:
    """The directories holding Python files, the regular packages, and the import roots."""
    dirs: set[str] = set()
    with_init: set[str] = set()
    for path in paths:
        parent, _, name = path.rpartition("/")
        if name in ("__init__.py", "__init__.pyi"):
            with_init.add(parent)
        while parent:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    return dirs, with_init, import_roots(dirs, with_init)


def _nearest(path: str, roots: set[str]) -> str:
    return max((r for r in roots if path.startswith(r + "/")), key=len, default="")


def file_roots(paths: list[str]) -> dict[str, str]:
    """The import root each of ``paths`` is named from ('' for the repository root): what
    the views' ``file_roots`` finds in the package rows, known here without them."""
    roots = _layout(paths)[2]
    return {path: _nearest(path, roots) for path in paths}


def packages_table(paths: list[str]) -> pa.Table:
    """One row per directory that contains (directly or below) a Python file."""
    dirs, with_init, roots = _layout(paths)
    rows = Columns(PACKAGES)
    for d in sorted(dirs):
        parent, _, name = d.rpartition("/")
        root = _nearest(d, roots)
        rows.append(
            path=d,
            parent_path=parent,
            name=name,
            qualified_name=(d[len(root) + 1 :] if root else d).replace("/", "."),
            is_namespace=d not in with_init,
            is_import_root=d in roots,
        )
    return rows.to_table()
