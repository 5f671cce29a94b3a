"""A minimal GraphQL client over urllib for the webserver tests."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def graphql(url: str, query: str) -> dict[str, Any]:
    """POST a GraphQL query to the webserver at ``url``; fail on GraphQL errors."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert not body.get("errors"), body["errors"]
    return dict(body["data"])
