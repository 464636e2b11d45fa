"""The WSGI application factory.

gunicorn calls `create_app()` in each worker after forking, so every
worker opens its own database connections.
"""

from __future__ import annotations

import falcon

from api.activity import ActivityFeed
from api.audit import AuditLog, ReleaseHistory
from api.commits import PreviousReleaseWithCommits, ReleaseCommitFiles, ReleaseCommits
from api.config import Settings
from api.delivery import DeliveryMetrics
from api.deploys import DeployCollection
from api.errors import register_error_handlers
from api.files import ReleaseFileCollection, ReleaseFileDetail
from api.health import Readiness
from api.hooks.resources import ProjectHookToken, ReleaseHook
from api.issues import IssueCollection, IssueDetail, ResolvedIssues
from api.json_bodies import use_for_responses
from api.logs import configure_logging
from api.metrics import Metrics, MetricsMiddleware, record_pool_usage
from api.middleware import RequestIdMiddleware
from api.openapi import OpenApiDocument
from api.operations import operation
from api.organizations import (
    Index,
    OrganizationCollection,
    OrganizationProjects,
    TeamCollection,
    TeamProjectCollection,
)
from api.releases import ReleaseCollection, ReleaseDetail
from api.repositories import RepositoryCollection, RepositoryDetail
from api.response_schemas import HEALTH
from api.services import Services

ORG = "/api/0/organizations/{org}"
PROJECT = "/api/0/projects/{org}/{project}"


class Health:
    """GET /healthz: the process is up."""

    @operation("Tell whether the process is up", {200: HEALTH}, public=True, errors=())
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


def create_app(settings: Settings | None = None, services: Services | None = None) -> falcon.App:
    settings = settings or Settings.from_environ()
    configure_logging()
    services = services or Services(settings)
    app = falcon.App(middleware=[RequestIdMiddleware(), MetricsMiddleware(services)])
    app.req_options.strip_url_path_trailing_slash = False
    use_for_responses(app)
    register_error_handlers(app)
    add_routes(app, services)
    # Each gunicorn worker writes its pool gauges once it starts, so that
    # /metrics counts the workers that have served no request yet.
    record_pool_usage(services)
    return app


def add_routes(app: falcon.App, services: Services) -> None:
    releases = ReleaseCollection(services)
    release = ReleaseDetail(services)
    commits = ReleaseCommits(services)
    app.add_route("/healthz", Health())
    app.add_route("/readyz", Readiness(services))
    app.add_route("/metrics", Metrics(services))
    app.add_route("/api/0/", Index(services))
    app.add_route("/api/0/organizations/", OrganizationCollection(services))
    app.add_route(f"{ORG}/teams/", TeamCollection(services))
    app.add_route("/api/0/teams/{org}/{team}/projects/", TeamProjectCollection(services))
    app.add_route(f"{ORG}/projects/", OrganizationProjects(services))
    app.add_route(f"{ORG}/releases/", releases)
    app.add_route(f"{ORG}/releases/{{version}}/", release)
    app.add_route(f"{ORG}/releases/{{version}}/commits/", commits)
    app.add_route(f"{ORG}/releases/{{version}}/commitfiles/", ReleaseCommitFiles(services))
    app.add_route(
        f"{ORG}/releases/{{version}}/previous-with-commits/", PreviousReleaseWithCommits(services)
    )
    app.add_route(f"{ORG}/repos/", RepositoryCollection(services))
    app.add_route(f"{ORG}/repos/{{repo_id}}/", RepositoryDetail(services))
    app.add_route(f"{ORG}/releases/{{version}}/deploys/", DeployCollection(services))
    app.add_route(f"{ORG}/activity/", ActivityFeed(services))
    app.add_route(f"{PROJECT}/releases/token/", ProjectHookToken(services))
    app.add_route("/api/hooks/release/{plugin}/{project_id}/{signature}/", ReleaseHook(services))
    app.add_route(f"{ORG}/releases/{{version}}/history/", ReleaseHistory(services))
    app.add_route(f"{ORG}/audit-logs/", AuditLog(services))
    app.add_route(f"{ORG}/delivery-metrics/", DeliveryMetrics(services))
    app.add_route(f"{PROJECT}/releases/", releases, suffix="project")
    app.add_route(f"{PROJECT}/releases/{{version}}/", release, suffix="project")
    app.add_route(f"{PROJECT}/releases/{{version}}/commits/", commits, suffix="project")
    app.add_route(f"{ORG}/releases/{{version}}/resolved/", ResolvedIssues(services))
    app.add_route(f"{PROJECT}/issues/", IssueCollection(services))
    app.add_route(f"{PROJECT}/issues/{{short_id}}/", IssueDetail(services))
    add_file_routes(app, services)
    app.add_route("/api/0/openapi.json", OpenApiDocument(app))


def add_file_routes(app: falcon.App, services: Services) -> None:
    files = ReleaseFileCollection(services)
    file = ReleaseFileDetail(services)
    for prefix, suffix in ((ORG, None), (PROJECT, "project")):
        app.add_route(f"{prefix}/releases/{{version}}/files/", files, suffix=suffix)
        app.add_route(f"{prefix}/releases/{{version}}/files/{{file_id:int}}/", file,
                      suffix=suffix)
