"""Links of the hash chain and how their hashes are computed.

The link at a ledger position stores SHA-256(previous link's hash +
canonical bytes of the event stored at that position), so each hash
depends on every event recorded before it. The canonical bytes are the
position, the originator id, the originator version, the topic and the
state exactly as stored, each preceded by its length as 8 big-endian
bytes, so no two different events share an encoding. On PostgreSQL the
append function in chain.postgres computes the same hashes in SQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

CHAIN_TABLE = "ledger_chain"
GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class Link:
    """One link of the chain: the event it binds and the chain's hash up to it.

    `previous_position` is the position of the link before, 0 for the
    first; it lets verification tell a removed event from a changed one.
    """

    position: int
    previous_position: int
    originator_id: str
    originator_version: int
    hash: str


@dataclass(frozen=True)
class RecordedEvent:
    """An event as stored at a ledger position."""

    position: int
    originator_id: str
    originator_version: int
    topic: str
    state: bytes


def originator_text(originator_id: UUID | str) -> str:
    """Return the one text form of an originator id that links store and hash."""
    return str(originator_id)


def canonical_bytes(event: RecordedEvent) -> bytes:
    parts = (
        str(event.position).encode(),
        event.originator_id.encode(),
        str(event.originator_version).encode(),
        event.topic.encode(),
        bytes(event.state),
    )
    return b"".join(len(part).to_bytes(8, "big") + part for part in parts)


def link_hash(previous_hash: str, event: RecordedEvent) -> str:
    return hashlib.sha256(bytes.fromhex(previous_hash) + canonical_bytes(event)).hexdigest()


def next_links(head: Link | None, events: Sequence[RecordedEvent]) -> list[Link]:
    """Return the links that append `events`, in position order, after `head`."""
    links = []
    previous_position = head.position if head else 0
    previous_hash = head.hash if head else GENESIS_HASH
    for event in sorted(events, key=lambda event: event.position):
        link = Link(
            position=event.position,
            previous_position=previous_position,
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            hash=link_hash(previous_hash, event),
        )
        links.append(link)
        previous_position, previous_hash = link.position, link.hash
    return links


def link_row(link: Link) -> tuple[Any, ...]:
    """Return the values of a link in the column order of the chain table."""
    return (
        link.position,
        link.previous_position,
        link.originator_id,
        link.originator_version,
        link.hash,
    )
