"""The Heroku hook: the form post Heroku's deploy hook sends after a release."""

from __future__ import annotations

from urllib.parse import parse_qs

import falcon

from api import requests, schemas
from api.hooks.plugin import HookPlugin, ReleaseActions
from domain.errors import InvalidFieldError

MAX_FORM_BYTES = 64 * 1024
# Heroku's hook names the app, not a repository, so the app's name stands
# for the repository the range belongs to; without one, this name does.
DEFAULT_REPOSITORY = "heroku"


class HerokuPlugin(HookPlugin):
    """Finishes a release named by `head_long`; `user` becomes the owner when it is a member.

    The range `prev_head..head_long` is recorded as a ref of the repository
    named after the Heroku app.
    """

    name = "heroku"

    def handle(self, req: falcon.Request, actions: ReleaseActions) -> str:
        form = _read_form(req)
        fields = {name: values[0] for name, values in form.items()
                  if name in schemas.HEROKU_HOOK.schema["properties"]}
        requests.validate(fields, schemas.HEROKU_HOOK)
        version = fields["head_long"]
        previous = fields.get("prev_head") or None
        actions.start(
            version,
            url=fields.get("url") or None,
            owner_email=fields.get("user") or None,
        )
        repository_name = fields.get("app") or DEFAULT_REPOSITORY
        actions.set_ref(version, repository_name, version, previous)
        actions.finish(version)
        return version


def _read_form(req: falcon.Request) -> dict[str, list[str]]:
    media_type = (req.content_type or "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise falcon.HTTPUnsupportedMediaType(
            description="Send the Heroku hook as application/x-www-form-urlencoded."
        )
    raw = req.bounded_stream.read(MAX_FORM_BYTES + 1)
    if len(raw) > MAX_FORM_BYTES:
        raise falcon.HTTPContentTooLarge(description=f"The form exceeds {MAX_FORM_BYTES} bytes.")
    try:
        return parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidFieldError("form", "The form is not valid UTF-8.") from None

