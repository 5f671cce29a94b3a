"""The commit partitions: one dynamic partitions definition and its key codec.

A partition is one commit of one repository, keyed ``<repo_id>@<40-hex sha>``. A single
dynamic partitions definition holds every repository's commits: Dagster's multi-partitions
would form the cross product of all repositories and all commits, which is mostly invalid
keys. The key rules are the lake's (``storage.lake.check_partition``), so a key that decodes
is always safe as a Delta partition value and in a SQL predicate.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from codeanatomy_assets.storage.lake import LakeError, check_partition

__all__ = [
    "COMMITS_PARTITIONS",
    "PARTITION_KEY_FORM",
    "CommitPartition",
    "PartitionKeyError",
    "decode_partition_key",
    "encode_partition_key",
]

COMMITS_PARTITIONS = dg.DynamicPartitionsDefinition(name="commits")
PARTITION_KEY_FORM = "<repo_id>@<40-hex lowercase commit sha>"
_SEPARATOR = "@"


class PartitionKeyError(ValueError):
    """A partition key is not of the form ``<repo_id>@<sha>``; the message names the key."""


@dataclass(frozen=True, slots=True)
class CommitPartition:
    """A decoded partition key: the repository slug and the full commit sha."""

    repo_id: str
    sha: str

    @property
    def key(self) -> str:
        """The partition key this value encodes to."""
        return f"{self.repo_id}{_SEPARATOR}{self.sha}"


def encode_partition_key(repo_id: str, sha: str) -> str:
    """Return ``<repo_id>@<sha>``, refusing values the lake would refuse."""
    try:
        check_partition(repo_id, sha)
    except LakeError as exc:
        raise PartitionKeyError(
            f"cannot build a partition key from repo_id={repo_id!r}, sha={sha!r}: {exc}; "
            f"expected form is {PARTITION_KEY_FORM}"
        ) from exc
    return f"{repo_id}{_SEPARATOR}{sha}"


def decode_partition_key(key: str) -> CommitPartition:
    """Split a partition key into repo id and sha, failing with the key and the expected form."""
    repo_id, separator, sha = key.rpartition(_SEPARATOR)
    if not separator:
        raise PartitionKeyError(
            f"partition key {key!r} is malformed: missing '@'; expected {PARTITION_KEY_FORM}"
        )
    try:
        check_partition(repo_id, sha)
    except LakeError as exc:
        raise PartitionKeyError(
            f"partition key {key!r} is malformed: {exc}; expected {PARTITION_KEY_FORM}"
        ) from exc
    return CommitPartition(repo_id, sha)
