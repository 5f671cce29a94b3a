"""Which parts of an output are each file's own, so a commit recomputes them only for the
files it changed.

A part is *file-local* when every row it yields is computed from one file's evidence alone
(its syntax tree, scopes, control flow, data flow) and keyed by an id of that file, whose
bucket is the file's (``normalize.ids``). Such rows of a file stay what they were until the
file changes, or until what every file's rows read changes: the code, the build's options,
the package layout that decides qualified names (``pipeline.local_layout`` signs the
files with all three). Resolution (imports, calls, inheritance, references) and the rows of
packages, the repository and external names are not file-local: they are recomputed whole.

Intermediate views can be file-local too (``PerFile``): the ids of a file's syntax nodes,
scopes, blocks and symbols, its definitions, each reference as a dotted path, which symbol
each name use means, each call, decorator, base and annotation site's node and its owner's.
Their rows are cached per file across builds (``pipeline.view_cache``), so a
commit computes them for the files it changed only, and every view downstream reads them
whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from codeanatomy_assets.cpg.nesting import BucketSource


@dataclass(frozen=True, slots=True)
class FileLocal:
    """A part of a union output that is file-local: read only from per-file tables, joined
    on ``path``, each row keyed by an id of its own file."""

    sql: str


@dataclass(frozen=True, slots=True)
class LocalParts:
    """The file-local parts of a union output: their positions in ``ViewSpec.parts``, and
    the column of their rows whose id names the row's bucket (its file's). ``feeds``: the
    maps sorted by id whose rows come from this output; each group file's footer holds
    their partial fingerprints (``storage.buckets.GroupFingerprints``)."""

    key: str
    indices: frozenset[int]
    feeds: tuple[BucketSource, ...] = ()


# What a per-file view may read: per-file evidence, other per-file views, and ``file_keys``
# (each file's id and import root, which the cache keys carry).
PER_FILE_SHARED = frozenset({"file_keys"})


@dataclass(frozen=True, slots=True)
class PerFile:
    """The SQL of an intermediate view whose rows of each file are computed from that file's
    rows of per-file tables alone, joined on ``path``; the view has a ``path`` column.
    ``plan.execution_plan`` rejects one that reads anything else."""

    sql: str
