"""The asset graph as a browser renders it: headless Chromium against the real webserver.

Chromium loads the single-page app, runs its JavaScript and GraphQL calls within a virtual
time budget, then dumps the rendered DOM (to assert every asset is drawn) or takes a
screenshot, saved under ``test-artifacts/`` for a human to look at.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest

from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS
from codeanatomy_assets_tests.webserver.graphql_client import graphql

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
GRAPH_PATH = "/asset-groups/cpg"
RENDER_ATTEMPTS = 3


def _chromium(
    args: list[str], profile: Path, budget_ms: int = 20_000, timeout_s: float = 120
) -> str:
    """Run headless Chromium in its own process group; kill the group if it overstays."""
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--window-size=1600,1000",
        f"--virtual-time-budget={budget_ms}", *args,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, f"chromium exited with {proc.returncode}"
    return out.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def ui(webserver: Any) -> Any:
    """The webserver with its first-visit newsletter dialog dismissed (it covers the graph)."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    assert graphql(webserver.url, "mutation { setNuxSeen }") == {"setNuxSeen": True}
    return webserver


def test_asset_graph_renders_every_asset(ui: Any, tmp_path: Path) -> None:
    """Every CPG output is drawn, in one of a few fresh browsers with a growing time budget.

    Once, in CI, the first Chromium of a run dumped a DOM with no asset drawn; the second
    test's browser then rendered the graph. It did not recur here under full CPU load or with
    a cold font cache, so a render that misses names is retried in a new browser, and the
    last DOM is kept under ``test-artifacts/`` for whoever meets it next. A graph that never
    draws an asset still fails.
    """
    kept = ARTIFACTS / "asset_graph_dom.html"
    kept.unlink(missing_ok=True)
    missing: list[str] = []
    for attempt in range(1, RENDER_ATTEMPTS + 1):
        dom = _chromium(
            ["--dump-dom", f"{ui.url}{GRAPH_PATH}"],
            tmp_path / f"profile-{attempt}",
            budget_ms=20_000 * attempt,
        )
        missing = [name for name in CPG_OUTPUTS if f">{name}<" not in dom]
        if not missing:
            break
        ARTIFACTS.mkdir(exist_ok=True)
        kept.write_text(dom)
    assert missing == [], f"not rendered: {missing} (DOM: {kept})"
    if attempt > 1:  # passed, but say so: the kept DOM is what the first browser saw
        warnings.warn(f"asset graph drawn on attempt {attempt}; see {kept}", stacklevel=1)
    assert ">1 partition<" in dom  # the one commit the fixture registered


def test_asset_graph_screenshot(ui: Any, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / "asset_graph.png"
    target.unlink(missing_ok=True)
    _chromium([f"--screenshot={target}", f"{ui.url}{GRAPH_PATH}"], tmp_path / "profile")
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_size > 20_000  # a blank page is a few kilobytes
