"""The `release-ledger` commands that read the record: verify, history and audit.

`verify` prints its progress on stderr and its result on stdout, and exits
with 1 when the chain is broken. `history` and `audit` print a table, or
one JSON object per line with --json, the same objects the API serves.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from api.audit import audit_body, audit_filter, history_body
from api.services import Queries, Services
from chain.verification import Anchor, Verifier
from domain.cause import Cause
from domain.dates import parse_datetime
from domain.errors import InvalidFieldError, NotFoundError
from domain.release import Release
from projections.database import Row

PAGE_SIZE = 500
MAX_DATA_WIDTH = 72
DURATION = re.compile(r"^(\d+)([smhdw])$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

Handler = Callable[[Services, argparse.Namespace, Cause], int]


def add_audit_commands(commands: argparse._SubParsersAction) -> None:
    verify = _command(commands, "verify", verify_ledger,
                      "check every recorded event against the hash chain")
    verify.add_argument(
        "--anchor", action="append", default=[], type=_anchor, metavar="POSITION:HASH",
        help="a head printed by an earlier run and kept elsewhere; the chain must still"
        " contain it; repeatable",
    )

    history = _command(commands, "history", show_history,
                       "print every event of a release, oldest first")
    history.add_argument("org")
    history.add_argument("version")
    history.add_argument("--json", action="store_true", help="print one JSON object per line")

    audit = _command(commands, "audit", show_audit,
                     "print an organization's audit log, newest first")
    audit.add_argument("org")
    audit.add_argument("--since", type=_instant, metavar="WHEN",
                       help="only events at or after WHEN: RFC 3339, or an age such as 30m,"
                       " 24h or 7d")
    audit.add_argument("--until", type=_instant, metavar="WHEN",
                       help="only events before WHEN, in the same forms as --since")
    audit.add_argument("--event", action="append", default=[], metavar="TYPE",
                       help="only events of this type, such as release.deleted; repeatable")
    audit.add_argument("--actor", help="only events caused by this user id or email")
    audit.add_argument("--project", help="only events concerning this project (slug or id)")
    audit.add_argument("--version", help="only events of the release with this version")
    audit.add_argument("--json", action="store_true", help="print one JSON object per line")


def verify_ledger(services: Services, args: argparse.Namespace, cause: Cause) -> int:
    verifier = Verifier(services.ledger.recorder, progress=_print_progress)
    result = verifier.verify(tuple(args.anchor))
    head = f"{result.head_position}:{result.head_hash}"
    if result.first_break is None:
        print(f"Verified {result.events} events: the chain is intact.")
        print(f"Head: {head}")
        return 0
    found = result.first_break
    print(f"Chain broken at position {found.position} ({found.kind}): {found.reason}.")
    print(f"{result.events} events verified before the break; last intact link {head}.")
    return 1


def show_history(services: Services, args: argparse.Namespace, cause: Cause) -> int:
    with services.read("directory", "audit") as queries:
        organization = _organization(queries, args.org)
        release_id = Release.create_id(UUID(organization["id"]), args.version)
        if not queries.audit.has_history(release_id):
            raise NotFoundError(f"Release {args.version!r} not found in {args.org!r}.")
        rows = _all(lambda after: queries.audit.history(release_id, after, None, PAGE_SIZE))
        items = [history_body(row) for row in rows]
    _print(items, args.json, ("id", "sequence", "dateCreated", "type", "actor", "requestId",
                              "data"))
    return 0


def show_audit(services: Services, args: argparse.Namespace, cause: Cause) -> int:
    with services.read("directory", "audit") as queries:
        organization = _organization(queries, args.org)
        where = audit_filter(
            queries, organization["id"], event_types=args.event, actor=args.actor,
            project=args.project, version=args.version,
            start=args.since and args.since.isoformat(), end=args.until and args.until.isoformat(),
        )
        rows = _all(lambda after: queries.audit.page(organization["id"], where, after, None,
                                                     PAGE_SIZE))
        items = [audit_body(row) for row in rows]
    _print(items, args.json, ("id", "dateCreated", "type", "target", "actor", "requestId",
                              "data"))
    return 0


def _organization(queries: Queries, slug: str) -> Row:
    organization = queries.directory.organization(slug)
    if organization is None:
        raise NotFoundError(f"Organization {slug!r} not found.")
    return organization


def _all(read_page: Callable[[int | None], list[Row]]) -> Iterator[Row]:
    """Yield the rows of every page, each page starting after the previous page's last row."""
    after = None
    while True:
        rows = read_page(after)
        yield from rows
        if len(rows) < PAGE_SIZE:
            return
        after = rows[-1]["position"]


def _print(items: list[dict[str, Any]], as_json: bool, columns: tuple[str, ...]) -> None:
    if as_json:
        for item in items:
            print(json.dumps(item, sort_keys=True))
        return
    table = [[_cell(column, item.get(column)) for column in columns] for item in items]
    headers = [_header(column) for column in columns]
    widths = [
        max(len(row[index]) for row in [headers, *table]) for index in range(len(columns))
    ]
    for row in [headers, *table]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def _header(column: str) -> str:
    return {"dateCreated": "TIME", "requestId": "REQUEST", "sequence": "SEQ"}.get(
        column, column.upper()
    )


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column == "dateCreated":
        return value[:19].replace("T", " ") + "Z"
    if column == "actor":
        return value["email"] or f"{value['type']}:{value['id'] or '-'}"
    if column == "target":
        return f"{value['type']}:{value['name'] or value['id']}"
    if column == "data":
        return _summary(value)
    return str(value)


def _summary(data: dict[str, Any]) -> str:
    """Render event data on one line, counting lists of objects and cutting long lines."""
    parts = []
    for key, value in data.items():
        if isinstance(value, list) and any(isinstance(item, dict) for item in value):
            shown = f"[{len(value)} items]"
        else:
            shown = json.dumps(value, separators=(",", ":"))
        parts.append(f"{key}={shown}")
    text = " ".join(parts) or "-"
    return text if len(text) <= MAX_DATA_WIDTH else text[: MAX_DATA_WIDTH - 3] + "..."


def _print_progress(position: int, stop: int) -> None:
    percent = 100 if stop == 0 else position * 100 // stop
    print(f"Verified up to position {position} of {stop} ({percent}%).", file=sys.stderr,
          flush=True)


def _anchor(text: str) -> Anchor:
    try:
        return Anchor.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _instant(text: str) -> datetime:
    """Parse an RFC 3339 datetime, or an age such as 24h, counted back from now."""
    age = DURATION.match(text.strip())
    if age:
        amount, unit = age.groups()
        return datetime.now(UTC) - timedelta(**{DURATION_UNITS[unit]: int(amount)})
    try:
        parsed = parse_datetime("WHEN", text)
    except InvalidFieldError as error:
        raise argparse.ArgumentTypeError(error.message) from None
    assert parsed is not None
    return parsed


def _command(
    commands: argparse._SubParsersAction, name: str, handler: Handler, help_text: str
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser
