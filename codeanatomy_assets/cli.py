"""``codeanatomy``: build one commit's CPG into the lake, query the lake with SQL.

    codeanatomy build REPO [--commit REV] [--lake DIR] [--repo-id ID] [--workers N] [--mode M]
                      [--dask-address tcp://HOST:PORT] [--cache | --no-cache] [--file-timeout S]
    codeanatomy query "SQL" [--lake DIR] [--format table|csv|json]
    codeanatomy materialize REPO [--commit REV] [--lake DIR] [--repo-id ID] [--log-level L]
                            (through Dagster)

Exit codes: 0 when the build ran (per-file errors are data, not failures); 2 when it cannot
run (not a git repository, unknown revision, unwritable lake, bad option), with the reason on
stderr. Heavy imports happen inside the commands so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_LAKE = ".codeanatomy/lake"
DEFAULT_FILE_TIMEOUT_S = 20.0  # extract.runner's default, repeated so --help stays import-free


def _lake_default() -> str:
    return os.environ.get("CODEANATOMY_LAKE", DEFAULT_LAKE)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codeanatomy", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the CPG of one commit into the lake")
    build.add_argument("repo", type=Path)
    build.add_argument("--commit", default="HEAD", help="revision to build (default HEAD)")
    build.add_argument(
        "--lake", default=None, help=f"lake root (default $CODEANATOMY_LAKE or {DEFAULT_LAKE})"
    )
    build.add_argument("--repo-id", default=None, help="repository id (default: directory name)")
    build.add_argument("--workers", type=int, default=None, help="extraction processes")
    build.add_argument(
        "--mode",
        default="parallel",
        help="execution mode: serial, parallel (local processes) or remote (Dask)",
    )
    build.add_argument(
        "--dask-address",
        default=None,
        help="remote mode: Dask scheduler (default: a local cluster for this build)",
    )
    build.add_argument(
        "--cache", action="store_true", help="also use Hamilton's result cache (opt-in; large)"
    )
    build.add_argument(
        "--no-cache",
        action="store_true",
        help="no caches at all: not the evidence cache, not an earlier commit's partition",
    )
    build.add_argument("--max-file-bytes", type=int, default=8 * 1024 * 1024)
    build.add_argument(
        "--file-timeout",
        type=float,
        default=DEFAULT_FILE_TIMEOUT_S,
        metavar="SECONDS",
        help=f"seconds one file may take (default {DEFAULT_FILE_TIMEOUT_S:g}; 0: no limit)",
    )
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    query = sub.add_parser("query", help="run SQL over every table of the lake")
    query.add_argument("sql")
    query.add_argument("--lake", default=None)
    query.add_argument("--format", choices=("table", "csv", "json"), default="table")
    query.add_argument("--limit", type=int, default=200, help="rows printed in table format")
    mat = sub.add_parser("materialize", help="materialize every asset of a commit through Dagster")
    mat.add_argument("repo", type=Path)
    mat.add_argument("--commit", default="HEAD")
    mat.add_argument("--lake", default=None)
    mat.add_argument("--repo-id", default=None)
    mat.add_argument("--workers", type=int, default=None, help="extraction processes")
    mat.add_argument(
        "--mode",
        default="parallel",
        help="execution mode: serial, parallel (local processes) or remote (Dask)",
    )
    mat.add_argument("--dask-address", default=None, help="remote mode: Dask scheduler")
    mat.add_argument(
        "--log-level",
        default="INFO",
        help="least level of the run's log lines printed (DEBUG prints every Dagster event; "
        "the instance stores them all either way)",
    )
    return parser


def _fail(message: str) -> int:
    print(f"codeanatomy: error: {message}", file=sys.stderr)
    return 2


def _build(args: argparse.Namespace) -> int:
    from codeanatomy_assets.pipeline.execution import build_commit
    from codeanatomy_assets.pipeline.request import BuildRequest

    _freeze_heap(args)
    request = BuildRequest(
        repo_path=args.repo,
        lake_root=args.lake or _lake_default(),
        commit=args.commit,
        repo_id=args.repo_id,
        workers=args.workers,
        execution_mode=args.mode,
        dask_address=args.dask_address,
        use_cache=args.cache and not args.no_cache,
        use_evidence_cache=not args.no_cache,
        reuse_partitions=not args.no_cache,
        max_file_bytes=args.max_file_bytes,
        file_timeout_s=args.file_timeout or None,
    )
    bar = None

    def on_files(total: int) -> None:
        nonlocal bar
        if not args.no_progress and sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=total, unit="file", desc="extract", file=sys.stderr)

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n)

    result = build_commit(request, progress=progress, on_files=on_files)
    if bar is not None:
        bar.close()
    print(f"repo_id   {result.repo_id}")
    print(f"commit    {result.commit}")
    print(f"files     {result.file_count}")
    print(f"errors    {result.error_count}")
    for name in ("cpg_nodes", "cpg_edges"):
        write = result.outputs.get(name)
        if write is None:
            continue
        print(f"{name:<9} {write.rows}")
        for kind, count in (write.counts_by_kind or {}).items():
            print(f"  {kind:<15} {count}")
    if result.reused_from:
        print(f"reused    {result.reused_from} (same Python files: its partition linked)")
    print(f"seconds   {result.duration_s:.2f}")
    print(f"lake      {request.lake_root}")
    return 0


def _query(args: argparse.Namespace) -> int:
    from codeanatomy_assets.cpg.functions import session_context
    from codeanatomy_assets.storage.arrow_types import plain_strings
    from codeanatomy_assets.storage.lake import Lake, register_lake_tables

    lake = Lake(args.lake or _lake_default())
    ctx = session_context(bounded=False)
    names = register_lake_tables(ctx, lake)
    if not names:
        return _fail(f"no Delta tables under {lake.root!r}: run `codeanatomy build` first")
    try:
        table = plain_strings(ctx.sql(args.sql).to_arrow_table())
    except Exception as exc:  # DataFusion raises plain Exceptions for SQL errors
        return _fail(f"query failed: {exc}")
    if args.format == "json":
        import json

        for row in table.to_pylist():
            print(json.dumps(row, default=str))
    elif args.format == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, sys.stdout.buffer)
    else:
        _print_table(table.slice(0, args.limit).to_pylist(), table.column_names)
        if table.num_rows > args.limit:
            print(f"({table.num_rows} rows, {args.limit} shown)")
    return 0


def _print_table(rows: list[dict[str, object]], columns: list[str]) -> None:
    cells = [[("" if r[c] is None else str(r[c])) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _materialize(args: argparse.Namespace) -> int:
    if args.mode != "remote":
        # The build runs on a thread of Dagster's step, where extraction goes to worker
        # processes (a thread cannot take the file time limit's timer): their server imports
        # on the other core while this process imports Dagster, not after.
        from codeanatomy_assets.extract.runner import ensure_workers_server

        ensure_workers_server()
    from codeanatomy_assets.assets.local_run import failure_message, materialize_partition

    _freeze_heap(args)
    result = materialize_partition(
        repo_path=args.repo,
        repo_id=args.repo_id,
        commit=args.commit,
        lake_root=args.lake or _lake_default(),
        execution_mode=args.mode,
        workers=args.workers,
        dask_address=args.dask_address,
        raise_on_error=False,
        log_level=args.log_level.upper(),
    )
    if not result.success:
        return _fail(f"materialization failed: {failure_message(result)}")
    events = result.get_asset_materialization_events()
    partition = result.dagster_run.tags.get("dagster/partition")
    print(f"materialized {len(events)} assets for partition {partition} through Dagster")
    return 0


def _freeze_heap(args: argparse.Namespace) -> None:
    """When the command owns its process, move every object alive now out of the garbage
    collector's reach.

    Called once the imports are done and again on the way out. The modules of Dagster,
    DataFusion, pyarrow and Hamilton are a few hundred thousand objects that live as long as
    the process: each full collection during a build walks them again (0.2 s in a small
    Dagster run), and the interpreter's last collection at exit walks them once more
    (0.6 s). Frozen objects are still freed by reference counting; only cycles among them
    wait for the process to end, which ends them anyway. A caller that goes on (a test
    calling ``main``) keeps its collector as it was.
    """
    if args.own_process:
        gc.freeze()


def main(argv: Sequence[str] | None = None, *, own_process: bool = False) -> int:
    """Run one command; ``own_process``: the process ends with it (the console script)."""
    args = _parser().parse_args(argv)
    args.own_process = own_process
    from codeanatomy_assets.pipeline.request import ConfigError
    from codeanatomy_assets.repo.git import RepositoryError, RevisionError
    from codeanatomy_assets.storage.lake import LakeError

    try:
        if args.command == "build":
            return _build(args)
        if args.command == "query":
            return _query(args)
        return _materialize(args)
    except (ConfigError, RepositoryError, RevisionError, LakeError) as exc:
        return _fail(str(exc))
    finally:
        _freeze_heap(args)


def console() -> None:
    """The ``codeanatomy`` console script."""
    raise SystemExit(main(own_process=True))


if __name__ == "__main__":
    console()
