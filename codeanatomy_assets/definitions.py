"""The code location: assembles assets, checks, jobs, the sensor, schedules and resources.

Nothing here does work: no environment reads, no I/O, no session or driver. The resource
defaults let the location load offline (the lake root resolves at run time from
``$CODEANATOMY_LAKE`` or ``.codeanatomy/lake``; no repository is watched until configured).
"""

import dagster as dg

from codeanatomy_assets.assets import CPG_GROUP, cpg_assets
from codeanatomy_assets.partitions import COMMITS_PARTITIONS
from codeanatomy_assets.resources import ExecutionResource, LakeResource, WatchedReposResource
from codeanatomy_assets.schedules import (
    build_backfill_schedule,
    build_retention_schedule,
    cpg_retention_job,
)
from codeanatomy_assets.sensors import build_commit_sensor

__all__ = ["cpg_job", "defs"]

# In-process executor: the run is one step (the build, which parallelizes inside it with a
# process pool or Dask, and its checks), so a subprocess per step would only add ~2 s of
# imports. Each run still gets its own process from the run launcher, so a crash stays within
# its run.
cpg_job = dg.define_asset_job(
    name="cpg_job",
    selection=dg.AssetSelection.groups(CPG_GROUP),
    partitions_def=COMMITS_PARTITIONS,
    executor_def=dg.in_process_executor,
    description="Build every CPG output of one commit partition and run its checks.",
)

defs = dg.Definitions(
    assets=[cpg_assets],
    jobs=[cpg_job, cpg_retention_job],
    sensors=[build_commit_sensor(cpg_job)],
    schedules=[build_backfill_schedule(cpg_job), build_retention_schedule()],
    resources={
        "lake": LakeResource(),
        "execution": ExecutionResource(),
        "watched_repos": WatchedReposResource(),
    },
)
