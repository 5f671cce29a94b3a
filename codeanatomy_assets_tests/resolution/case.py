"""A resolution fixture: a few files under their own directory and the exact edges expected.

Each case lives in a directory of its own (``under``), so one repository holds them all and
one build serves every case. Expected edges are ``(src, dst)`` names as ``graph.Graph.name``
gives them: qualified names for definitions, modules and EXTERNAL nodes, ``path:line`` for
NAME, IMPORT and other syntax nodes. An edge kind listed in ``expected`` is compared
exactly (missing and extra edges both fail); kinds not listed are not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    """One hand-written program and the edges (and properties) its resolution must yield."""

    name: str
    feature: str  # imports, names, calls, inheritance, annotations
    files: dict[str, str]
    expected: dict[str, set[tuple[str, str]]]
    props: dict[str, dict[str, object]] = field(default_factory=dict)
    # Expected edges the resolver is known not to produce yet (kept out of ``expected``,
    # counted as missed by the accuracy script, asserted absent so a fix is noticed).
    known_missing: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    @property
    def under(self) -> str:
        """The directory prefix of the case's files."""
        return self.name + "/"
