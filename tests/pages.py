"""Following Sentry's `Link` header through every page, as sentry-cli does."""

from __future__ import annotations

import re
from typing import Any

import falcon.testing

LINK_ITEM = re.compile(r'<[^>]*>; rel="(\w+)"; results="(true|false)"; cursor="([^"]*)"')


def next_cursor(link_header: str) -> str | None:
    """Return the cursor of the `next` item when it reports that more results follow."""
    for rel, results, cursor in LINK_ITEM.findall(link_header):
        if rel == "next" and results == "true":
            return cursor
    return None


def all_pages(
    client: falcon.testing.TestClient,
    path: str,
    headers: dict[str, str],
    params: dict[str, Any] | None = None,
    max_pages: int = 1000,
) -> tuple[list[Any], int]:
    """Return every item of a paginated list and the number of pages read."""
    items: list[Any] = []
    cursor = ""
    for page in range(1, max_pages + 1):
        response = client.simulate_get(path, params={**(params or {}), "cursor": cursor},
                                       headers=headers)
        assert response.status_code == 200, response.text
        items.extend(response.json)
        cursor = next_cursor(response.headers["link"])
        if cursor is None:
            return items, page
    raise AssertionError(f"{path} has more than {max_pages} pages")
