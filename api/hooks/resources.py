"""The hook URL itself, and the endpoint that shows and rotates a project's hook secret."""

from __future__ import annotations

import hashlib
import hmac
import logging
from uuid import UUID

import falcon

from api import response_schemas as bodies
from api import schemas
from api.auth import WRITE_SCOPES
from api.hooks.builtin import BuiltinPlugin
from api.hooks.heroku import HerokuPlugin
from api.hooks.plugin import HookPlugin, ReleaseActions
from api.operations import Response, operation
from api.resource import Resource, set_position
from api.services import Services
from domain.cause import Cause
from domain.errors import PermissionDeniedError

logger = logging.getLogger("api.hooks")

HOOK_TOKEN_SCOPES = frozenset({"project:admin", "project:releases"})
INVALID_HOOK = schemas.INVALID_HOOK
HOOK_TOKEN = Response("The secret and the builtin hook's URL", bodies.HOOK_TOKEN)


def sign(hook_token: str, plugin: str, project_public_id: str) -> str:
    """Return the hex HMAC-SHA256 of `<plugin>-<project id>` under the project's hook secret."""
    message = f"{plugin}-{project_public_id}".encode()
    return hmac.new(hook_token.encode(), message, hashlib.sha256).hexdigest()


def hook_plugins(services: Services) -> dict[str, HookPlugin]:
    plugins: list[HookPlugin] = [
        BuiltinPlugin(services.settings.max_release_body_bytes),
        HerokuPlugin(),
    ]
    return {plugin.name: plugin for plugin in plugins}


class ReleaseHook(Resource):
    """POST /api/hooks/release/{plugin}/{project_id}/{signature}/: no bearer token needed.

    A wrong signature, an unknown plugin and an unknown project all answer
    the same 403, so a caller learns nothing about which part was wrong.
    """

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.plugins = hook_plugins(services)

    @operation(
        "Start and finish a release from a deploy platform",
        {200: Response("The release", bodies.RELEASE, headers=("X-Ledger-Position",))},
        body=(schemas.BUILTIN_HOOK, schemas.HEROKU_HOOK), reads_body=False, public=True,
        errors=(400, 403, 409, 413, 415, 503),
        description="The builtin plugin takes JSON, the heroku plugin Heroku's form post."
        " No token is needed: the URL's signature is the HMAC-SHA256 of"
        " '<plugin>-<project id>' under the project's hook secret.",
    )
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, plugin: str, project_id: str,
        signature: str,
    ) -> None:
        project = self._project(plugin, project_id, signature)
        cause = Cause("hook", f"{plugin}:{project_id}", None, req.context.request_id)
        actions = ReleaseActions(
            self.services, UUID(project["org_id"]), UUID(project["id"]), cause
        )
        version = self.plugins[plugin].handle(req, actions)
        logger.info("release hook applied", extra={
            "request_id": req.context.request_id, "plugin": plugin, "project_id": project_id,
            "version": version,
        })
        self.respond_with_release(req, resp, project["org_id"], version, actions.position)

    def _project(self, plugin: str, project_id: str, signature: str) -> dict:
        with self.services.read("directory") as queries:
            project = None
            if project_id.isascii() and project_id.isdigit() and len(project_id) < 19:
                project = queries.directory.project_by_public_id_any(int(project_id))
        hook_token = None
        if project is not None:
            hook_token = self.services.ledger.hook_token(UUID(project["id"]), Cause.system())
        expected = sign(hook_token or "unknown project", plugin, project_id)
        valid = hmac.compare_digest(expected.encode(), signature.encode())
        if not valid or project is None or plugin not in self.plugins:
            raise falcon.HTTPForbidden(description=INVALID_HOOK)
        return project


class ProjectHookToken(Resource):
    """GET shows a project's hook secret and URL; POST replaces the secret."""

    scopes = {"GET": WRITE_SCOPES | HOOK_TOKEN_SCOPES, "POST": WRITE_SCOPES | HOOK_TOKEN_SCOPES}

    @operation("Show a project's hook secret", {200: HOOK_TOKEN})
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str, project: str) -> None:
        row = self._project(req, org, project)
        token = self.services.ledger.hook_token(UUID(row["id"]), self.cause(req))
        resp.media = self._body(token, row)

    @operation("Replace a project's hook secret", {200: HOOK_TOKEN})
    def on_post(self, req: falcon.Request, resp: falcon.Response, org: str, project: str) -> None:
        row = self._project(req, org, project)
        outcome = self.services.ledger.rotate_hook_token(UUID(row["id"]), self.cause(req))
        resp.media = self._body(outcome.aggregate.hook_token, row)
        set_position(resp, outcome.position)

    def _project(self, req: falcon.Request, org: str, slug: str) -> dict:
        """Return the project for callers that may administer its releases.

        Those are tokens with project:admin or project:releases, and
        organization owners, admins and superusers.
        """
        with self.services.read("directory") as queries:
            access = self.access(queries, req, org)
            project = self.project(queries, access, slug)
        caller = req.context.caller
        if not (caller.scopes & HOOK_TOKEN_SCOPES or access.is_admin):
            raise PermissionDeniedError(
                "Reading or rotating a release-hook secret needs project:admin or"
                " project:releases, or an owner or admin of the organization."
            )
        return project

    def _body(self, token: str, project: dict) -> dict:
        base = self.services.settings.public_url.rstrip("/")
        project_id = str(project["public_id"])
        signature = sign(token, "builtin", project_id)
        return {
            "token": token,
            "webhookUrl": f"{base}/api/hooks/release/builtin/{project_id}/{signature}/",
        }
