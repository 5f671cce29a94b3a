"""Compare a built graph with the cases: per-case differences and call-graph precision/recall."""

from __future__ import annotations

from dataclasses import dataclass

from codeanatomy_assets_tests.resolution.case import Case
from codeanatomy_assets_tests.resolution.graph import Graph


@dataclass(frozen=True)
class Difference:
    """What one case got wrong for one edge kind (both empty when it is exact)."""

    case: str
    kind: str
    missing: frozenset[tuple[str, str]]
    extra: frozenset[tuple[str, str]]


def differences(graph: Graph, case: Case) -> list[Difference]:
    """Missing and extra edges of every kind the case lists."""
    out = []
    for kind, expected in sorted(case.expected.items()):
        got = graph.pairs(kind, case.under)
        out.append(
            Difference(case.name, kind, frozenset(expected - got), frozenset(got - expected))
        )
    return out


def call_accuracy(graph: Graph, cases: list[Case]) -> tuple[float, float, int, int, int]:
    """Precision and recall of CALLS over every case that lists CALLS, with TP/got/expected.

    Edges a case marks as known missing count as expected (they lower recall)."""
    hits = got_total = expected_total = 0
    for case in cases:
        if "CALLS" not in case.expected:
            continue
        expected = case.expected["CALLS"] | case.known_missing.get("CALLS", set())
        got = graph.pairs("CALLS", case.under)
        hits += len(got & expected)
        got_total += len(got)
        expected_total += len(expected)
    precision = hits / got_total if got_total else 1.0
    recall = hits / expected_total if expected_total else 1.0
    return precision, recall, hits, got_total, expected_total
