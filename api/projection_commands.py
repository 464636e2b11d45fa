"""The `release-ledger projections` commands: inspect, rebuild and drop read models."""

from __future__ import annotations

import argparse
import json
import sys

from api.progress import ProgressReport
from api.services import Services
from domain.cause import Cause
from domain.errors import NotFoundError
from projections.projection import Projection
from projections.rebuild import (
    DEFAULT_REBUILD_BATCH_SIZE,
    SQLITE_PAUSE_SECONDS,
    Rebuild,
    RebuildError,
)
from projections.retirement import drop_retired
from projections.status import ReadModelStatus, read_model_statuses

TABLE_HEADINGS = ("READ MODEL", "POSITION", "HEAD", "LAG EVENTS", "LAG SECONDS", "STATE")


def add_projection_commands(commands: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add the `projections` group; return its subcommands so more can join them."""
    group = commands.add_parser("projections", help="inspect, rebuild and drop read models")
    actions = group.add_subparsers(metavar="ACTION", required=True)

    list_parser = actions.add_parser(
        "list", help="show each read model's position, lag and state",
        description="Show each read model's position, the ledger's head, the lag in events"
        " and in seconds, and its state: live, rebuilding, stopped or failed.",
    )
    list_parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    list_parser.set_defaults(handler=list_read_models)

    rebuild_parser = actions.add_parser(
        "rebuild", help="rebuild a read model from position zero without downtime",
        description="Build a fresh copy of a read model from position zero beside the live"
        " one, then switch readers to it in one transaction. An interrupted rebuild resumes"
        " where it stopped.",
    )
    rebuild_parser.add_argument("name", help="the read model, e.g. releases_v1")
    rebuild_parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_REBUILD_BATCH_SIZE, metavar="EVENTS",
        help=f"events applied per transaction (default {DEFAULT_REBUILD_BATCH_SIZE})",
    )
    rebuild_parser.add_argument(
        "--pause", type=float, metavar="SECONDS",
        help="sleep after each batch to leave a busy database room (default 0 on"
        f" PostgreSQL and {SQLITE_PAUSE_SECONDS} on SQLite, whose single write lock"
        " writers would otherwise wait for)",
    )
    rebuild_parser.add_argument(
        "--restart", action="store_true",
        help="discard an interrupted copy and start again from position zero",
    )
    rebuild_parser.set_defaults(handler=rebuild_read_model)

    drop_parser = actions.add_parser(
        "drop", help="drop the tables and position of a read model no longer registered",
        description="Drop the tables, rebuild copy and position of a read model that was"
        " removed from the registry, such as an earlier version of a changed one. Run it"
        " once no process runs a release that still registers the model. The ledger keeps"
        " every event, so registering the model again refills it by replay.",
    )
    drop_parser.add_argument("name", help="the retired read model, e.g. releases_v1")
    drop_parser.set_defaults(handler=drop_read_model)
    return actions


def list_read_models(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    statuses = read_model_statuses(
        services.ledger, services.database, services.projector.projections
    )
    if args.json:
        for status in statuses:
            print(json.dumps(status.as_dict()))
        return
    rows = [TABLE_HEADINGS, *(_table_row(status) for status in statuses)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(TABLE_HEADINGS) - 1)]
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:], strict=True)]
        print("  ".join([*cells, row[-1]]))


def _table_row(status: ReadModelStatus) -> tuple[str, ...]:
    state = f"{status.state}: {status.detail}" if status.detail else status.state
    return (
        status.name,
        str(status.position),
        str(status.head),
        str(status.lag_events),
        f"{status.lag_seconds:.1f}",
        state,
    )


def rebuild_read_model(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    projection = _registered(services, args.name)
    rebuild = Rebuild(
        services.ledger,
        services.database,
        projection,
        batch_size=args.batch_size,
        pause=args.pause,
        report=ProgressReport(sys.stderr),
    )
    try:
        position = rebuild.run(restart=args.restart)
    except KeyboardInterrupt:
        raise RebuildError(
            f"Rebuild of {args.name} interrupted; run the same command to resume it."
        ) from None
    print(f"Rebuilt {args.name} from position zero; it is live at position {position}.")


def drop_read_model(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    tables = drop_retired(services.database, services.projector.projections, args.name)
    listed = ", ".join(tables) if tables else "none"
    print(f"Dropped read model {args.name} and its tables: {listed}.")


def _registered(services: Services, name: str) -> Projection:
    for projection in services.projector.projections:
        if projection.name == name:
            return projection
    names = ", ".join(p.name for p in services.projector.projections)
    raise NotFoundError(f"Read model {name!r} is not registered; registered: {names}.")
