"""Git access from objects only: commits, trees and blob contents at any commit.

Nothing here reads the work tree, so any historical commit can be built without a checkout,
and nothing here follows a symlink: a link in the tree is a skipped entry.
"""

from codeanatomy_assets.repo.git import (
    BlobEntry,
    CommitInfo,
    GitRepository,
    RepositoryError,
    RevisionError,
)

__all__ = ["BlobEntry", "CommitInfo", "GitRepository", "RepositoryError", "RevisionError"]
