"""JSON bodies of releases, deploys, activity, issues and files, as Sentry's clients read them."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from domain.dates import parse_stored_datetime
from projections.database import Row
from projections.directory import DirectoryQueries
from projections.projection import to_text
from projections.releases import ReleaseQueries
from projections.timeline import ReleasesAt

_HEX_SHA = re.compile(r"^[0-9a-fA-F]{32,64}$")


def short_version(version: str) -> str:
    """Shorten a version for display: drop a `package@` prefix and cut long hex hashes."""
    package, sep, rest = version.partition("@")
    shown = rest if sep and package and rest else version
    return shown[:12] if _HEX_SHA.match(shown) else shown


def release_bodies(
    rows: Sequence[Row], releases: ReleaseQueries | ReleasesAt, directory: DirectoryQueries
) -> list[dict[str, Any]]:
    """Render releases, loading their project links with their new issues in one query.

    `releases` are the live queries or those of one instant, and every
    release field, new issue counts included, comes from them. The rows of
    the projects and owners come from the directory, which keeps projects
    cached per process. Links to projects missing from the directory are
    left out.
    """
    links, new_issues = releases.links_and_new_issues([row["id"] for row in rows])
    projects = directory.projects_by_id(sorted({p for ids in links.values() for p in ids}))
    owners = directory.users(sorted({row["owner_id"] for row in rows if row["owner_id"]}))
    return [
        _release_body(
            row, [projects[p] for p in links[row["id"]] if p in projects], owners,
            new_issues[row["id"]],
        )
        for row in rows
    ]


def _release_body(
    row: Row, projects: list[Row], owners: dict[str, Row], new_issues: dict[str, int]
) -> dict[str, Any]:
    owner = owners.get(row["owner_id"]) if row["owner_id"] else None
    projects = sorted(projects, key=lambda project: project["slug"])
    return {
        "id": str(row["public_id"]),
        "version": row["version"],
        "shortVersion": short_version(row["version"]),
        "ref": row["ref"],
        "url": row["url"],
        "status": row["status"],
        "dateCreated": row["date_created"],
        "dateStarted": row["date_started"],
        "dateReleased": row["date_released"],
        "owner": user_body(owner) if owner else None,
        "newGroups": sum(new_issues.values()),
        "commitCount": row["commit_count"],
        "lastCommit": _last_commit(row["last_commit"]),
        "authors": json.loads(row["authors"]),
        "deployCount": row["deploy_count"],
        "lastDeploy": json.loads(row["last_deploy"]) if row["last_deploy"] else None,
        "firstEvent": None,
        "lastEvent": None,
        "data": {},
        "projects": [
            project_body(project, new_issues.get(project["id"], 0)) for project in projects
        ],
    }


def _last_commit(value: str | None) -> dict[str, Any] | None:
    if not value:
        return None
    commit = json.loads(value)
    return commit_body(commit)


def commit_body(commit: dict[str, Any]) -> dict[str, Any]:
    author = None
    if commit.get("author_email"):
        author = {"name": commit.get("author_name"), "email": commit["author_email"]}
    return {
        "id": commit["id"],
        "message": commit.get("message"),
        "dateCreated": _commit_date(commit.get("timestamp")),
        "author": author,
        "repository": {"name": commit.get("repository")},
    }


def _commit_date(timestamp: str | None) -> str | None:
    """Serve a commit's stored RFC 3339 timestamp in the format of every other datetime."""
    return to_text(parse_stored_datetime(timestamp)) if timestamp else None


def commit_row_body(row: Row) -> dict[str, Any]:
    """Render a release's commit joined with its author and repository."""
    body = commit_body(
        {
            "id": row["commit_id"],
            "message": row["message"],
            "timestamp": row["timestamp"],
            "author_name": row["author_name"],
            "author_email": row["author_email"],
            "repository": row["repository"],
        }
    )
    if row["repository_public_id"] is not None:
        body["repository"] = repository_body({
            "public_id": row["repository_public_id"],
            "name": row["repository_name"],
            "url": row["repository_url"],
            "provider": row["repository_provider"],
            "date_created": row["repository_date_created"],
        })
    return body


def commit_file_body(row: Row) -> dict[str, Any]:
    author = None
    if row["author_email"]:
        author = {"name": row["author_name"], "email": row["author_email"]}
    return {
        "filename": row["path"],
        "type": row["type"],
        "commitId": row["commit_id"],
        "commitMessage": row["message"],
        "author": author,
        "repoName": row["repository_name"] or row["repository"],
        "orderId": row["position"],
    }


# Display names of the providers Sentry's clients know. Other ids show as given.
PROVIDER_NAMES = {
    "git": "Git",
    "github": "GitHub",
    "integrations:github": "GitHub",
    "integrations:github_enterprise": "GitHub Enterprise",
    "integrations:gitlab": "GitLab",
    "bitbucket": "Bitbucket",
    "integrations:bitbucket": "Bitbucket",
    "integrations:bitbucket_server": "Bitbucket Server",
    "visualstudio": "Visual Studio Team Services",
    "integrations:vsts": "Azure DevOps",
}


def repository_body(row: Row) -> dict[str, Any]:
    provider = row["provider"]
    return {
        "id": str(row["public_id"]),
        "name": row["name"],
        "url": row["url"],
        # sentry-cli requires a provider object, so a repository without a
        # provider gets a placeholder.
        "provider": {"id": provider, "name": PROVIDER_NAMES.get(provider, provider)}
        if provider else {"id": "unknown", "name": "Unknown Provider"},
        "status": "active",
        "dateCreated": row["date_created"],
        "integrationId": None,
        "externalSlug": None,
    }


def project_body(project: Row, new_issues: int = 0) -> dict[str, Any]:
    """Render a project; `new_issues` is its count of issues first seen in a release."""
    return {
        "id": str(project["public_id"]),
        "slug": project["slug"],
        "name": project["name"],
        "newGroups": new_issues,
        "platform": None,
        "platforms": [],
        "hasHealthData": False,
    }


def user_body(user: Row) -> dict[str, Any]:
    return {"id": str(user["public_id"]), "email": user["email"], "name": user["email"]}


def deploy_body(row: Row) -> dict[str, Any]:
    return {
        "id": str(row["public_id"]),
        "environment": row["environment"],
        "name": row["name"],
        "url": row["url"],
        "dateStarted": row["date_started"],
        "dateFinished": row["date_finished"],
    }


def activity_body(row: Row, project: Row | None) -> dict[str, Any]:
    return {
        "id": f"{row['position']}-{project['public_id'] if project else row['project_id']}",
        "type": row["type"],
        "project": project_body(project) if project else None,
        "data": json.loads(row["data"]),
        "actor": json.loads(row["actor"]),
        "dateCreated": row["date_created"],
    }


def issue_body(row: Row, project: Row) -> dict[str, Any]:
    first_release = row["first_release"]
    return {
        "id": str(row["public_id"]),
        "shortId": row["short_id"],
        "title": row["title"],
        "status": row["status"],
        "project": {
            "id": str(project["public_id"]),
            "slug": project["slug"],
            "name": project["name"],
        },
        "firstRelease": (
            {"version": first_release, "shortVersion": short_version(first_release)}
            if first_release is not None
            else None
        ),
        "dateCreated": row["date_created"],
    }


def file_body(row: Row) -> dict[str, Any]:
    return file_fields(row["public_id"], row["name"], row["dist"], json.loads(row["headers"]),
                       row["size"], row["sha1"], row["date_created"])


def file_fields(
    public_id: int,
    name: str,
    dist: str | None,
    headers: dict[str, str],
    size: int,
    sha1: str,
    date_created: str,
) -> dict[str, Any]:
    """Render a release file from its values, as stored or as just recorded."""
    return {
        "id": str(public_id),
        "name": name,
        "dist": dist,
        "headers": headers,
        "size": size,
        "sha1": sha1,
        "dateCreated": date_created,
    }
