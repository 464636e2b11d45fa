"""The builtin hook: a JSON body with the fields of the REST API's release create."""

from __future__ import annotations

import falcon

from api import requests, schemas
from api.hooks.plugin import HookPlugin, ReleaseActions
from domain.commits import check_commits


class BuiltinPlugin(HookPlugin):
    name = "builtin"

    def __init__(self, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes

    def handle(self, req: falcon.Request, actions: ReleaseActions) -> str:
        body = requests.validate(requests.read_json(req, self.max_body_bytes),
                                 schemas.BUILTIN_HOOK)
        version = body["version"]
        commits = None if body.get("commits") is None else check_commits(body["commits"])
        date_started = requests.date(body, "dateStarted")
        date_released = requests.date(body, "dateReleased")
        actions.start(version, ref=body.get("ref"), url=body.get("url"),
                      date_started=date_started)
        if commits is not None:
            actions.set_commits(version, commits)
        actions.finish(version, date_released)
        return version
