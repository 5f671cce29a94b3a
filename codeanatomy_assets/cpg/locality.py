"""Which parts of an output are each file's own, so a commit recomputes them only for the
files it changed.

A part is *file-local* when every row it yields is computed from one file's evidence alone
(its syntax tree, scopes, control flow, data flow) and keyed by an id of that file, whose
bucket is the file's (``normalize.ids``). Such rows of a file stay what they were until the
file changes, or until what every file's rows read changes: the code, the build's options,
the package layout that decides qualified names (``pipeline.local_layout`` signs the
files with all three). Resolution (imports, calls, inheritance, references) and the rows of
packages, the repository and external names are not file-local: they are recomputed whole.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LocalParts:
    """The file-local parts of a union output: their positions in ``ViewSpec.parts``, and
    the column of their rows whose id names the row's bucket (its file's)."""

    key: str
    indices: frozenset[int]
