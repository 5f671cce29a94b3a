"""The partition key codec: round trip, and clear refusals of malformed keys."""

from __future__ import annotations

import pytest

from codeanatomy_assets.partitions import (
    COMMITS_PARTITIONS,
    CommitPartition,
    PartitionKeyError,
    decode_partition_key,
    encode_partition_key,
)

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_round_trip() -> None:
    key = encode_partition_key("my-repo.v2", SHA)
    assert key == f"my-repo.v2@{SHA}"
    assert decode_partition_key(key) == CommitPartition("my-repo.v2", SHA)
    assert decode_partition_key(key).key == key
    assert COMMITS_PARTITIONS.name == "commits"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (SHA, "missing '@'"),
        (f"@{SHA}", "repo_id ''"),
        (f"Upper@{SHA}", "repo_id 'Upper'"),
        (f"a/b@{SHA}", "repo_id 'a/b'"),
        ("repo@abc123", "commit 'abc123'"),
        (f"repo@{SHA.upper()}", "commit"),
        (f"repo@{SHA}@x", "repo_id 'repo@"),
        (f"repo@{SHA} ", "commit"),
    ],
)
def test_malformed_keys_name_the_key_and_the_form(key: str, reason: str) -> None:
    with pytest.raises(PartitionKeyError) as info:
        decode_partition_key(key)
    message = str(info.value)
    assert repr(key) in message
    assert reason in message
    assert "<repo_id>@<40-hex lowercase commit sha>" in message


def test_encode_refuses_what_the_lake_refuses() -> None:
    with pytest.raises(PartitionKeyError, match="repo_id 'has space'"):
        encode_partition_key("has space", SHA)
    with pytest.raises(PartitionKeyError, match="commit 'HEAD'"):
        encode_partition_key("repo", "HEAD")
