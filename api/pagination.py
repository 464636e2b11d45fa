"""Keyset cursors and Sentry's `Link` header.

A cursor is `<key>:<tiebreak>:<direction>`, where direction 0 reads
forward (older items) and 1 backward. Keys are positions in a total order,
so a page never repeats or skips an item when rows are added or removed
between requests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote, quote_plus, urlencode

import falcon

MIN_INT64 = -(2**63)
MAX_INT64 = 2**63 - 1

Item = TypeVar("Item")


@dataclass(frozen=True)
class Cursor:
    key: str
    tiebreak: str
    backward: bool

    def encode(self) -> str:
        return f"{self.key}:{self.tiebreak}:{int(self.backward)}"


def parse_cursor(req: falcon.Request) -> Cursor | None:
    value = req.context.query.get("cursor")
    if not value:
        return None
    key, sep, rest = value.partition(":")
    tiebreak, sep2, direction = rest.rpartition(":")
    if not sep or not sep2 or direction not in ("0", "1") or not key or not tiebreak:
        raise falcon.HTTPBadRequest(description=f"Invalid cursor {value[:80]!r}.")
    if key == "0" and tiebreak == "0":
        # Sentry's cursor for no position, which the Link header also
        # writes when a page has no items. It reads the first page.
        return None
    return Cursor(key, tiebreak, direction == "1")


def parse_integer_key(cursor: Cursor) -> tuple[int, int]:
    return parse_int64(cursor.key), parse_int64(cursor.tiebreak)


def parse_int64(text: str) -> int:
    """Return a cursor part as an integer that both databases can compare with."""
    try:
        number = int(text) if text.isascii() else None
    except ValueError:
        number = None
    if number is None or not MIN_INT64 <= number <= MAX_INT64:
        raise falcon.HTTPBadRequest(description="Invalid cursor.")
    return number


def parse_position_cursor(req: falcon.Request) -> tuple[Cursor | None, int | None, int | None]:
    """Parse a cursor over ledger positions; return it, and the position to read after or before."""
    cursor = parse_cursor(req)
    if cursor is None:
        return None, None, None
    position = parse_int64(cursor.key)
    return (cursor, None, position) if cursor.backward else (cursor, position, None)


def position_cursor(position: int, *, backward: bool) -> Cursor:
    return Cursor(str(position), "0", backward)


def link_page(
    req: falcon.Request,
    resp: falcon.Response,
    rows: Sequence[Item],
    cursor: Cursor | None,
    limit: int,
    to_cursor: Callable[[Item, bool], Cursor],
) -> list[Item]:
    """Trim a page read with one row extra and write its Link header.

    `rows` are in list order; reading backward, the extra row is the first.
    """
    backward = cursor is not None and cursor.backward
    more = len(rows) > limit
    page = list(rows)
    if more:
        page = page[1:] if backward else page[:limit]
    has_next = more if not backward else True
    has_previous = (more if backward else cursor is not None) and bool(page)
    first = to_cursor(page[0], True) if page else None
    last = to_cursor(page[-1], False) if page else cursor
    set_link_header(req, resp, first, has_previous, last, has_next and bool(page))
    return page


def per_page(req: falcon.Request) -> int:
    """Return the page size, which the operation's query schema has checked."""
    return req.context.query["per_page"]


def set_link_header(
    req: falcon.Request,
    resp: falcon.Response,
    previous: Cursor | None,
    has_previous: bool,
    following: Cursor | None,
    has_next: bool,
) -> None:
    """Write Sentry's `Link` header with a `previous` and a `next` item."""
    params = [(k, v) for k, v in req.params.items() if k != "cursor" and isinstance(v, str)]
    params += [(k, item) for k, v in req.params.items() if isinstance(v, list) for item in v]
    query = urlencode(params)
    base = f"{req.forwarded_prefix}{quote(req.path, safe='/@:')}?{query}{'&' if query else ''}"
    parts = [
        _link(base, previous, "previous", has_previous),
        _link(base, following, "next", has_next),
    ]
    resp.set_header("Link", ", ".join(parts))


def _link(base: str, cursor: Cursor | None, rel: str, results: bool) -> str:
    """Return one item of the `Link` header; `base` is the request's URL up to the cursor."""
    value = cursor.encode() if cursor else "0:0:" + ("1" if rel == "previous" else "0")
    url = f"{base}cursor={quote_plus(value)}"
    return f'<{url}>; rel="{rel}"; results="{str(results).lower()}"; cursor="{value}"'
