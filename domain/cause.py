"""Who caused an event, and through which request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Transcoding

ACTOR_TYPES = ("user", "token", "system", "hook")


@dataclass(frozen=True)
class Cause:
    """The actor and request behind a change, stored in every event.

    `actor_id` is the public id of the user or token, `actor_email` the
    user's email when one is known, `request_id` the id of the HTTP request
    or command-line run that made the change.
    """

    actor_type: str
    actor_id: str | None = None
    actor_email: str | None = None
    request_id: str | None = None

    @classmethod
    def system(cls, request_id: str | None = None) -> Cause:
        return cls(actor_type="system", request_id=request_id)


class CauseAsDict(Transcoding):
    """Stores a Cause as a JSON object in the event's state."""

    type = Cause
    name = "cause"

    def encode(self, obj: Cause) -> dict[str, Any]:
        # Written out because dataclasses.asdict copies each field
        # recursively, which took a twentieth of a command's CPU time.
        return {"actor_type": obj.actor_type, "actor_id": obj.actor_id,
                "actor_email": obj.actor_email, "request_id": obj.request_id}

    def decode(self, data: dict[str, Any]) -> Cause:
        return Cause(**data)
