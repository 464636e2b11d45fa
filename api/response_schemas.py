"""JSON Schemas of the API's response bodies, as `api.serializers` writes them."""

from __future__ import annotations

from typing import Any

from api.schemas import MAX_PER_PAGE, Schema, nullable, record

STRING: Schema = {"type": "string"}
OPTIONAL_STRING: Schema = {"type": ["string", "null"]}
INTEGER: Schema = {"type": "integer"}
ID: Schema = {"type": "string", "pattern": "^[0-9]+$", "description": "A public id."}
DATETIME: Schema = {"type": "string", "format": "date-time"}
OPTIONAL_DATETIME: Schema = {"type": ["string", "null"], "format": "date-time"}
ANY_OBJECT: Schema = {"type": "object"}


def page(item: Schema) -> Schema:
    """Return the schema of one page of a list, which the Link header continues."""
    return {"type": "array", "items": item, "maxItems": MAX_PER_PAGE}


def listing(item: Schema) -> Schema:
    return {"type": "array", "items": item}


ERROR = record({"detail": STRING}, description="What failed.")
FIELD_ERRORS: Schema = {
    "type": "object", "minProperties": 1, "maxProperties": 1,
    "additionalProperties": {"type": "array", "items": STRING, "minItems": 1},
    "description": "The first invalid field and what is wrong with it.",
}
BAD_REQUEST: Schema = {"anyOf": [ERROR, FIELD_ERRORS]}

USER = record({"id": ID, "email": STRING, "name": STRING})
PROJECT = record({
    "id": ID, "slug": STRING, "name": STRING, "newGroups": INTEGER,
    "platform": {"type": "null"}, "platforms": {"type": "array", "maxItems": 0},
    "hasHealthData": {"type": "boolean"},
})
ORGANIZATION = record({
    "id": ID, "slug": STRING, "name": STRING, "openMembership": {"type": "boolean"},
    "dateCreated": DATETIME,
})
TEAM = record({"id": ID, "slug": STRING, "name": STRING})
INDEX = record({
    "version": {"const": "0"},
    "user": nullable(USER),
    "auth": nullable(record({"scopes": {"type": "array", "items": STRING}})),
})
REPOSITORY = record({
    "id": ID, "name": STRING, "url": OPTIONAL_STRING,
    "provider": record({"id": STRING, "name": STRING}),
    "status": {"const": "active"}, "dateCreated": DATETIME,
    "integrationId": {"type": "null"}, "externalSlug": {"type": "null"},
})
AUTHOR = record({"name": OPTIONAL_STRING, "email": STRING})
COMMIT = record({
    "id": STRING, "message": OPTIONAL_STRING, "dateCreated": OPTIONAL_DATETIME,
    "author": nullable(AUTHOR),
    "repository": {"anyOf": [record({"name": OPTIONAL_STRING}), REPOSITORY]},
})
COMMIT_FILE = record({
    "filename": STRING, "type": {"enum": ["A", "M", "D"]}, "commitId": STRING,
    "commitMessage": OPTIONAL_STRING, "author": nullable(AUTHOR), "repoName": STRING,
    "orderId": INTEGER,
})
DEPLOY = record({
    "id": ID, "environment": STRING, "name": OPTIONAL_STRING, "url": OPTIONAL_STRING,
    "dateStarted": OPTIONAL_DATETIME, "dateFinished": DATETIME,
})
RELEASE = record({
    "id": ID,
    "version": STRING,
    "shortVersion": STRING,
    "ref": OPTIONAL_STRING,
    "url": OPTIONAL_STRING,
    "status": {"enum": ["open", "archived"]},
    "dateCreated": DATETIME,
    "dateStarted": OPTIONAL_DATETIME,
    "dateReleased": OPTIONAL_DATETIME,
    "owner": nullable(USER),
    "newGroups": INTEGER,
    "commitCount": INTEGER,
    "lastCommit": nullable(COMMIT),
    "authors": {"type": "array", "items": AUTHOR},
    "deployCount": INTEGER,
    "lastDeploy": nullable(DEPLOY),
    "firstEvent": {"type": "null"},
    "lastEvent": {"type": "null"},
    "data": {"type": "object", "maxProperties": 0},
    "projects": {"type": "array", "items": PROJECT},
}, description="A release as sentry-cli reads it.")
NO_RELEASE: Schema = {"type": "object", "maxProperties": 0, "description": "No such release."}
ACTOR = record({"type": STRING, "id": OPTIONAL_STRING, "email": OPTIONAL_STRING})
ACTIVITY = record({
    "id": STRING, "type": STRING, "project": nullable(PROJECT), "data": ANY_OBJECT,
    "actor": ACTOR, "dateCreated": DATETIME,
})
ISSUE = record({
    "id": ID, "shortId": STRING, "title": STRING,
    "status": {"enum": ["unresolved", "resolved", "ignored"]},
    "project": record({"id": ID, "slug": STRING, "name": STRING}),
    "firstRelease": nullable(record({"version": STRING, "shortVersion": STRING})),
    "dateCreated": DATETIME,
})
FILE = record({
    "id": ID, "name": STRING, "dist": OPTIONAL_STRING,
    "headers": {"type": "object", "additionalProperties": STRING},
    "size": INTEGER, "sha1": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
    "dateCreated": DATETIME,
})
HISTORY_FIELDS: dict[str, Any] = {
    "id": ID, "type": STRING, "sequence": INTEGER, "dateCreated": DATETIME, "actor": ACTOR,
    "requestId": OPTIONAL_STRING, "data": ANY_OBJECT, "hash": OPTIONAL_STRING,
}
HISTORY_ITEM = record(HISTORY_FIELDS)
AUDIT_ITEM = record({
    **HISTORY_FIELDS,
    "target": record({"type": STRING, "id": ID, "name": OPTIONAL_STRING}),
})
SUMMARY = record({
    "count": INTEGER, "medianSeconds": {"type": ["number", "null"]},
    "p90Seconds": {"type": ["number", "null"]},
})
DELIVERY_METRICS = record({
    "start": DATETIME, "end": DATETIME, "interval": {"enum": ["1d", "1w"]},
    "projects": listing(record({
        "id": ID, "slug": STRING, "timeToRelease": SUMMARY,
        "environments": listing(record({
            "name": STRING, "deploys": INTEGER, "deploysPerInterval": {"type": "number"},
            "leadTime": SUMMARY,
            "intervals": listing(record({
                "start": DATETIME, "deploys": INTEGER, "leadTime": SUMMARY,
            })),
        })),
    })),
})
HOOK_TOKEN = record({"token": STRING, "webhookUrl": STRING})
HEALTH = record({"status": {"const": "ok"}})
READINESS = record({
    "status": {"const": "ready"}, "ledgerPosition": INTEGER,
    "readModels": {"type": "object",
                   "additionalProperties": record({
                       "position": INTEGER, "lag": INTEGER,
                       "state": {"enum": ["live", "failed"]},
                   })},
})
OPENAPI_DOCUMENT: Schema = {"type": "object", "description": "This document."}
METRICS_TEXT: Schema = {"type": "string", "description": "Prometheus text format 0.0.4."}
BINARY: Schema = {"type": "string", "format": "binary"}
