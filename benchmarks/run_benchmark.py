"""The benchmark that keeps us honest: this Python's standard library, commit by commit.

    .venv/bin/python benchmarks/run_benchmark.py [--out benchmarks/results/latest.json]

In one run, on one machine: (1) the stdlib (``sysconfig.get_paths()["stdlib"]`` without
site-packages) becomes a git repository in a temp directory; (2) baseline: ``ast.parse`` of
every file in one process; (3) ``codeanatomy build`` of that commit; (4) a commit changing one
file, built; (5) a commit changing 1 % of the files, built (each of these two built
``--repeats`` times, default 3, on the lake as it was before: the median counts, the spread is
printed); (6) a commit changing no Python
file, built (it links the previous partition: ``pipeline.reuse``); (7) the first commit's full
build again, by the CLI and through Dagster (every asset of the partition and its asset checks,
in process), in pairs. Each figure is wall time, CPU time and peak RSS of
the whole process tree; ratios are printed against the same run's baseline and full build, and
everything is written as JSON.

The machine's speed drifts (here by 10-20 % within minutes), so the figures that are compared
are measured next to each other: the baseline again right after the full build (the ratio uses
their mean; ``baseline_again_over_first`` shows the drift), and the first commit's full build
by the CLI and through Dagster in alternating pairs (``--dagster-pairs``, default 3), each on a
fresh lake and Dagster home. Each home is set up as the quick start sets one up (the project's
``dagster.yaml``) and its storage created (``dagster instance migrate``) before its timed run:
an instance exists before its runs, and its first-ever schema creation (about 0.9 s on SQLite)
is not a cost of materializing. The overhead is the median of the pairs' differences; the pairs'
spread is printed too, since one pair's noise can exceed the 2 s target. The Dagster run is one
step (``cpg``: the build, with each output's materialization and checks reported as it lands);
its time outside that step (imports, the instance, the run's own events) is printed as well.
Dagster's fixed cost is also measured where the noise is small: CLI and Dagster builds of the
stdlib's ``email`` package alternating (``--small-pairs``, default 5). For the full, one-file
and 1 % builds it also prints where the time went, from each build's run manifest: the
evidence node, the intermediate views, the written outputs, the five slowest nodes, how many
buckets of each map the build rewrote rather than linked, and how many groups of file-local
rows of the flat edges and properties (and over how many files) it computed.
Targets (issue 6, not asserted):
full <= 4x baseline, one-file commit <= 5 % of full, 1 % commit <= 15 %, peak RSS <= 2 GB,
Dagster <= CLI + 2 s.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]


@dataclass
class Measure:
    """One measured step: wall and CPU seconds, peak RSS (MB) of the whole process tree."""

    name: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float


def _tree_sample(pid: int, cpu_ticks: dict[int, int]) -> int:
    """Resident memory (KB) of ``pid`` and all its descendants, from /proc; records each
    process's own CPU ticks (user + system) in ``cpu_ticks``, by pid."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu_ticks[p] = int(fields[11]) + int(fields[12])
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue
    return total


def run_measured(name: str, cmd: list[str], env: dict[str, str] | None = None) -> Measure:
    """Run ``cmd``, sampling the tree every 100 ms; fail loudly if it fails.

    CPU is the sum over every process of the tree of its last sampled user + system time:
    the extraction workers are children of multiprocessing's fork server, not of the build,
    so the build's ``RUSAGE_CHILDREN`` never sees them (it reported 99 CPU-s for a full
    build that used about 190). What a process spends in its last 100 ms is missed.

    The disk's writeback of what came before (the previous build's lake, a lake's copy) is
    done first: it made the first of three builds of the same commit 0.5 s slower.
    """
    os.sync()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = 0
    cpu_ticks: dict[int, int] = {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_sample(proc.pid, cpu_ticks))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - start
    cpu = sum(cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")
    if proc.returncode != 0:
        sys.stdout.write(out.decode(errors="replace"))
        raise SystemExit(f"{name}: exit {proc.returncode}")
    return Measure(name, wall, cpu, peak / 1024)


def dagster_step_seconds(dagster_home: Path) -> dict[str, float]:
    """Wall seconds of each step of the instance's latest run, from its event log."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    run = instance.get_runs(limit=1)[0]
    return {
        s.step_key: s.end_time - s.start_time
        for s in instance.get_run_step_stats(run.run_id)
        if s.start_time is not None and s.end_time is not None
    }


def make_stdlib_repo(target: Path, package: str | None = None) -> tuple[Path, int]:
    """Copy the stdlib's Python files (or one package's) into a new git repository; returns
    it and the file count."""
    src = Path(sysconfig.get_paths()["stdlib"])
    count = 0
    for path in sorted((src / package if package else src).rglob("*.py")):
        rel = path.relative_to(src)
        if rel.parts[0] == "site-packages" or "__pycache__" in rel.parts or path.is_symlink():
            continue
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        count += 1
    subprocess.run([*_GIT, "init", "-q", "-b", "main"], cwd=target, check=True)
    subprocess.run([*_GIT, "add", "-A"], cwd=target, check=True)
    subprocess.run([*_GIT, "commit", "-q", "-m", "stdlib"], cwd=target, check=True)
    return target, count


def baseline(repo: Path, name: str = "baseline_ast_parse") -> Measure:
    """``ast.parse`` of every file in this process: the floor any extractor pays."""
    files = sorted(repo.rglob("*.py"))
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for path in files:
        try:
            ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue
    wall = time.perf_counter() - start
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return Measure(name, wall, cpu, ru1.ru_maxrss / 1024)


def commit_change(repo: Path, count: int, message: str) -> None:
    """Append a function to ``count`` files spread evenly over the repository, and commit."""
    files = sorted(p for p in repo.rglob("*.py") if ".git" not in p.parts)
    step = max(len(files) // count, 1)
    for path in files[::step][:count]:
        with path.open("a", encoding="utf-8", errors="surrogateescape") as f:
            f.write(f"\n\ndef _bench_{int(time.time() * 1000)}(x):\n    return x + 1\n")
    subprocess.run([*_GIT, "commit", "-q", "-am", message], cwd=repo, check=True)


def commit_docs(repo: Path) -> None:
    """Commit a change to no Python file (a README), as most commits of a busy repository."""
    (repo / "README.bench.md").write_text(f"benchmark run {time.time()}\n")
    subprocess.run([*_GIT, "add", "README.bench.md"], cwd=repo, check=True)
    subprocess.run([*_GIT, "commit", "-q", "-m", "docs only"], cwd=repo, check=True)


@dataclass(frozen=True)
class Phases:
    """Seconds of one build's nodes: the evidence node, intermediate views, written outputs,
    and its slowest nodes by name."""

    evidence_s: float
    views_s: float
    outputs_s: float
    slowest: dict[str, float]
    # Bucketed outputs: buckets (groups, for the flat outputs) rewritten and linked from an
    # earlier partition (None rewritten: no earlier partition, every bucket written).
    buckets: dict[str, dict[str, int | None]]
    # Where the build process's peak RSS rose last among its outputs' parts (``view_part``
    # events): "cpg_edges#5" and the peak after it ("or before": the first part).
    peak_part: str
    peak_part_mb: int


def _query(cli: list[str], lake: str, sql: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [*cli, "query", "--lake", lake, "--format", "json", sql],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def build_phases(cli: list[str], lake: str, repo: Path) -> Phases:
    """Where HEAD's latest build spent its time, from its run manifest: the evidence node
    (extraction, or the evidence cache), the intermediate views, the written outputs, the
    slowest nodes, and the buckets each bucketed output rewrote (its ``bucket_layout``
    events). Read by a child process: this one's peak RSS is the baseline's."""
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    (run,) = _query(
        cli,
        lake,
        "SELECT run_id, timings_json FROM run_manifest "
        f"WHERE \"commit\" = '{sha}' ORDER BY finished_at DESC LIMIT 1",
    )
    nodes: dict[str, float] = json.loads(run["timings_json"])["nodes"]
    outputs = {k: v for k, v in nodes.items() if k.startswith("write_")}
    evidence = nodes.get("evidence", 0.0)
    layouts = [
        json.loads(row["detail_json"])
        for row in _query(
            cli,
            lake,
            "SELECT detail_json FROM pipeline_events "
            f"WHERE run_id = '{run['run_id']}' AND event = 'bucket_layout'",
        )
    ]
    parts = [
        (row["task_name"], json.loads(row["detail_json"]))
        for row in _query(
            cli,
            lake,
            "SELECT task_name, detail_json FROM pipeline_events "
            f"WHERE run_id = '{run['run_id']}' AND event = 'view_part' ORDER BY seq",
        )
    ]
    peak, peak_part = 0, "no part"
    for i, (task, detail) in enumerate(parts):
        if detail["peak_rss_mb"] > peak:
            peak = detail["peak_rss_mb"]
            part = "carried" if detail.get("carried") else detail["part"]
            peak_part = f"{task}#{part}" + ("" if i else " or before")
    return Phases(
        evidence_s=evidence,
        views_s=sum(nodes.values()) - evidence - sum(outputs.values()),
        outputs_s=sum(outputs.values()),
        slowest=dict(sorted(nodes.items(), key=lambda kv: -kv[1])[:5]),
        buckets={
            d["output"]: {
                "rewritten": d["rewritten"],
                "linked": d["linked"],
                "files_computed": d.get("files_computed"),
                "files_scanned": d.get("files_scanned"),
            }
            for d in layouts
        },
        peak_part=peak_part,
        peak_part_mb=peak,
    )


@dataclass(frozen=True)
class Pair:
    """One commit built by the CLI, then through Dagster right after it."""

    cli: Measure
    dagster: Measure
    dagster_steps_s: dict[str, float]


def cli_dagster_pairs(
    work: Path, label: str, cli: list[str], repo_args: list[str], count: int
) -> list[Pair]:
    """``count`` builds of one commit by the CLI then through Dagster (``materialize``: every
    asset and check, in process), alternating, each on a fresh lake and a fresh, initialized
    Dagster home: the overhead is read within each adjacent pair."""
    pairs = []
    for i in range(1, count + 1):
        lake, home = work / f"{label}_lake_{i}", work / f"{label}_home_{i}"
        dagster_home(home)
        build = [*cli, "build", *repo_args, "--lake", str(lake / "cli"), "--no-progress"]
        cli_run = run_measured(f"{label}_cli_{i}", build)
        materialize = [*cli, "materialize", *repo_args, "--lake", str(lake / "dagster")]
        dagster_run = run_measured(
            f"{label}_dagster_{i}", materialize, {**os.environ, "DAGSTER_HOME": str(home)}
        )
        pairs.append(Pair(cli_run, dagster_run, dagster_step_seconds(home)))
        shutil.rmtree(lake, ignore_errors=True)
    return pairs


def repeated_build(name: str, build: list[str], lake: Path, repeats: int) -> list[Measure]:
    """The build of one commit, ``repeats`` times, each on the lake as it was before the
    first (a copy, made and put back untimed): a commit's build takes about ten seconds, and
    one build's figure moves by 5-10 % with the machine. The lake the last one leaves stays."""
    if repeats <= 1:
        return [run_measured(name, build)]
    before = lake.with_name(f"{lake.name}_before_{name}")
    shutil.copytree(lake, before)
    runs = []
    for i in range(1, repeats + 1):
        if i > 1:
            shutil.rmtree(lake)
            shutil.copytree(before, lake)
        runs.append(run_measured(f"{name}_{i}", build))
    shutil.rmtree(before)
    return runs


def median_run(name: str, runs: list[Measure]) -> Measure:
    """The run of median wall time (the lower middle of an even count), named ``name``: its
    CPU time and peak are that run's own."""
    middle = sorted(runs, key=lambda m: m.wall_s)[(len(runs) - 1) // 2]
    return Measure(name, middle.wall_s, middle.cpu_s, middle.peak_rss_mb)


def dagster_home(home: Path) -> None:
    """A new instance home as the quick start makes one (the project's ``dagster.yaml``), with
    its storage created, untimed, by ``dagster instance migrate``."""
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "dagster.yaml", home / "dagster.yaml")
    subprocess.run(
        [sys.executable, "-m", "dagster", "instance", "migrate"],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        check=True,
        capture_output=True,
    )


def pair_ratios(prefix: str, pairs: list[Pair]) -> dict[str, float]:
    """The median overhead of Dagster over the CLI, the pairs' spread, and Dagster's time
    outside its run's steps (imports, the instance, the run's own events)."""
    if not pairs:
        return {}
    overheads = [p.dagster.wall_s - p.cli.wall_s for p in pairs]
    return {
        f"{prefix}dagster_minus_cli_s": statistics.median(overheads),
        f"{prefix}dagster_minus_cli_spread_s": max(overheads) - min(overheads),
        f"{prefix}dagster_outside_step_s": statistics.median(
            p.dagster.wall_s - sum(p.dagster_steps_s.values()) for p in pairs
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    parser.add_argument("--skip-dagster", action="store_true")
    parser.add_argument(
        "--dagster-pairs", type=int, default=3, help="CLI / Dagster full builds, alternating"
    )
    parser.add_argument(
        "--small-pairs", type=int, default=5, help="CLI / Dagster builds of a small package"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="builds of the one-file and 1 %% commits (median)"
    )
    args = parser.parse_args()
    cli = [sys.executable, "-m", "codeanatomy_assets.cli"]
    with tempfile.TemporaryDirectory(prefix="codeanatomy-bench-") as tmp:
        work = Path(tmp)
        repo, files = make_stdlib_repo(work / "stdlib")
        print(f"stdlib repository: {files} files at {repo}", flush=True)
        measures = [baseline(repo)]
        lake = str(work / "lake")
        build = [*cli, "build", str(repo), "--lake", lake, "--repo-id", "stdlib", "--no-progress"]
        measures.append(run_measured("full_build", build))
        # Again, right after: the machine's speed drifts.
        measures.append(baseline(repo, "baseline_ast_parse_again"))
        phases = {"full_build": build_phases(cli, lake, repo)}
        repeats: dict[str, list[Measure]] = {}
        for name, count in (("one_file_commit", 1), ("one_percent_commit", files // 100)):
            commit_change(repo, max(count, 1), name.replace("_", " "))
            repeats[name] = repeated_build(name, build, Path(lake), args.repeats)
            measures.append(median_run(name, repeats[name]))
            phases[name] = build_phases(cli, lake, repo)
        commit_docs(repo)
        measures.append(run_measured("no_python_change_commit", build))
        pairs: list[Pair] = []
        small: list[Pair] = []
        if not args.skip_dagster:
            # The first commit once more: HEAD~3 is the stdlib before the three commits above.
            stdlib_args = [str(repo), "--commit", "HEAD~3", "--repo-id", "stdlib"]
            pairs = cli_dagster_pairs(work, "stdlib", cli, stdlib_args, args.dagster_pairs)
            # Dagster's fixed cost, where the build is short and the noise small: the
            # stdlib's email package (tens of files).
            email, _ = make_stdlib_repo(work / "small" / "email", "email")
            small = cli_dagster_pairs(work, "small", cli, [str(email)], args.small_pairs)
        measures += [m for p in pairs + small for m in (p.cli, p.dagster)]
    by = {m.name: m for m in measures}
    base = (by["baseline_ast_parse"].wall_s + by["baseline_ast_parse_again"].wall_s) / 2
    ratios = {
        "full_over_baseline": by["full_build"].wall_s / base,
        "baseline_again_over_first": (
            by["baseline_ast_parse_again"].wall_s / by["baseline_ast_parse"].wall_s
        ),
        "one_file_over_full": by["one_file_commit"].wall_s / by["full_build"].wall_s,
        "one_percent_over_full": by["one_percent_commit"].wall_s / by["full_build"].wall_s,
        "no_python_change_over_full": (
            by["no_python_change_commit"].wall_s / by["full_build"].wall_s
        ),
    }
    for name, runs in repeats.items():
        walls = [m.wall_s for m in runs]
        ratios[f"{name}_spread_s"] = max(walls) - min(walls)
        ratios[f"{name}_highest_peak_mb"] = max(m.peak_rss_mb for m in runs)
    ratios.update(pair_ratios("", pairs))
    ratios.update(pair_ratios("small_", small))
    if pairs:
        ratios["cli_again_over_full"] = (
            statistics.mean(p.cli.wall_s for p in pairs) / by["full_build"].wall_s
        )
    print(f"\n{'step':<22}{'wall s':>10}{'cpu s':>10}{'peak RSS MB':>14}")
    for m in measures:
        print(f"{m.name:<22}{m.wall_s:>10.2f}{m.cpu_s:>10.2f}{m.peak_rss_mb:>14.0f}")
        if len(repeats.get(m.name, ())) > 1:
            walls = ", ".join(f"{r.wall_s:.2f}" for r in repeats[m.name])
            peak = max(r.peak_rss_mb for r in repeats[m.name])
            print(f"{'':<22}(median of {len(repeats[m.name])} builds: {walls} s; "
                  f"highest peak {peak:.0f} MB)")  # fmt: skip
    print(f"\n{'where the time went':<22}{'evidence':>10}{'views':>10}{'outputs':>10}  slowest")
    for name, phase in phases.items():
        slowest = ", ".join(f"{k} {v:.1f}" for k, v in phase.slowest.items())
        print(f"{name:<22}{phase.evidence_s:>10.2f}{phase.views_s:>10.2f}"
              f"{phase.outputs_s:>10.2f}  {slowest}")  # fmt: skip
        print(f"{'':<22}build process's peak {phase.peak_part_mb} MB, reached: {phase.peak_part}")
        if any(b["rewritten"] is not None for b in phase.buckets.values()):
            rewritten = ", ".join(
                f"{k} {b['rewritten']}/{(b['rewritten'] or 0) + (b['linked'] or 0)}"
                + (f" ({b['files_computed']} files)" if b["files_computed"] is not None else "")
                + (
                    f" ({b['files_scanned']} source files scanned)"
                    if b.get("files_scanned") is not None
                    else ""
                )
                for k, b in sorted(phase.buckets.items())
            )
            # Maps: buckets of 256; flat outputs: groups of 16 (their file-local rows).
            print(f"{'':<22}rewritten: {rewritten}")
    print()
    for key, value in ratios.items():
        print(f"{key:<28}{value:>10.3f}")
    result = {
        "files": files,
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "measures": [asdict(m) for m in measures],
        "repeated_runs": {name: [asdict(m) for m in runs] for name, runs in repeats.items()},
        "ratios": ratios,
        "dagster_steps_s": [p.dagster_steps_s for p in pairs + small],
        "phases_s": {name: asdict(phase) for name, phase in phases.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
