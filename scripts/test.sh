#!/usr/bin/env bash
# The whole test suite: lint, format check, types, Dagster definitions, then pytest.
# Installs what it needs (venv, and Debian's chromium for the browser test when root).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source "$root/scripts/bootstrap.sh"
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> installing chromium for the browser test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: chromium could not be installed; the browser test will say so" >&2
fi
echo "==> ruff"
ruff check codeanatomy_assets codeanatomy_assets_tests benchmarks
ruff format --check codeanatomy_assets codeanatomy_assets_tests benchmarks
echo "==> mypy"
mypy
echo "==> dagster definitions validate"
tmp_home="$(mktemp -d)"
trap 'rm -rf "$tmp_home"' EXIT
DAGSTER_HOME="$tmp_home" dagster definitions validate -w workspace.yaml
echo "==> pytest"
set +e
pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "pytest collected no tests (exit 5)" >&2
  exit 0
fi
exit "$status"
