"""Call-graph precision and recall over the hand-written resolution fixtures.

Why: the fixtures of ``codeanatomy_assets_tests/resolution`` state, per case, every CALLS
edge a correct resolver yields; this builds them all as one repository and counts what the
graph got right (precision: share of produced edges that are expected; recall: share of
expected edges produced, known gaps included). The test suite asserts the same expectations.

Run from the repository root (it imports the test fixtures):
``.venv/bin/python -m benchmarks.callgraph_accuracy``
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from codeanatomy_assets_tests.resolution.accuracy import call_accuracy, differences
from codeanatomy_assets_tests.resolution.cases import CASES, all_files
from codeanatomy_assets_tests.resolution.graph import build_graph


def main() -> int:
    """Print per-feature case counts, failing cases, and CALLS precision/recall."""
    with tempfile.TemporaryDirectory() as tmp:
        graph = build_graph(all_files(), Path(tmp) / "repo", str(Path(tmp) / "lake"))
    features: dict[str, int] = {}
    exact = 0
    for case in CASES:
        features[case.feature] = features.get(case.feature, 0) + 1
        wrong = [d for d in differences(graph, case) if d.missing or d.extra]
        exact += not wrong
        for d in wrong:
            print(f"  {case.name} {d.kind}: missing={sorted(d.missing)} extra={sorted(d.extra)}")
    precision, recall, hits, got, expected = call_accuracy(graph, CASES)
    print(f"cases: {len(CASES)} ({', '.join(f'{k} {v}' for k, v in sorted(features.items()))})")
    print(f"cases exactly right: {exact}/{len(CASES)}")
    calls_cases = sum("CALLS" in c.expected for c in CASES)
    print(f"CALLS over {calls_cases} cases: expected {expected}, produced {got}, correct {hits}")
    print(f"precision {precision:.3f}  recall {recall:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
