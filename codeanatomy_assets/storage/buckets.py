"""Outputs sorted by id, one Parquet file per id bucket, each file saying what it holds.

Ids start with two hex characters that name a bucket (``normalize.ids``): every node of a file
shares one, and an edge shares its source's. An output sorted by id (the adjacency maps) is
written as one file per bucket, and each file's footer records the bucket and a fingerprint
of the rows in it: their count, and the XOR and the sum of their identities (a 64-bit hash of
the columns that tell the rows apart, ``pipeline.bucket_layout``).

Why: a commit that changes a few files changes the rows of a few buckets. The next build
computes the fingerprint of every bucket from the source rows (a scan of two columns, where
writing the map sorts and encodes every row), compares it with the footers of an earlier
partition of the same repository, rewrites the buckets that differ and hard-links the others'
files. The footer travels with the file, so a linked file still says what it holds;
a file without one (written before buckets existed) is simply never linked.

A fingerprint proves nothing by itself about rows it was not computed from: it is compared
only with one computed from rows that decide the same output (the same identity columns).
Two different sets of rows share one only if both the XOR and the sum of their 64-bit
identities agree, with the same count.

The flat outputs' file-local rows (``cpg.locality``) come in no order; ``group_by_bucket``
cuts them by group of buckets (128 groups, ``LocalBuckets``) and hands each group's rows to
that group's file. Their footers carry a signature of what every file's rows were computed
with (``pipeline.local_layout``): a later build links the files of the groups whose source
files it did not change, without computing their rows at all. They also carry the partial
fingerprints of the maps the output feeds (``GroupFingerprints``: for each map, the
fingerprint of each of its buckets over the file's rows alone), so that a map's layout sums
the footers of the files a build linked and scans only the files it wrote.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# Characters at the start of every id that name its bucket (``normalize.ids`` puts them there),
# and those that name its file code (the bucket's and two more: ``pipeline.local_layout``).
BUCKET_HEX_CHARS = 2
FILE_CODE_HEX_CHARS = 4
FOOTER_KEY = b"codeanatomy.bucket"
LOCAL_FOOTER_KEY = b"codeanatomy.local_bucket"
BUCKETS = 16**BUCKET_HEX_CHARS
# File-local rows are filed in groups of two buckets (a bucket's code shifted right by one;
# a group is named by its number, two hex digits): 128 files per output. A commit rewrites
# the groups of the files it changed, carrying over the other files' rows of each (decoded
# and encoded again: most of what such a write costs once only the changed files are
# computed, ``pipeline.local_layout``), so the smaller the group the less a commit carries.
# On the stdlib, a commit of 1 % of the files rewrote 12 of 16 groups (14 M rows carried
# over; 17.1-18.9 s), 15 of 64 (9.92-10.31 s) or 17 of 128 (8.86-10.30 s, four alternating
# pairs); one-file commits alike (7.01-8.32 s against 7.23-8.12 s). 128 groups with row
# groups of 768 KB (96 MB held at most) had taken the build's peak while writing the edges
# 70-170 MB higher, a Dagster build of the stdlib past 2 GB; with row groups of 384 KB (the
# same 48 MB as 64 groups of 768 KB) the CLI's peak was 1,582 MB against 1,581 and
# Dagster's 1,728/1,759 against 1,751/1,775. A file per bucket, as the maps (256 groups),
# was no faster than 128 and peaked at 2.4 GB.
_GROUP_SHIFT = 1
LOCAL_GROUPS = BUCKETS >> _GROUP_SHIFT
# Arrow bytes of rows ``group_by_bucket`` cuts by group at a time, and of a group's rows it
# hands on at a time (a row group): each group holds up to that much until then (48 MB for
# 128 groups). 16 groups had row groups of 1.5 MB; 64 of that size peaked 185 MB higher on
# the stdlib. Writing its 9 M file-local edges took 3.5 s of CPU in 16 files of 1.5 MB row
# groups, 3.6 s in 64 of 768 KB, 3.8 s in 64 of 384 KB.
_WINDOW_BYTES = 8 * 1024 * 1024
_GROUP_BYTES = 3 * 1024 * 1024 // 8
# Each byte's value as a lowercase hex digit; 255 for any other byte.
_NIBBLES = np.full(256, 255, np.uint8)
_NIBBLES[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)
# A batch whose rows change bucket this often is reordered by bucket before it is cut
# (most batches come in runs of one file's rows: cutting them costs nothing).
_SORT_RUNS = 64


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the rows of one bucket are, in three numbers (see the module docstring)."""

    rows: int
    xor: int
    total: int

    def to_json(self, bucket: str) -> bytes:
        return json.dumps({"bucket": bucket, "rows": self.rows, "xor": self.xor,
                           "sum": self.total}).encode()  # fmt: skip


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """How a write splits its rows into bucket files: ``key`` is the column they are sorted
    by (its first characters name the bucket); ``fingerprint`` gives the fingerprint of a
    bucket's rows once the write has passed them (``Fingerprints.get``)."""

    key: str
    fingerprint: Callable[[str], Fingerprint]


@dataclass(frozen=True, slots=True)
class LocalBuckets:
    """How a write files rows that come in any bucket order: each group's rows (of two
    buckets: ``bucket_group``) into a file of its own, whose footer names the group and
    ``signature``. ``allowed``: the only groups rows may fall in
    (None: any); a row outside them raises ``StrayBucketError``. ``partials``: a group's
    partial fingerprints once the write has passed its rows (``GroupFingerprints``)."""

    key: str
    signature: str
    allowed: frozenset[str] | None = None
    partials: Callable[[str], Mapping[str, Mapping[str, Fingerprint]]] | None = None


class StrayBucketError(ValueError):
    """A row of a bucket the write was not told to expect."""


@dataclass(frozen=True, slots=True)
class BucketFile:
    """One bucket's file of an earlier partition, as its footer describes it."""

    path: Path
    fingerprint: Fingerprint


class Fingerprints:
    """Per-bucket count, XOR and sum of row identities, fed batch by batch.

    A write fills it from the flat rows it nests (on the stream's thread) while the file
    writer reads a bucket's entry when it closes that bucket's file: rows come sorted by
    bucket, so by then every row of the bucket has been added.
    """

    def __init__(self, cells: int = BUCKETS) -> None:
        self.rows = np.zeros(cells, np.int64)
        self.xor = np.zeros(cells, np.uint64)
        self.total = np.zeros(cells, np.uint64)

    def add(self, batch: pa.RecordBatch | pa.Table, key: str, identity: str) -> None:
        """Add the rows of ``batch``: ``key`` names each row's bucket, ``identity`` (64-bit
        integers, no nulls) is the row's identity."""
        if not batch.num_rows:
            return
        self.add_codes(bucket_codes(batch.column(key)), batch.column(identity), identity)

    def add_codes(
        self, codes: np.ndarray, ids: pa.Array | pa.ChunkedArray, identity: str = "identity"
    ) -> None:
        """Add rows whose cells (buckets) are ``codes`` and identities ``ids``."""
        ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        if ids.null_count or ids.type not in (pa.int64(), pa.uint64()):
            raise ValueError(f"{identity}: a bucket identity is a 64-bit integer, never null")
        keys = ids.to_numpy(zero_copy_only=False).view(np.uint64)
        self.rows += np.bincount(codes, minlength=len(self.rows))
        np.bitwise_xor.at(self.xor, codes, keys)
        with np.errstate(over="ignore"):
            np.add.at(self.total, codes, keys)  # modulo 2**64, on purpose

    def merge(self, bucket: str, fingerprint: Fingerprint) -> None:
        """Add a bucket's fingerprint over other rows (a file's partial)."""
        code = int(bucket, 16)
        self.rows[code] += fingerprint.rows
        self.xor[code] ^= np.uint64(fingerprint.xor)
        with np.errstate(over="ignore"):
            self.total[code] += np.uint64(fingerprint.total)

    def get(self, bucket: str) -> Fingerprint:
        code = int(bucket, 16)
        return Fingerprint(int(self.rows[code]), int(self.xor[code]), int(self.total[code]))

    def as_dict(self) -> dict[str, Fingerprint]:
        """Every bucket that has rows."""
        return {bucket_name(int(code)): self.get(bucket_name(int(code)))
                for code in np.flatnonzero(self.rows)}  # fmt: skip


def bucket_name(code: int) -> str:
    return f"{code:0{BUCKET_HEX_CHARS}x}"


def bucket_codes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The bucket of each id (its first two hex characters) as an integer; ValueError for an
    id that does not start with two lowercase hex characters."""
    return hex_prefix_codes(ids, BUCKET_HEX_CHARS)


def file_codes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The file code of each id (its first four hex characters) as an integer."""
    return hex_prefix_codes(ids, FILE_CODE_HEX_CHARS)


def hex_prefix_codes(ids: pa.Array | pa.ChunkedArray, chars: int) -> np.ndarray:
    """Each id's first ``chars`` characters read as a hex number; ValueError for an id that
    does not start with that many lowercase hex characters.

    Read from the string buffers with numpy: 2-4x faster than slicing and dictionary-encoding
    the strings (a build computes the codes of every map and group-file row, several times).
    """
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if ids.type != pa.string():  # DataFusion hands strings over as Utf8View
        ids = ids.cast(pa.string())
    count = len(ids)
    if not count:
        return np.zeros(0, np.int64)
    offsets = np.frombuffer(ids.buffers()[1], np.int32, count + 1, ids.offset * 4)
    data = np.frombuffer(ids.buffers()[2] or b"", np.uint8)
    lengths = np.diff(offsets)
    if ids.null_count or (lengths < chars).any():
        raise ValueError(f"ids must start with {chars} lowercase hex characters to be bucketed")
    if (lengths == lengths[0]).all():  # ids of one length (all of ours): a strided view
        width = int(lengths[0])
        digits = _NIBBLES[data[offsets[0] : offsets[-1]].reshape(count, width)[:, :chars]]
    else:
        digits = _NIBBLES[data[offsets[:-1, None] + np.arange(chars)]]
    if (digits > 15).any():
        raise ValueError(f"ids must start with {chars} lowercase hex characters to be bucketed")
    codes = digits[:, 0].astype(np.int64)
    for i in range(1, chars):
        codes = (codes << 4) | digits[:, i]
    return codes


def source_fingerprints(
    batches: Iterable[pa.RecordBatch], key: str, identity: str
) -> dict[str, Fingerprint]:
    """Per-bucket fingerprints of the rows that decide an output (see ``Fingerprints.add``)."""
    fingerprints = Fingerprints()
    for batch in batches:
        fingerprints.add(batch, key, identity)
    return fingerprints.as_dict()


def split_by_bucket(
    batches: Iterable[pa.RecordBatch], key: str
) -> Iterator[tuple[str, pa.RecordBatch]]:
    """Each batch cut where the bucket of ``key`` changes, as (bucket, slice). Rows must come
    sorted by bucket; a bucket that comes back raises ValueError (a file per bucket could not
    hold it)."""
    seen: set[str] = set()
    current: str | None = None
    for batch in batches:
        if not batch.num_rows:
            continue
        codes = bucket_codes(batch.column(key))
        cuts = np.flatnonzero(np.diff(codes)) + 1
        for start, end in zip([0, *cuts.tolist()], [*cuts.tolist(), len(codes)], strict=True):
            name = bucket_name(int(codes[start]))
            if name != current:
                if name in seen:
                    raise ValueError(f"rows of bucket {name} are not contiguous: not sorted by id")
                seen.add(name)
                current = name
            yield name, batch.slice(start, end - start)


def group_name(code: int) -> str:
    """A group's name: its number (``LOCAL_GROUPS`` of them), two hex digits."""
    return f"{code:02x}"


def bucket_group(bucket: str) -> str:
    """The name of the group bucket ``bucket`` (its name) is filed in."""
    return group_name(int(bucket, 16) >> _GROUP_SHIFT)


def group_codes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The group of each id's bucket as an integer (see ``bucket_codes``)."""
    return bucket_codes(ids) >> _GROUP_SHIFT


def group_by_bucket(
    batches: Iterable[pa.RecordBatch],
    key: str,
    allowed: frozenset[str] | None = None,
    window_bytes: int = _WINDOW_BYTES,
    group_bytes: int = _GROUP_BYTES,
) -> Iterator[tuple[str, pa.Table]]:
    """The rows of ``batches``, in any order, as (group, table) pieces (``LocalBuckets``):
    each piece ``group_bytes`` or more of one group's rows (a row group), the rest at the end.
    A row whose group is not ``allowed`` raises ``StrayBucketError``.

    Rows are cut by group a window of ``window_bytes`` at a time (a batch is cut where its
    group changes, most come in runs of one file's rows, or first reordered by group), and
    each group's share of the window is copied out, which lets the window's batches go.
    """
    permitted = None
    if allowed is not None:
        permitted = np.zeros(LOCAL_GROUPS, bool)
        permitted[[int(g, 16) for g in allowed]] = True
    held: dict[int, list[pa.RecordBatch]] = {}
    pending: dict[int, list[pa.RecordBatch]] = {}
    pending_bytes: dict[int, int] = {}
    size = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        codes = group_codes(batch.column(key))
        if permitted is not None and not permitted[codes].all():
            stray = group_name(int(codes[~permitted[codes]][0]))
            raise StrayBucketError(f"{key}: a row of group {stray}, not one being written")
        cuts = np.flatnonzero(np.diff(codes)) + 1
        if len(cuts) >= _SORT_RUNS:
            order = np.argsort(codes, kind="stable")
            codes, batch = codes[order], batch.take(pa.array(order))
            cuts = np.flatnonzero(np.diff(codes)) + 1
        for start, end in zip([0, *cuts.tolist()], [*cuts.tolist(), len(codes)], strict=True):
            held.setdefault(int(codes[start]), []).append(batch.slice(start, end - start))
        size += batch.nbytes
        if size < window_bytes:
            continue
        size = 0
        for code, pieces in held.items():
            share = pa.Table.from_batches(pieces).combine_chunks().to_batches()
            pending.setdefault(code, []).extend(share)
            pending_bytes[code] = pending_bytes.get(code, 0) + sum(b.nbytes for b in share)
            if pending_bytes[code] >= group_bytes:
                yield group_name(code), pa.Table.from_batches(pending.pop(code))
                del pending_bytes[code]
        held.clear()
    for code in sorted(pending.keys() | held.keys()):
        yield group_name(code), pa.Table.from_batches([*pending.get(code, ()), *held.get(code, ())])


def read_local_files(
    paths: Sequence[Path], schema: pa.Schema, signature: str
) -> dict[str, Path] | None:
    """The file-local bucket files among ``paths`` (one partition's), by bucket, if every
    one was written with ``signature`` and ``schema``'s columns and no bucket is named twice;
    else None (nothing of the partition can stand for this build's rows)."""
    found: dict[str, Path] = {}
    for path in paths:
        metadata = pq.read_metadata(path)
        raw = (metadata.metadata or {}).get(LOCAL_FOOTER_KEY)
        if raw is None:
            continue
        record = json.loads(raw)
        bucket = str(record["bucket"])
        if (
            record.get("signature") != signature
            or bucket in found
            or not metadata.schema.to_arrow_schema()
            .remove_metadata()
            .equals(schema.remove_metadata())
        ):
            return None
        found[bucket] = path
    return found


def local_footer(
    bucket: str, signature: str, partials: Mapping[str, Mapping[str, Fingerprint]] | None = None
) -> bytes:
    record: dict[str, object] = {"bucket": bucket, "signature": signature}
    if partials:
        record["partials"] = {
            feed: {b: [f.rows, f.xor, f.total] for b, f in sorted(found.items())}
            for feed, found in sorted(partials.items())
        }
    return json.dumps(record).encode()


def feed_id(key: str, identity: Sequence[str]) -> str:
    """What a partial fingerprint was computed over: the column naming a row's bucket and
    the columns of its identity (a map's ``BucketSource`` without its table)."""
    return f"{key}|{','.join(identity)}"


class GroupFingerprints:
    """Partial fingerprints of the maps an output feeds, for each group file of its
    file-local rows: per feed (a map's bucket column and the column holding each row's
    identity), the count, XOR and sum of the identities of each (group, bucket).

    Rows are added a table at a time but summed ``flush_rows`` at a time: a write's stream
    runs on a thread of its own, and each numpy call lets the GIL go and waits to get it
    back. Through Dagster, whose asset checks run on another thread meanwhile, summing every
    8 K-row batch made the stdlib's full build about 5 s slower (75.5 s twice, against
    67.6-75.3 s in five builds without partials, 70.8 on average; the CLI's did not move);
    summed per 128 K rows, 71.5-73.7 s in four (72.6 on average). The key and identity
    columns of those rows (about 20 MB) are held until they are summed."""

    def __init__(
        self, group_key: str, feeds: Mapping[str, tuple[str, str]], flush_rows: int = 1 << 17
    ) -> None:
        self.group_key = group_key
        self.feeds = dict(feeds)  # feed id -> (bucket column, identity column)
        cells = LOCAL_GROUPS * BUCKETS
        self._sums = {f: Fingerprints(cells) for f in self.feeds}
        self._columns = list(dict.fromkeys([group_key, *(c for f in feeds.values() for c in f)]))
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._flush_rows = flush_rows
        self._lock = threading.Lock()

    def add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        with self._lock:
            self._pending.append(table.select(self._columns))
            self._pending_rows += table.num_rows
            if self._pending_rows >= self._flush_rows:
                self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0
        groups = group_codes(table.column(self.group_key))
        for feed, (key, identity) in self.feeds.items():
            cells = groups * BUCKETS + bucket_codes(table.column(key))
            self._sums[feed].add_codes(cells, table.column(identity), identity)

    def partials(self, group: str) -> dict[str, dict[str, Fingerprint]]:
        """Each feed's fingerprint of every bucket the group's rows fall in (asked once the
        rows have all been added)."""
        with self._lock:
            self._flush()
        row = int(group, 16) * BUCKETS
        out: dict[str, dict[str, Fingerprint]] = {}
        for feed, sums in self._sums.items():
            found = {}
            for code in np.flatnonzero(sums.rows[row : row + BUCKETS]):
                cell = row + int(code)
                found[bucket_name(int(code))] = Fingerprint(
                    int(sums.rows[cell]), int(sums.xor[cell]), int(sums.total[cell])
                )
            out[feed] = found
        return out


def read_partials(
    paths: Sequence[Path], feed: str
) -> tuple[dict[Path, dict[str, Fingerprint]], list[Path]]:
    """Among one partition's files, those whose footer holds ``feed``'s partial
    fingerprints, with them; and the others (files of no group, or written before partials
    existed), whose rows must be scanned."""
    found: dict[Path, dict[str, Fingerprint]] = {}
    others: list[Path] = []
    for path in paths:
        raw = (pq.read_metadata(path).metadata or {}).get(LOCAL_FOOTER_KEY)
        partials = json.loads(raw).get("partials", {}) if raw is not None else {}
        if feed not in partials:
            others.append(path)
            continue
        found[path] = {b: Fingerprint(*map(int, v)) for b, v in partials[feed].items()}
    return found, others


def read_bucket_files(paths: Sequence[Path], schema: pa.Schema) -> dict[str, BucketFile]:
    """The bucket files among ``paths`` (one partition's), by bucket: those whose footer
    names a bucket and whose columns are ``schema``'s. Others (older files, another schema, a
    bucket named twice) are left out, and their buckets rewritten."""
    found: dict[str, BucketFile] = {}
    twice: set[str] = set()
    for path in paths:
        metadata = pq.read_metadata(path)
        raw = (metadata.metadata or {}).get(FOOTER_KEY)
        if raw is None or not metadata.schema.to_arrow_schema().remove_metadata().equals(
            schema.remove_metadata()
        ):
            continue
        record = json.loads(raw)
        bucket = str(record["bucket"])
        if bucket in found:
            twice.add(bucket)
        found[bucket] = BucketFile(
            path, Fingerprint(int(record["rows"]), int(record["xor"]), int(record["sum"]))
        )
    return {b: f for b, f in found.items() if b not in twice}


def unchanged(
    earlier: Mapping[str, BucketFile], now: Mapping[str, Fingerprint]
) -> dict[str, BucketFile]:
    """The earlier files that hold exactly the rows a bucket has now."""
    return {b: f for b, f in earlier.items() if now.get(b) == f.fingerprint}
