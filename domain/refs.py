"""Validation of the repository refs that deploy tools send instead of commit lists.

A ref names a repository and its head commit for the release, and
optionally the previous release's head commit there. sentry-cli sends
`REPO@PREV..SHA` as `{"commit": "PREV..SHA"}` only when the user wrote
the range into one value, so both spellings are read.
"""

from __future__ import annotations

from typing import Any

from domain.commits import MAX_COMMIT_ID_LENGTH
from domain.errors import InvalidFieldError
from domain.repository import check_repository_name

MAX_REFS = 100
RANGE_SEPARATOR = ".."


def check_refs(value: Any) -> list[dict[str, Any]]:
    """Return refs as `{"repository", "commit", "previous_commit"}` dicts, or raise.

    Each repository may appear once, compared case-insensitively, since a
    release has one head commit per repository.
    """
    if not isinstance(value, list):
        raise InvalidFieldError("refs", "Expected a list of refs.")
    if len(value) > MAX_REFS:
        raise InvalidFieldError("refs", f"At most {MAX_REFS} refs per request.")
    refs = [_check_ref(index, ref) for index, ref in enumerate(value)]
    seen: set[str] = set()
    for index, ref in enumerate(refs):
        key = ref["repository"].lower()
        if key in seen:
            raise InvalidFieldError(
                "refs", f"refs[{index}].repository: {ref['repository']!r} is named twice."
            )
        seen.add(key)
    return refs


def _check_ref(index: int, ref: Any) -> dict[str, Any]:
    where = f"refs[{index}]"
    if not isinstance(ref, dict):
        raise InvalidFieldError("refs", f"{where}: expected an object.")
    try:
        repository = check_repository_name("refs", ref.get("repository"))
    except InvalidFieldError as error:
        raise InvalidFieldError("refs", f"{where}.repository: {error.message}") from None
    commit = ref.get("commit")
    previous = ref.get("previousCommit")
    previous = None if previous in (None, "") else _commit_id(f"{where}.previousCommit", previous)
    if isinstance(commit, str) and RANGE_SEPARATOR in commit:
        if previous is not None:
            raise InvalidFieldError(
                "refs", f"{where}: give either a range PREV..SHA or previousCommit, not both."
            )
        start, _, end = commit.partition(RANGE_SEPARATOR)
        previous = _commit_id(f"{where}.commit", start)
        commit = end
    return {
        "repository": repository,
        "commit": _commit_id(f"{where}.commit", commit),
        "previous_commit": previous,
    }


def _commit_id(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidFieldError("refs", f"{where}: expected a commit id.")
    if (
        len(value) > MAX_COMMIT_ID_LENGTH
        or RANGE_SEPARATOR in value
        or any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in value)
    ):
        raise InvalidFieldError(
            "refs",
            f"{where}: {value[:80]!r} is not a commit id: use at most {MAX_COMMIT_ID_LENGTH}"
            " characters, no whitespace, and one '..' only between two ids.",
        )
    return value
