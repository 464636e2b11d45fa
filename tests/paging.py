"""Following Sentry's Link header through a paginated list."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import falcon.testing

_LINK = re.compile(r'<([^>]*)>; rel="(\w+)"; results="(\w+)"; cursor="([^"]*)"')


def links(response: falcon.testing.Result) -> dict[str, tuple[str, bool]]:
    """Return {rel: (url, results)} from a response's Link header."""
    return {rel: (url, results == "true")
            for url, rel, results, _ in _LINK.findall(response.headers["link"])}


def get_link(client: falcon.testing.TestClient, url: str,
             headers: dict[str, str]) -> falcon.testing.Result:
    parts = urlsplit(url)
    return client.simulate_get(parts.path, query_string=parts.query, headers=headers)


def all_pages(client: falcon.testing.TestClient, path: str, headers: dict[str, str],
              params: dict[str, str] | None = None, max_pages: int = 100) -> list[list[dict]]:
    """Read the first page, then every page that rel="next" marks as having results."""
    response = client.simulate_get(path, params=params or {}, headers=headers)
    pages = [response.json]
    for _ in range(max_pages):
        url, results = links(response)["next"]
        if not results:
            return pages
        response = get_link(client, url, headers)
        assert response.status_code == 200, response.json
        pages.append(response.json)
    raise AssertionError(f"More than {max_pages} pages at {path}.")
