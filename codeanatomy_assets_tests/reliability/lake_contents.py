"""Read back everything a lake holds, for tests that check what did (not) reach it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from datafusion import SessionContext
from deltalake import DeltaTable


def delta_tables(lake_root: str | Path) -> dict[str, Path]:
    """Every Delta table under the root, by its path relative to the root (caches included)."""
    root = Path(lake_root)
    return {
        log.parent.relative_to(root).as_posix(): log.parent
        for log in sorted(root.rglob("_delta_log"))
        if log.is_dir()
    }


def read_table(path: Path) -> tuple[int, pa.Table]:
    """A table's current version and all its rows, read through DataFusion's Delta provider."""
    dt = DeltaTable(str(path))
    ctx = SessionContext()
    ctx.register_table("t", dt)
    return int(dt.version()), ctx.sql("SELECT * FROM t").to_arrow_table()


def all_text(lake_root: str | Path) -> str:
    """Every value of every table, as one string to search for leaked content."""
    parts = []
    for name, path in delta_tables(lake_root).items():
        _, table = read_table(path)
        parts.append(f"{name}\n{table.to_pylist()!r}")
    return "\n".join(parts)
