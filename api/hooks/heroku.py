"""The Heroku hook: the form post Heroku's deploy hook sends after a release."""

from __future__ import annotations

from urllib.parse import parse_qs

import falcon

from api import requests
from api.hooks.plugin import HookPlugin, ReleaseActions
from domain.commits import MAX_COMMIT_ID_LENGTH
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
        version = _field(form, "head_long", required=True)
        if len(version) > MAX_COMMIT_ID_LENGTH:
            raise InvalidFieldError("head_long", f"Use at most {MAX_COMMIT_ID_LENGTH} characters.")
        previous = _field(form, "prev_head") or None
        if previous is not None and len(previous) > MAX_COMMIT_ID_LENGTH:
            raise InvalidFieldError("prev_head", f"Use at most {MAX_COMMIT_ID_LENGTH} characters.")
        actions.start(
            version,
            url=_field(form, "url") or None,
            owner_email=_field(form, "user") or None,
        )
        actions.set_ref(version, _field(form, "app") or DEFAULT_REPOSITORY, version, previous)
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


def _field(form: dict[str, list[str]], name: str, *, required: bool = False) -> str:
    values = form.get(name) or [""]
    value = values[0]
    if required and not value:
        raise InvalidFieldError(name, "This field is required.")
    if len(value) > requests.MAX_URL_LENGTH:
        raise InvalidFieldError(name, f"Use at most {requests.MAX_URL_LENGTH} characters.")
    return value
