#!/usr/bin/env bash
# Quick start: set up, build the CPG of REPO (default: this repository) with the CLI, query it,
# then materialize the same commit through Dagster so the web UI has something to show.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bootstrap.sh"
repo="${1:-$root}"
export CODEANATOMY_LAKE="${CODEANATOMY_LAKE:-$root/.codeanatomy/lake}"
export DAGSTER_HOME="${DAGSTER_HOME:-$root/.dagster_home}"
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp "$root/dagster.yaml" "$DAGSTER_HOME/dagster.yaml"

echo "==> codeanatomy build $repo"
codeanatomy build "$repo"
echo "==> nodes by kind"
codeanatomy query "SELECT node_kind, count(*) AS nodes FROM cpg_nodes GROUP BY node_kind ORDER BY nodes DESC"
echo "==> materializing the same commit through Dagster (DAGSTER_HOME=$DAGSTER_HOME)"
codeanatomy materialize "$repo"
cat <<MSG

Done. The lake is $CODEANATOMY_LAKE; query it with
  .venv/bin/codeanatomy query "SELECT * FROM run_manifest"
Open the Dagster UI (local only, on 127.0.0.1) with
  DAGSTER_HOME=$DAGSTER_HOME CODEANATOMY_LAKE=$CODEANATOMY_LAKE .venv/bin/dagster dev -h 127.0.0.1 -p 3000 -w $root/workspace.yaml
and browse http://127.0.0.1:3000/asset-groups/cpg
MSG
