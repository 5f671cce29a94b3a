"""The stable id formula, in one place, as SQL (used by the views) and Python (its reference).

    node_id = file_code(path or discriminator) + hex(sha256(repo_id ␟ path ␟ kind
                                                            ␟ discriminator ␟ bstart ␟ bend))[:28]
    edge_id = src_node_id[:4] + hex(sha256(repo_id ␟ edge_kind ␟ src_node_id ␟ dst_node_id
                                           ␟ discriminator))[:28]
    file_code(text) = hex(md5(text))[:4]          bucket(text) = file_code(text)[:2]

(␟ is U+001F, the unit separator; NULL parts are empty strings.) 112 bits of SHA-256: ids are
deterministic across runs and machines, unique across repositories (``repo_id`` is hashed in),
and unchanged across commits for an unchanged ``(path, kind, span)``: the commit is not part of
the formula. ``discriminator`` separates nodes that share a kind and a span: the ``ast`` type
(plus ``#n`` for the n-th duplicate) for syntax nodes, the symbol table path for scopes and
symbols, the dotted name for externals; for edges, what tells two edges between the same
nodes apart (the AST field, a branch label...). A node that is its whole file (FILE, MODULE,
the module's scope and the symbols of that scope) hashes the span (0, 0): its id survives any
edit of the file, and so do the ids of the edges into it from other files.

Why the two-character bucket in front: every node of one file shares it (a node outside any
file, such as an external, takes its discriminator's), and an edge shares its source's. So the
outputs sorted by id (the adjacency and property maps) hold each file's rows in one of 256
ranges, written as one Parquet file per range; a later commit that changes a few files
rewrites the ranges those files (and the edges into them) fall in and links the others
(``storage.buckets``). With ids hashed whole, a one-file change touched every range.

Why two more characters of the file's hash (its file code): they tell a file's rows from those
of the other files of its bucket (about 7 in the standard library; 65,536 codes, so a code
nearly always names one file of a repository). A commit computes the file-local rows of the
files it changed only and carries over the rest of their groups' rows as they were, telling
them apart by the id's first four characters (``pipeline.local_layout``): with the bucket
alone it computed every file of the changed files' buckets.
"""

from __future__ import annotations

import binascii
import hashlib

import numpy as np
import pyarrow as pa

from codeanatomy_assets.storage.buckets import BUCKET_HEX_CHARS, FILE_CODE_HEX_CHARS

ID_HEX_CHARS = 32
_HASH_HEX_CHARS = ID_HEX_CHARS - FILE_CODE_HEX_CHARS
_SEP = "\x1f"


def file_code(path: str, discriminator: str) -> str:
    """Python reference of the file code of a node: of its file, else of its discriminator."""
    text = path or discriminator
    digest = hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()
    return digest[:FILE_CODE_HEX_CHARS]


def bucket(path: str, discriminator: str) -> str:
    """The bucket of a node: its file code's first characters."""
    return file_code(path, discriminator)[:BUCKET_HEX_CHARS]


def node_id(repo_id: str, path: str, kind: str, discriminator: str, bstart: int, bend: int) -> str:
    """Python reference of ``node_id_sql`` (tests assert both agree)."""
    parts = (repo_id, path, kind, discriminator, str(bstart), str(bend))
    digest = hashlib.sha256(_SEP.join(parts).encode("utf-8")).hexdigest()[:_HASH_HEX_CHARS]
    return file_code(path, discriminator) + digest


def edge_id(repo_id: str, edge_kind: str, src: str, dst: str, discriminator: str) -> str:
    """Python reference of ``edge_id_sql``."""
    parts = (repo_id, edge_kind, src, dst, discriminator)
    digest = hashlib.sha256(_SEP.join(parts).encode("utf-8")).hexdigest()[:_HASH_HEX_CHARS]
    return src[:FILE_CODE_HEX_CHARS] + digest


def _text_sql(expr: str) -> str:
    return f"coalesce(CAST({expr} AS VARCHAR), '')"


def _hash_sql(parts: list[str]) -> str:
    joined = ", ".join(_text_sql(p) for p in parts)
    return (
        f"substr(encode(digest(concat_ws(chr(31), {joined}), 'sha256'), 'hex'), 1, "
        f"{_HASH_HEX_CHARS})"
    )


def file_code_sql(path: str, discriminator: str) -> str:
    """SQL expression of ``file_code``; both arguments are SQL expressions."""
    path_text = _text_sql(path)
    text = f"CASE WHEN {path_text} = '' THEN {_text_sql(discriminator)} ELSE {path_text} END"
    return f"substr(md5({text}), 1, {FILE_CODE_HEX_CHARS})"


def sql_literal(value: str) -> str:
    """A SQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def node_id_sql(
    repo_id: str, path: str, kind: str, discriminator: str, bstart: str, bend: str
) -> str:
    """SQL expression of the node id; ``repo_id`` is a value, the others are SQL expressions."""
    digest = _hash_sql([sql_literal(repo_id), path, kind, discriminator, bstart, bend])
    return f"concat({file_code_sql(path, discriminator)}, {digest})"


def edge_id_sql(repo_id: str, edge_kind: str, src: str, dst: str, discriminator: str) -> str:
    """SQL expression of the edge id; ``repo_id`` is a value, the others are SQL expressions."""
    digest = _hash_sql([sql_literal(repo_id), edge_kind, src, dst, discriminator])
    return f"concat(substr({src}, 1, {FILE_CODE_HEX_CHARS}), {digest})"


# Every byte of a lowercase hex digit ('0'-'9', 'a'-'f') has this bit; 'A'-'F' do not.
_LOWER_HEX_BITS = np.uint64(0x2020202020202020)


def id_halves(ids: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """Each id as its two 64-bit halves (high, low), for set checks over millions of ids:
    two ids are equal exactly when both halves are, since an id is 32 lowercase hex
    characters (what ``hexdigest`` and SQL's ``encode(..., 'hex')`` write).

    None when an id is null, not ``ID_HEX_CHARS`` characters, not hex, or has an uppercase
    digit: not a stable id, so only the exact check of the strings applies.
    """
    if ids.null_count:
        return None
    if ids.type != pa.string():  # DataFusion reads strings as Utf8View
        ids = ids.cast(pa.string())
    count = len(ids)
    offsets = np.frombuffer(ids.buffers()[1], np.int32, count + 1, ids.offset * 4)
    if count and not (np.diff(offsets) == ID_HEX_CHARS).all():
        return None
    start = int(offsets[0])
    text = np.frombuffer(ids.buffers()[2] or b"", np.uint8, count * ID_HEX_CHARS, start)
    digits = text.tobytes()
    words = np.frombuffer(digits, np.uint64)  # 4 words an id
    if count and np.bitwise_and.reduce(words) & _LOWER_HEX_BITS != _LOWER_HEX_BITS:
        return None
    try:
        halves = np.frombuffer(binascii.unhexlify(digits), ">u8").reshape(count, 2)
    except binascii.Error:
        return None
    return halves[:, 0].astype(np.uint64), halves[:, 1].astype(np.uint64)


def id_keys(ids: pa.Array) -> np.ndarray | None:
    """Each id folded to one 64-bit integer (its two halves XORed, ``id_halves``), for set
    checks over millions of ids: equal ids give equal keys, so keys without repeats prove the
    ids unique, and sorting 9.4 M integers takes 0.6 s where hashing the strings in
    DataFusion took 5 s and spilled its 1 GiB pool. Repeated keys prove nothing (distinct
    ids can share a key): the caller then asks the exact question of the strings.

    None when the ids are not stable ids (``id_halves``)."""
    halves = id_halves(ids)
    return None if halves is None else np.bitwise_xor(*halves)
