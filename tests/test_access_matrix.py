"""Every operation of the OpenAPI document, called by every kind of caller, with the exact status.

A caller gets 401 without a valid token, 403 when its token lacks the
scope or it lacks the role, and 404 for anything it may not see, never a
403 that would confirm it exists. No response shows internals or another
organization's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest

from api.audit import AUDIT_SCOPES
from api.auth import READ_SCOPES
from api.hooks.resources import HOOK_TOKEN_SCOPES, sign
from api.openapi import routes
from domain.application import ReleaseChanges
from domain.commits import check_commits
from domain.directory import SCOPES
from tests.builders import CAUSE, RELEASE_SCOPES, World
from tests.fuzz_checks import internals

SUCCESS = "success"
SECRET = "globex-secret"


@dataclass
class Target:
    """The things of one organization that the operations name."""

    org: str
    org_id: UUID
    project: str
    project_id: UUID
    team: str
    version: str = "shared"
    file_id: int = 0
    short_id: str = ""
    repo_id: int = 0


@dataclass
class Caller:
    name: str
    authorization: str | None
    target: Target
    scopes: frozenset[str] = frozenset()
    kind: str = "user"
    admin: bool = False
    superuser: bool = False
    sees_project: bool = True


@dataclass
class Spec:
    """How an operation decides access, and how to build a request to it."""

    access: str
    body: Callable[[World, Target], Any] | None = None
    params: Callable[[World, Target], dict[str, Any]] = field(default=lambda world, target: {})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def fresh_release(world: World, target: Target) -> dict[str, Any]:
    version = unique("doomed")
    world.services.ledger.create_release(
        target.org_id, version, ReleaseChanges(project_ids=[target.project_id]), CAUSE
    )
    return {"version": version}


def fresh_file(world: World, target: Target) -> dict[str, Any]:
    outcome = world.services.ledger.add_release_file(
        target.org_id, target.version, unique("doomed") + ".js", None, {}, 1, "b" * 40, CAUSE
    )
    return {"file_id": outcome.position}


def fresh_issue(world: World, target: Target) -> dict[str, Any]:
    short_id = unique(target.project.upper()).replace("-", "") + "-1"
    world.services.ledger.create_issue(target.org_id, target.project_id, short_id, "t", None,
                                       CAUSE)
    return {"short_id": short_id}


def hook_signature(world: World, target: Target) -> dict[str, Any]:
    with world.services.read() as queries:
        public_id = str(queries.directory.project(str(target.org_id), target.project)
                        ["public_id"])
    token = world.services.ledger.hook_token(target.project_id, CAUSE)
    return {"plugin": "builtin", "project_id": public_id,
            "signature": sign(token, "builtin", public_id)}


def upload(world: World, target: Target) -> tuple[bytes, str]:
    boundary = "matrix-boundary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\";"
        f" filename=\"{unique('up')}.js\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        f"content\r\n--{boundary}--\r\n"
    ).encode()
    return body, f"multipart/form-data; boundary={boundary}"


RELEASE_CREATE = Spec("release_create", body=lambda world, target: {
    "version": target.version, "projects": [target.project]})
SPECS: dict[str, Spec] = {
    "Health.on_get": Spec("public"),
    "Readiness.on_get": Spec("public"),
    "Metrics.on_get": Spec("public"),
    "OpenApiDocument.on_get": Spec("public"),
    "Index.on_get": Spec("index"),
    "ReleaseHook.on_post": Spec("public", body=lambda world, target: {"version": "hooked"},
                                params=hook_signature),
    "OrganizationCollection.on_post": Spec("superuser",
                                           body=lambda world, target: {"slug": unique("o")}),
    "TeamCollection.on_post": Spec("admin", body=lambda world, target: {"slug": unique("t")}),
    "TeamProjectCollection.on_post": Spec("admin",
                                          body=lambda world, target: {"slug": unique("p")}),
    "OrganizationProjects.on_get": Spec("org"),
    "RepositoryCollection.on_get": Spec("org"),
    "RepositoryCollection.on_post": Spec("admin", body=lambda world, target: {
        "name": f"{target.org}/app"}),
    "RepositoryDetail.on_get": Spec("org"),
    "ActivityFeed.on_get": Spec("org"),
    "DeliveryMetrics.on_get": Spec("org"),
    "AuditLog.on_get": Spec("audit"),
    "ReleaseCollection.on_get": Spec("org"),
    "ReleaseCollection.on_post": RELEASE_CREATE,
    "ReleaseCollection.on_get_project": Spec("project"),
    "ReleaseCollection.on_post_project": Spec("project", body=lambda world, target: {
        "version": target.version}),
    "ReleaseDetail.on_get": Spec("release"),
    "ReleaseDetail.on_get_project": Spec("release"),
    "ReleaseDetail.on_put": Spec("release", body=lambda world, target: {"ref": "matrix"}),
    "ReleaseDetail.on_put_project": Spec("release", body=lambda world, target: {"ref": "m"}),
    "ReleaseDetail.on_delete": Spec("release", params=fresh_release),
    "ReleaseDetail.on_delete_project": Spec("release", params=fresh_release),
    "ReleaseHistory.on_get": Spec("history"),
    "ReleaseCommits.on_get": Spec("release"),
    "ReleaseCommits.on_get_project": Spec("release"),
    "ReleaseCommitFiles.on_get": Spec("release"),
    "PreviousReleaseWithCommits.on_get": Spec("release"),
    "ResolvedIssues.on_get": Spec("release"),
    "DeployCollection.on_get": Spec("release"),
    "DeployCollection.on_post": Spec("release", body=lambda world, target: {
        "environment": "production"}),
    "ReleaseFileCollection.on_get": Spec("release"),
    "ReleaseFileCollection.on_get_project": Spec("release"),
    "ReleaseFileCollection.on_post": Spec("release", body=upload),
    "ReleaseFileCollection.on_post_project": Spec("release", body=upload),
    "ReleaseFileDetail.on_get": Spec("release"),
    "ReleaseFileDetail.on_get_project": Spec("release"),
    "ReleaseFileDetail.on_put": Spec("release", body=lambda world, target: {
        "name": unique("renamed") + ".js"}),
    "ReleaseFileDetail.on_put_project": Spec("release", body=lambda world, target: {
        "name": unique("renamed") + ".js"}),
    "ReleaseFileDetail.on_delete": Spec("release", params=fresh_file),
    "ReleaseFileDetail.on_delete_project": Spec("release", params=fresh_file),
    "IssueCollection.on_get": Spec("project"),
    "IssueCollection.on_post": Spec("project", body=lambda world, target: {
        "shortId": unique(target.project.upper()).replace("-", "") + "-2", "title": "t"}),
    "IssueDetail.on_get": Spec("project"),
    "IssueDetail.on_put": Spec("project", body=lambda world, target: {"status": "resolved"}),
    "IssueDetail.on_delete": Spec("project", params=fresh_issue),
    "ProjectHookToken.on_get": Spec("hook_token"),
    "ProjectHookToken.on_post": Spec("hook_token"),
}


def expected(caller: Caller, spec: Spec, allowed: frozenset[str]) -> int | str:
    """Return the status the rules give, or SUCCESS for the operation's 2xx statuses."""
    access = spec.access
    if access == "public":
        return SUCCESS
    if caller.kind == "anonymous":
        return SUCCESS if access == "index" else 401
    if caller.kind == "invalid":
        return 401
    if access == "index":
        return SUCCESS

    # Scopes are checked before anything is looked up, so a 403 reveals nothing.
    if not caller.scopes & allowed:
        return 403
    if access == "superuser":
        return SUCCESS if caller.superuser else 403
    if caller.kind == "foreign":
        return 404

    if access == "admin":
        return SUCCESS if caller.admin else 403
    if access == "audit":
        return SUCCESS if caller.kind == "org" or caller.admin else 403
    if access == "org":
        return SUCCESS
    if access == "release_create":
        # A slug in the body that names no usable project is invalid, whether it exists or not.
        return SUCCESS if caller.sees_project else 400
    if access in ("project", "release"):
        return SUCCESS if caller.sees_project else 404
    if access == "hook_token":
        if not caller.sees_project:
            return 404
        return SUCCESS if caller.scopes & HOOK_TOKEN_SCOPES or caller.admin else 403
    if access == "history":
        if caller.scopes & READ_SCOPES and caller.sees_project:
            return SUCCESS
        if caller.scopes & AUDIT_SCOPES and (caller.kind == "org" or caller.admin):
            return SUCCESS
        return 404
    raise AssertionError(f"Unknown access rule {access!r}.")


def build_target(world: World, org: str, project: str, team: str) -> Target:
    ledger = world.services.ledger
    with world.services.read() as queries:
        org_row = queries.directory.organization(org)
        project_row = queries.directory.project(org_row["id"], project)
    target = Target(org, UUID(org_row["id"]), project, UUID(project_row["id"]), team)
    commits = check_commits([{"id": "c" * 40, "repository": f"{org}/app", "message": "first"}])
    ledger.create_release(target.org_id, target.version, ReleaseChanges(
        project_ids=[target.project_id], commits=commits), CAUSE)
    file = ledger.add_release_file(target.org_id, target.version, "shared.js", None, {}, 1,
                                   "a" * 40, CAUSE)
    target.file_id = file.position
    target.short_id = f"{project.upper()}-1"
    ledger.create_issue(target.org_id, target.project_id, target.short_id, "t", None, CAUSE)
    repository = ledger.register_repository(target.org_id, f"{org}/app", None, None, CAUSE)
    with world.services.read() as queries:
        target.repo_id = queries.commits.repository(org_row["id"], repository.aggregate.name)[
            "public_id"]
    return target


def build_callers(world: World) -> list[Caller]:
    ledger = world.services.ledger
    acme = build_target(world, "acme", "web", "frontend")
    ledger.create_organization("openorg", None, True, CAUSE)
    ledger.create_team("openorg", "everyone", None, CAUSE)
    ledger.create_project("openorg", "site", None, ["everyone"], CAUSE)
    open_target = build_target(world, "openorg", "site", "everyone")
    ledger.create_organization("globex", SECRET, False, CAUSE)
    ledger.create_team("globex", "globex-team", None, CAUSE)
    ledger.create_project("globex", SECRET, SECRET, ["globex-team"], CAUSE)
    build_target(world, "globex", SECRET, "globex-team")

    def bearer(token: str) -> str:
        return f"Bearer {token}"

    revoked = world.token(org="acme", scopes=("org:ci",))
    ledger.revoke_token(revoked, CAUSE)
    callers = [
        Caller("no token", None, acme, kind="anonymous"),
        Caller("unknown token", bearer("sntryu_" + "0" * 64), acme, kind="invalid"),
        Caller("revoked token", bearer(revoked), acme, kind="invalid"),
        Caller("not a bearer token", "Basic YWRtaW46YWRtaW4=", acme, kind="invalid"),
    ]
    for scope in SCOPES:
        token = world.user(teams=("frontend",), role="owner", scopes=(scope,))
        callers.append(Caller(f"owner with {scope}", bearer(token), acme,
                              frozenset({scope}), admin=True))
    release_scopes = frozenset(RELEASE_SCOPES)
    callers += [
        Caller("member of the project's team", bearer(world.user(teams=("frontend",))), acme,
               release_scopes),
        Caller("member of another team", bearer(world.user(teams=("backend",))), acme,
               release_scopes, sees_project=False),
        Caller("member with open membership", bearer(world.user(org="openorg")), open_target,
               release_scopes),
        Caller("organization token", bearer(world.tokens["org"]), acme,
               frozenset({"org:ci"}), kind="org"),
        Caller("another organization's token",
               bearer(world.token(org="globex", scopes=tuple(SCOPES))), acme,
               frozenset(SCOPES), kind="foreign"),
        Caller("superuser", bearer(world.user(superuser=True, scopes=tuple(SCOPES))), acme,
               frozenset(SCOPES), admin=True, superuser=True),
    ]
    return callers


def path_for(template: str, target: Target, params: dict[str, Any]) -> str:
    values = {"org": target.org, "project": target.project, "team": target.team,
              "version": target.version, "file_id": target.file_id,
              "short_id": target.short_id, "repo_id": target.repo_id, **params}
    path = template
    for name, value in values.items():
        path = path.replace(f"{{{name}}}", str(value)).replace(f"{{{name}:int}}", str(value))
    return path


def call(client, world: World, caller: Caller, template: str, method: str, spec: Spec):
    params = spec.params(world, caller.target)
    headers = {} if caller.authorization is None else {"Authorization": caller.authorization}
    body = spec.body(world, caller.target) if spec.body else None
    path = path_for(template, caller.target, params)
    if isinstance(body, tuple):
        raw, content_type = body
        return client.simulate_request(method, path, body=raw,
                                       headers={**headers, "Content-Type": content_type})
    return client.simulate_request(method, path, json=body, headers=headers)


@pytest.mark.slow
def test_every_operation_for_every_caller(client, world):
    callers = build_callers(world)
    operations = [(template, method, resource, responder)
                  for template, method, resource, responder in routes(client.app)]
    document = client.simulate_get("/api/0/openapi.json").json
    deviations, leaks = [], []

    for template, method, resource, responder in operations:
        operation_id = f"{type(resource).__name__}.{responder.__name__}"
        spec = SPECS[operation_id]
        allowed = frozenset(getattr(resource, "scopes", {}).get(method, ()))
        path = template.replace(":int", "")
        successes = {int(status) for status in document["paths"][path][method.lower()][
            "responses"] if status.startswith("2")}
        for caller in callers:
            response = call(client, world, caller, template, method, spec)
            rule = expected(caller, spec, allowed)
            if rule == SUCCESS and response.status_code not in successes:
                deviations.append((operation_id, caller.name, response.status_code, "2xx",
                                   response.text[:200]))
            if rule != SUCCESS and response.status_code != rule:
                deviations.append((operation_id, caller.name, response.status_code, rule,
                                   response.text[:200]))
            text = response.text
            if SECRET in text or (not template.endswith("/metrics")
                                  and internals(text) is not None):
                leaks.append((operation_id, caller.name, text[:200]))

    assert set(SPECS) == {f"{type(r).__name__}.{f.__name__}" for _, _, r, f in operations}
    assert deviations == [], "\n".join(map(str, deviations))
    assert leaks == []
