"""The builtin hook: a JSON body with the fields of the REST API's release create."""

from __future__ import annotations

import falcon

from api import requests
from api.hooks.plugin import HookPlugin, ReleaseActions


class BuiltinPlugin(HookPlugin):
    name = "builtin"

    def __init__(self, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes

    def handle(self, req: falcon.Request, actions: ReleaseActions) -> str:
        body = requests.read_json(req, self.max_body_bytes)
        version = requests.required_string(body, "version")
        commits = requests.commits(body)
        date_started = requests.date(body, "dateStarted")
        date_released = requests.date(body, "dateReleased")
        actions.start(
            version,
            ref=requests.optional_string(body, "ref", requests.MAX_REF_LENGTH),
            url=requests.optional_string(body, "url", requests.MAX_URL_LENGTH),
            date_started=date_started,
        )
        if commits is not None:
            actions.set_commits(version, commits)
        actions.finish(version, date_released)
        return version
