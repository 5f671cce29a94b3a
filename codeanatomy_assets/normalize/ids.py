"""The stable id formula, in one place, as SQL (used by the views) and Python (its reference).

    node_id = hex(sha256(repo_id ␟ path ␟ kind ␟ discriminator ␟ bstart ␟ bend))[:32]
    edge_id = hex(sha256(repo_id ␟ edge_kind ␟ src_node_id ␟ dst_node_id ␟ discriminator))[:32]

(␟ is U+001F, the unit separator; NULL parts are empty strings.) 128 bits of SHA-256: ids are
deterministic across runs and machines, unique across repositories (``repo_id`` is hashed in),
and unchanged across commits for an unchanged ``(path, kind, span)``: the commit is not part of
the formula. ``discriminator`` separates nodes that share a kind and a span: the ``ast`` type
(plus ``#n`` for the n-th duplicate) for syntax nodes, the symbol table path for scopes and
symbols, the dotted name for externals; for edges, what tells two edges between the same
nodes apart (the AST field, a branch label...).
"""

from __future__ import annotations

import binascii
import hashlib

import numpy as np
import pyarrow as pa

ID_HEX_CHARS = 32
_SEP = "\x1f"


def node_id(repo_id: str, path: str, kind: str, discriminator: str, bstart: int, bend: int) -> str:
    """Python reference of ``node_id_sql`` (tests assert both agree)."""
    parts = (repo_id, path, kind, discriminator, str(bstart), str(bend))
    return hashlib.sha256(_SEP.join(parts).encode("utf-8")).hexdigest()[:ID_HEX_CHARS]


def edge_id(repo_id: str, edge_kind: str, src: str, dst: str, discriminator: str) -> str:
    """Python reference of ``edge_id_sql``."""
    parts = (repo_id, edge_kind, src, dst, discriminator)
    return hashlib.sha256(_SEP.join(parts).encode("utf-8")).hexdigest()[:ID_HEX_CHARS]


def _hash_sql(parts: list[str]) -> str:
    joined = ", ".join(f"coalesce(CAST({p} AS VARCHAR), '')" for p in parts)
    return (
        f"substr(encode(digest(concat_ws(chr(31), {joined}), 'sha256'), 'hex'), 1, {ID_HEX_CHARS})"
    )


def sql_literal(value: str) -> str:
    """A SQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def node_id_sql(
    repo_id: str, path: str, kind: str, discriminator: str, bstart: str, bend: str
) -> str:
    """SQL expression of the node id; ``repo_id`` is a value, the others are SQL expressions."""
    return _hash_sql([sql_literal(repo_id), path, kind, discriminator, bstart, bend])


def edge_id_sql(repo_id: str, edge_kind: str, src: str, dst: str, discriminator: str) -> str:
    """SQL expression of the edge id; ``repo_id`` is a value, the others are SQL expressions."""
    return _hash_sql([sql_literal(repo_id), edge_kind, src, dst, discriminator])


def id_keys(ids: pa.Array) -> np.ndarray | None:
    """Each id folded to one 64-bit integer (its two 64-bit halves XORed), for set checks over
    millions of ids: equal ids give equal keys, so keys without repeats prove the ids unique,
    and sorting 9.4 M integers takes 0.6 s where hashing the strings in DataFusion took 5 s and
    spilled its 1 GiB pool. Repeated keys prove nothing (distinct ids can share a key): the
    caller then asks the exact question of the strings.

    None when an id is null or not ``ID_HEX_CHARS`` hex characters: not a stable id, so only
    the exact check applies.
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
    try:
        halves = np.frombuffer(binascii.unhexlify(text.tobytes()), ">u8").reshape(count, 2)
    except binascii.Error:
        return None
    return np.bitwise_xor(halves[:, 0], halves[:, 1]).astype(np.uint64)
