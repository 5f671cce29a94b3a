"""The code location loads offline, does nothing at import, and has the promised shape."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS, OUTPUT_CONTRACTS
from codeanatomy_assets.definitions import defs

ROOT = Path(__file__).resolve().parents[1]


def test_every_output_is_an_asset_of_the_cpg_group() -> None:
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == set(CPG_OUTPUTS)
    for name in CPG_OUTPUTS:
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == "cpg"
        assert node.description == OUTPUT_CONTRACTS[name].description
        assert node.partitions_def is not None and node.partitions_def.name == "commits"


def test_lineage() -> None:
    graph = defs.resolve_asset_graph()

    def parents(name: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents("cpg_nodes") == set()
    assert parents("cpg_edges_by_src") == {"cpg_nodes", "cpg_edges"}
    assert parents("cpg_props_map") == {"cpg_props"}
    assert parents("run_manifest") == set(CPG_OUTPUTS) - {"run_manifest"}


def test_jobs_sensor_schedules_and_checks() -> None:
    job = defs.resolve_job_def("cpg_job")
    assert job.partitions_def is not None and job.partitions_def.name == "commits"
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == set(CPG_OUTPUTS)
    assert defs.resolve_job_def("cpg_retention_job") is not None
    sensor = defs.resolve_sensor_def("new_commits_sensor")
    assert sensor.job_name == "cpg_job"
    nightly = defs.resolve_schedule_def("nightly_backfill_schedule")
    assert nightly.cron_schedule == "0 2 * * *"
    assert nightly.execution_timezone == "UTC"
    assert defs.resolve_schedule_def("nightly_retention_schedule").job_name == "cpg_retention_job"
    checks = {
        (k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys
    }
    assert ("cpg_edges", "edge_endpoints_exist") in checks
    assert {name for name, check in checks if check == "schema_contract"} == set(CPG_OUTPUTS)


def test_loads_offline_without_env_and_without_touching_disk(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    code = "import codeanatomy_assets.definitions as d; print(len(d.defs.assets or []))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    assert not (tmp_path / ".codeanatomy").exists()


def test_dagster_cli_validates_the_workspace(tmp_path: Path) -> None:
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent))
    assert dagster is not None
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    done = subprocess.run(
        [dagster, "definitions", "validate", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, env={**os.environ, "DAGSTER_HOME": str(home)}, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All code locations passed validation" in done.stdout + done.stderr
    # SQLite storage under the home (runs, event logs, schedule and sensor state).
    assert (home / "history" / "runs.db").is_file()
    assert (home / "schedules" / "schedules.db").is_file()
