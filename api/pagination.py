"""Keyset cursors and Sentry's `Link` header.

A cursor is `<key>:<tiebreak>:<direction>`, where direction 0 reads
forward (older items) and 1 backward. Keys are positions in a total order,
so a page never repeats or skips an item when rows are added or removed
between requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

import falcon

DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 100


@dataclass(frozen=True)
class Cursor:
    key: str
    tiebreak: str
    backward: bool

    def encode(self) -> str:
        return f"{self.key}:{self.tiebreak}:{int(self.backward)}"


def parse_cursor(req: falcon.Request) -> Cursor | None:
    value = req.get_param("cursor")
    if not value:
        return None
    key, sep, rest = value.partition(":")
    tiebreak, sep2, direction = rest.rpartition(":")
    if not sep or not sep2 or direction not in ("0", "1") or not key or not tiebreak:
        raise falcon.HTTPBadRequest(description=f"Invalid cursor {value[:80]!r}.")
    return Cursor(key, tiebreak, direction == "1")


def parse_integer_key(cursor: Cursor) -> tuple[int, int]:
    try:
        return int(cursor.key), int(cursor.tiebreak)
    except ValueError:
        raise falcon.HTTPBadRequest(description="Invalid cursor.") from None


def per_page(req: falcon.Request) -> int:
    value = req.get_param("per_page")
    if value is None:
        return DEFAULT_PER_PAGE
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_PER_PAGE:
        raise falcon.HTTPBadRequest(
            description=f"per_page must be an integer from 1 to {MAX_PER_PAGE}."
        )
    return number


def set_link_header(
    req: falcon.Request,
    resp: falcon.Response,
    previous: Cursor | None,
    has_previous: bool,
    following: Cursor | None,
    has_next: bool,
) -> None:
    """Write Sentry's `Link` header with a `previous` and a `next` item."""
    parts = [
        _link(req, previous, "previous", has_previous),
        _link(req, following, "next", has_next),
    ]
    resp.set_header("Link", ", ".join(parts))


def _link(req: falcon.Request, cursor: Cursor | None, rel: str, results: bool) -> str:
    value = cursor.encode() if cursor else "0:0:" + ("1" if rel == "previous" else "0")
    params = [(k, v) for k, v in req.params.items() if k != "cursor" and isinstance(v, str)]
    params += [(k, item) for k, v in req.params.items() if isinstance(v, list) for item in v]
    query = urlencode([*params, ("cursor", value)])
    url = f"{req.forwarded_prefix}{quote(req.path, safe='/@:')}?{query}"
    return f'<{url}>; rel="{rel}"; results="{str(results).lower()}"; cursor="{value}"'
