"""JSON Schemas of the API's inputs and outputs, from which the OpenAPI document is built.

Request bodies, query parameters and path parameters are validated
against these same schemas (`api.requests`), so the document and the
checks cannot disagree. Every string has a maxLength and every list a
maxItems. Rules that need more than a schema, such as which versions are
reserved, stay in domain/ and are stated in the descriptions here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import falcon

from api.config import DEFAULT_MAX_FILE_BYTES
from domain import commits, issue, refs, repository
from domain.application import check_slug
from domain.errors import NotFoundError
from domain.release import MAX_VERSION_LENGTH, STATUSES, check_version
from domain.repository import check_provider, check_repository_name, check_repository_url

Schema = dict[str, Any]

# PostgreSQL text cannot hold U+0000, so no string accepts it.
NO_NUL = "^[^\\u0000]*$"
SLUG_PATTERN = "^[a-z0-9][a-z0-9_-]{0,49}$"
DIGITS_PATTERN = "^[0-9]{1,18}$"
MAX_INT64 = 2**63 - 1
MAX_SLUG_LENGTH = 50
MAX_PROJECT_SLUG_LENGTH = 100
MAX_PROJECTS = 1000
MAX_NAME_LENGTH = 100
MAX_REF_LENGTH = 250
MAX_URL_LENGTH = 4096
MAX_EMAIL_LENGTH = 254
MAX_DATETIME_LENGTH = 64
MAX_CURSOR_LENGTH = 2048
MAX_QUERY_LENGTH = 200
MAX_ENVIRONMENT_LENGTH = 64
MAX_DEPLOY_NAME_LENGTH = 64
MAX_FILTER_LENGTH = 254
MAX_FILTER_VALUES = 100
MAX_EVENT_TYPE_LENGTH = 100
MAX_PER_PAGE = 100
MAX_FILE_NAME_LENGTH = 1024
MAX_HEADERS = 32
MAX_HEADER_LINE_LENGTH = 128 + 2 + 1024
MAX_PLUGIN_LENGTH = 32
MAX_SIGNATURE_LENGTH = 128
ISSUE_STATUSES = issue.ISSUE_STATUSES
INTERVALS = ("1d", "1w")


def text(max_length: int, *, min_length: int = 0, pattern: str = NO_NUL,
         nullable: bool = False, **annotations: Any) -> Schema:
    """Return the schema of a string of at most `max_length` characters, without U+0000."""
    schema: Schema = {"type": ["string", "null"] if nullable else "string",
                      "maxLength": max_length, "pattern": pattern}
    if min_length:
        schema["minLength"] = min_length
    return {**schema, **annotations}


def datetime_text(description: str, *, nullable: bool = True) -> Schema:
    return text(MAX_DATETIME_LENGTH, nullable=nullable, format="date-time",
                description=description + " RFC 3339; a value without an offset is read as UTC.")


def array(items: Schema, max_items: int, *, nullable: bool = False, **annotations: Any
          ) -> Schema:
    return {"type": ["array", "null"] if nullable else "array", "items": items,
            "maxItems": max_items, **annotations}


def body(properties: Mapping[str, Schema], required: tuple[str, ...] = (), **annotations: Any
         ) -> Schema:
    """Return the schema of a request object; fields it does not name are ignored."""
    schema: Schema = {"type": "object", "properties": dict(properties), **annotations}
    if required:
        schema["required"] = list(required)
    return schema


def record(properties: Mapping[str, Schema], **annotations: Any) -> Schema:
    """Return the schema of a response object that has exactly these fields."""
    return {"type": "object", "properties": dict(properties), "required": list(properties),
            "additionalProperties": False, **annotations}


def choice(values: tuple[str, ...], default: str) -> Schema:
    return {"type": "string", "enum": list(values), "default": default,
            "maxLength": max(map(len, values))}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


@dataclass(frozen=True)
class RequestBody:
    """A request body's schema and the domain checks behind some of its fields.

    When a field breaks the schema, its check runs first, so the response
    carries the domain's own message for it.
    """

    schema: Schema
    checks: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    media_type: str = "application/json"


@dataclass(frozen=True)
class PathParameter:
    """A path parameter's schema and the error for a value that cannot name anything."""

    schema: Schema
    error: Callable[[], Exception]


# Request bodies.

PROJECT_SLUG = {
    "type": ["string", "integer"], "maxLength": MAX_PROJECT_SLUG_LENGTH, "pattern": NO_NUL,
    "minimum": 0, "maximum": MAX_INT64,
    "description": "A project slug; sentry-cli sends slugs made only of digits as numbers,"
    " which are read as a slug first and as a project id second.",
}
PROJECTS = array(PROJECT_SLUG, MAX_PROJECTS, examples=[["web"]])
VERSION = text(
    MAX_VERSION_LENGTH, min_length=1, pattern="^[^/\\\\\\u0000-\\u001f\\u007f]+$",
    description="The release's version: no '/', '\\' or control characters, no leading or"
    " trailing whitespace, and not '.', '..' or 'latest' in any letter case.",
    examples=["app@1.0.0"],
)
COMMIT = body(
    {
        "id": text(commits.MAX_COMMIT_ID_LENGTH, min_length=1,
                   description="The commit's id, such as a git SHA."),
        "repository": text(commits.MAX_REPOSITORY_LENGTH, nullable=True,
                           description="Repository name; 'default' when absent."),
        "message": text(commits.MAX_MESSAGE_LENGTH, nullable=True),
        "author_name": text(commits.MAX_NAME_LENGTH, nullable=True),
        "author_email": text(commits.MAX_EMAIL_LENGTH, nullable=True),
        "timestamp": datetime_text("When the commit was made."),
        "patch_set": array(
            body({"path": text(commits.MAX_PATH_LENGTH, min_length=1),
                  "type": {"enum": list(commits.PATCH_TYPES)}}, ("path", "type")),
            commits.MAX_PATCH_SET, nullable=True, description="The files the commit changed.",
        ),
    },
    ("id",),
)
REF = body(
    {
        "repository": text(repository.MAX_NAME_LENGTH, min_length=1),
        "commit": text(2 * commits.MAX_COMMIT_ID_LENGTH + 2, min_length=1,
                       description="The head commit's id, or PREV..SHA for a range."),
        "previousCommit": text(commits.MAX_COMMIT_ID_LENGTH, nullable=True),
    },
    ("repository", "commit"),
)
COMMITS = array(COMMIT, commits.MAX_COMMITS, nullable=True,
                description="Replaces the release's whole commit list; the newest first.")
REFS = array(REF, refs.MAX_REFS, nullable=True,
             description="A head commit per repository; [] clears commits and head commits.")
RELEASE_FIELDS: dict[str, Schema] = {
    "ref": text(MAX_REF_LENGTH, nullable=True),
    "url": text(MAX_URL_LENGTH, nullable=True),
    "owner": text(MAX_EMAIL_LENGTH, nullable=True,
                  description="Email of a member of the organization; null clears it."),
    "dateStarted": datetime_text("When the release started."),
    "dateReleased": datetime_text("When the release went out; null leaves it unchanged."),
    "status": {"enum": [*STATUSES, None]},
    "commits": COMMITS,
    "refs": REFS,
}
RELEASE_CHECKS = {"version": check_version, "commits": commits.check_commits,
                  "refs": refs.check_refs}
RELEASE_CREATE = RequestBody(
    body({"version": VERSION, "projects": PROJECTS, **RELEASE_FIELDS}, ("version", "projects"),
         description="Creates the release or adds projects to it. An empty `projects` list"
         " only archives or restores an existing release with `status`."),
    RELEASE_CHECKS,
)
PROJECT_RELEASE_CREATE = RequestBody(
    body({"version": VERSION, "projects": PROJECTS, **RELEASE_FIELDS}, ("version",)),
    RELEASE_CHECKS,
)
RELEASE_UPDATE = RequestBody(
    body({"projects": PROJECTS, **RELEASE_FIELDS}), RELEASE_CHECKS,
)
DEPLOY_CREATE = RequestBody(body(
    {
        "environment": text(MAX_ENVIRONMENT_LENGTH, min_length=1, pattern="^[^/\\u0000]+$",
                            description="No '/', and no leading or trailing whitespace.",
                            examples=["production"]),
        "name": text(MAX_DEPLOY_NAME_LENGTH, nullable=True),
        "url": text(MAX_URL_LENGTH, nullable=True),
        "dateStarted": datetime_text("When the deploy started."),
        "dateFinished": datetime_text("When the deploy finished; default now."),
        "projects": array(PROJECT_SLUG, MAX_PROJECTS,
                          description="Projects of the release it applies to; default all."),
    },
    ("environment",),
))
SLUG = text(MAX_SLUG_LENGTH, pattern=SLUG_PATTERN, examples=["acme"])
ORGANIZATION_CREATE = RequestBody(
    body({"slug": SLUG, "name": text(MAX_NAME_LENGTH, nullable=True),
          "openMembership": {"type": ["boolean", "null"]}}, ("slug",)),
    {"slug": lambda value: check_slug("organization", value)},
)
TEAM_CREATE = RequestBody(
    body({"slug": SLUG, "name": text(MAX_NAME_LENGTH, nullable=True)}, ("slug",)),
    {"slug": lambda value: check_slug("team", value)},
)
PROJECT_CREATE = RequestBody(
    body({"name": text(MAX_NAME_LENGTH, nullable=True),
          "slug": text(MAX_SLUG_LENGTH, pattern=SLUG_PATTERN, nullable=True,
                       description="Default: the name in lower case, spaces as '-'.")}),
    {"slug": lambda value: check_slug("project", value)},
)
REPOSITORY_CREATE = RequestBody(
    body({
        "name": text(repository.MAX_NAME_LENGTH, min_length=1,
                     description="The name commits and refs use, such as acme/app.",
                     examples=["acme/app"]),
        "url": text(repository.MAX_URL_LENGTH, nullable=True),
        "provider": text(64, pattern=repository.PROVIDER_PATTERN.pattern, nullable=True,
                         description="Provider id, such as git or integrations:github."),
    }, ("name",)),
    {"name": lambda value: check_repository_name("name", value), "url": check_repository_url,
     "provider": check_provider},
)
ISSUE_CREATE = RequestBody(
    body({
        "shortId": text(issue.MAX_SHORT_ID_LENGTH, min_length=1,
                        description="A project prefix, '-' and a number or code, like WEB-12.",
                        examples=["WEB-12"]),
        "title": text(issue.MAX_TITLE_LENGTH, min_length=1, examples=["TypeError in app.js"]),
        "firstRelease": text(MAX_VERSION_LENGTH, nullable=True,
                             description="Version of a release linked to the project."),
    }, ("shortId", "title")),
    {"shortId": issue.check_short_id, "title": issue.check_title},
)
ISSUE_UPDATE = RequestBody(
    body({"status": {"enum": list(ISSUE_STATUSES), "examples": ["resolved"]}}, ("status",)),
    {"status": issue.check_status},
)
FILE_UPDATE = RequestBody(body({
    "name": text(MAX_FILE_NAME_LENGTH, min_length=1, nullable=True),
    "dist": text(64, pattern="^[A-Za-z0-9_.-]{0,64}$", nullable=True),
}))
FILE_UPLOAD = RequestBody(
    body({
        # NOTE: maxLength states the default limit; a server configured with
        # another LEDGER_MAX_FILE_BYTES enforces that one instead.
        "file": {"type": "string", "format": "binary", "maxLength": DEFAULT_MAX_FILE_BYTES,
                 "description": "The content; at most LEDGER_MAX_FILE_BYTES bytes."},
        "name": text(MAX_FILE_NAME_LENGTH, description="Default: the file part's file name."),
        "dist": text(64, pattern="^[A-Za-z0-9_.-]{0,64}$"),
        "header": array(text(MAX_HEADER_LINE_LENGTH), MAX_HEADERS,
                        description="Lines 'Name: value'."),
    }, ("file",)),
    media_type="multipart/form-data",
)
BUILTIN_HOOK = RequestBody(
    body({
        "version": VERSION,
        "ref": RELEASE_FIELDS["ref"],
        "url": RELEASE_FIELDS["url"],
        "dateStarted": RELEASE_FIELDS["dateStarted"],
        "dateReleased": datetime_text("When the release went out; default now."),
        "commits": COMMITS,
    }, ("version",)),
    {"version": check_version, "commits": commits.check_commits},
)
HEROKU_HOOK = RequestBody(
    body({
        "head_long": text(commits.MAX_COMMIT_ID_LENGTH, min_length=1,
                          examples=["2f1c0e9d7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e"]),
        "url": text(MAX_URL_LENGTH),
        "user": text(MAX_URL_LENGTH, description="Email of the user who deployed."),
        "prev_head": text(commits.MAX_COMMIT_ID_LENGTH,
                          description="The commit deployed before; the ref's range starts"
                                      " after it."),
        "app": text(repository.MAX_NAME_LENGTH,
                    description="The Heroku app, which names the repository of the ref."),
    }, ("head_long",)),
    media_type="application/x-www-form-urlencoded",
)

# Query parameters, as an object schema each; arrays are repeated parameters.

PAGE_QUERY: dict[str, Schema] = {
    "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE,
                 "default": MAX_PER_PAGE},
    "cursor": text(MAX_CURSOR_LENGTH, pattern="^([^:\\u0000]+:[^\\u0000]+:[01])?$",
                   description="A cursor from a Link header: KEY:TIEBREAK:DIRECTION."),
}
AT = datetime_text("Return the state at this instant instead of the present.",
                   nullable=False)


def query(properties: Mapping[str, Schema]) -> Schema:
    return {"type": "object", "properties": dict(properties)}


PAGE = query(PAGE_QUERY)
RELEASE_LIST_QUERY = query({
    **PAGE_QUERY,
    "status": choice(STATUSES, "open"),
    "query": text(MAX_QUERY_LENGTH, description="Keep versions that start with this text,"
                  " ignoring letter case."),
    "at": AT,
    "project": array(text(18, pattern=DIGITS_PATTERN), MAX_FILTER_VALUES,
                     description="Project ids to list releases of; default all."),
})
RELEASE_QUERY = query({"at": AT})
FILE_QUERY = query({"download": {"type": "boolean", "default": False,
                                 "description": "Return the file's content."}})
AUDIT_QUERY = query({
    **PAGE_QUERY,
    "event": array(text(MAX_EVENT_TYPE_LENGTH, pattern="^[a-z_]+\\.[a-z_]+$"),
                   MAX_FILTER_VALUES, description="Event types such as release.created."),
    "actor": text(MAX_FILTER_LENGTH, min_length=1, description="User id or email."),
    "project": text(MAX_FILTER_LENGTH, min_length=1, description="Project slug or id."),
    "version": text(MAX_FILTER_LENGTH, min_length=1),
    "start": datetime_text("Inclusive start.", nullable=False),
    "end": datetime_text("Exclusive end.", nullable=False),
})
DELIVERY_QUERY = query({
    "project": array(text(MAX_PROJECT_SLUG_LENGTH), MAX_FILTER_VALUES,
                     description="Project ids or slugs; default every project you may use."),
    "environment": array(text(MAX_ENVIRONMENT_LENGTH, min_length=1), MAX_FILTER_VALUES),
    "start": datetime_text("Default: 30 days before end.", nullable=False),
    "end": datetime_text("Default: now.", nullable=False),
    "interval": choice(INTERVALS, "1d"),
})

# Path parameters. A value that breaks its schema cannot name anything, so
# the response is the one for an unknown value.


def _not_found(message: str) -> Callable[[], Exception]:
    return lambda: NotFoundError(message)


def _invalid_hook() -> Exception:
    return falcon.HTTPForbidden(description=INVALID_HOOK)


INVALID_HOOK = "Invalid release hook URL."
PATH_PARAMETERS: dict[str, PathParameter] = {
    "org": PathParameter(SLUG, _not_found("Organization not found.")),
    "project": PathParameter(SLUG, _not_found("Project not found.")),
    "team": PathParameter(SLUG, _not_found("Team not found.")),
    "version": PathParameter(text(MAX_VERSION_LENGTH, min_length=1),
                             _not_found("Release not found.")),
    "short_id": PathParameter(text(issue.MAX_SHORT_ID_LENGTH, min_length=1),
                              _not_found("Issue not found.")),
    "file_id": PathParameter({"type": "integer", "minimum": 1, "maximum": MAX_INT64},
                             _not_found("File not found.")),
    "repo_id": PathParameter(text(18, pattern=DIGITS_PATTERN),
                             _not_found("Repository not found.")),
    "plugin": PathParameter(text(MAX_PLUGIN_LENGTH, pattern="^[a-z0-9_-]+$"), _invalid_hook),
    "project_id": PathParameter(text(18, pattern=DIGITS_PATTERN), _invalid_hook),
    "signature": PathParameter(text(MAX_SIGNATURE_LENGTH, pattern="^[0-9a-f]+$"),
                               _invalid_hook),
}
