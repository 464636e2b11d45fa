"""Validation of the commit lists that deploy tools send."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from domain.dates import format_datetime, parse_datetime
from domain.errors import InvalidFieldError
from domain.repository import check_repository_name

MAX_COMMIT_ID_LENGTH = 64
MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 128
MAX_REPOSITORY_LENGTH = 200
MAX_MESSAGE_LENGTH = 65_536
MAX_PATH_LENGTH = 1024
MAX_COMMITS = 100_000
MAX_PATCH_SET = 100_000
PATCH_TYPES = ("A", "M", "D")
DEFAULT_REPOSITORY = "default"
_EMAIL_SAFE = re.compile(r"[^a-zA-Z0-9\-_.]")


def check_commits(value: Any) -> list[dict[str, Any]]:
    """Return the commits normalized for the ledger, or raise InvalidFieldError.

    Unknown keys are dropped. Timestamps become UTC RFC 3339 strings. A
    release contains each commit once, so a commit listed again in the same
    repository, whose name is compared ignoring case, is kept only where
    it first appears.
    """
    if not isinstance(value, list):
        raise InvalidFieldError("commits", "Expected a list of commits.")
    if len(value) > MAX_COMMITS:
        raise InvalidFieldError("commits", f"At most {MAX_COMMITS} commits per request.")
    commits = []
    seen: set[tuple[str, str]] = set()
    for index, commit in enumerate(value):
        checked = _check_commit(index, commit)
        key = (checked["repository"].lower(), checked["id"])
        if key not in seen:
            seen.add(key)
            commits.append(checked)
    return commits


def derive_author_email(name: str) -> str:
    """Derive an address for an author who gave only a name.

    ASCII letters, digits, '-', '_' and '.' are kept and lower-cased, then
    '@localhost' is appended. A name of which nothing survives gets an
    address built from its code points, so two such authors stay apart.
    When that address would pass the email length limit, a SHA-256 digest
    of the name replaces the code points.
    """
    kept = _EMAIL_SAFE.sub("", name).lower()
    if kept.strip("."):
        return f"{kept}@localhost"
    code_points = "-".join(f"{ord(char):x}" for char in name)
    address = f"u-{code_points}@localhost"
    if len(address) <= MAX_EMAIL_LENGTH:
        return address
    return f"u-{hashlib.sha256(name.encode()).hexdigest()}@localhost"


def _check_commit(index: int, commit: Any) -> dict[str, Any]:
    if not isinstance(commit, dict):
        raise InvalidFieldError("commits", f"commits[{index}]: expected an object.")
    commit_id = _string(index, commit, "id", MAX_COMMIT_ID_LENGTH, required=True)
    author_name = _string(index, commit, "author_name", MAX_NAME_LENGTH)
    author_email = _string(index, commit, "author_email", MAX_EMAIL_LENGTH)
    if author_email is None and author_name:
        author_email = derive_author_email(author_name)
    timestamp = _timestamp(index, commit.get("timestamp"))
    return {
        "id": commit_id,
        "repository": _repository(index, commit) or DEFAULT_REPOSITORY,
        "message": _string(index, commit, "message", MAX_MESSAGE_LENGTH),
        "author_name": author_name,
        "author_email": author_email,
        "timestamp": timestamp,
        "patch_set": _patch_set(index, commit.get("patch_set")),
    }


def _string(
    index: int, commit: dict[str, Any], key: str, max_length: int, *, required: bool = False
) -> str | None:
    value = commit.get(key)
    if value is None or (value == "" and not required):
        if required:
            raise InvalidFieldError("commits", f"commits[{index}].{key}: this field is required.")
        return None
    if not isinstance(value, str):
        raise InvalidFieldError("commits", f"commits[{index}].{key}: expected a string.")
    if required and not value.strip():
        raise InvalidFieldError("commits", f"commits[{index}].{key}: this field is required.")
    if len(value) > max_length:
        raise InvalidFieldError(
            "commits", f"commits[{index}].{key}: at most {max_length} characters."
        )
    return value


def _repository(index: int, commit: dict[str, Any]) -> str | None:
    name = _string(index, commit, "repository", MAX_REPOSITORY_LENGTH)
    if name is None:
        return None
    try:
        return check_repository_name("commits", name)
    except InvalidFieldError as error:
        raise InvalidFieldError(
            "commits", f"commits[{index}].repository: {error.message}"
        ) from None


def _timestamp(index: int, value: Any) -> str | None:
    try:
        parsed = parse_datetime(f"commits[{index}].timestamp", value)
    except InvalidFieldError as error:
        raise InvalidFieldError("commits", f"{error.field}: {error.message}") from None
    return None if parsed is None else format_datetime(parsed)


def _patch_set(index: int, value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidFieldError("commits", f"commits[{index}].patch_set: expected a list.")
    if len(value) > MAX_PATCH_SET:
        raise InvalidFieldError(
            "commits", f"commits[{index}].patch_set: at most {MAX_PATCH_SET} files per commit."
        )
    files = []
    for position, change in enumerate(value):
        where = f"commits[{index}].patch_set[{position}]"
        if not isinstance(change, dict):
            raise InvalidFieldError("commits", f"{where}: expected an object.")
        path, change_type = change.get("path"), change.get("type")
        if not isinstance(path, str) or not path or len(path) > MAX_PATH_LENGTH:
            raise InvalidFieldError(
                "commits", f"{where}.path: expected a path of 1 to {MAX_PATH_LENGTH} characters."
            )
        if change_type not in PATCH_TYPES:
            raise InvalidFieldError("commits", f"{where}.type: expected 'A', 'M' or 'D'.")
        files.append({"path": path, "type": change_type})
    return files
