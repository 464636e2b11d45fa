"""The Repository aggregate: a source code repository of an organization.

Commits and refs name repositories. Names compare case-insensitively,
because sentry-cli matches `--commit REPO@SHA` against the listed names
that way and then sends the user's spelling. A repository's name keeps
the spelling of its first use.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.cause import Cause
from domain.directory import ledger_uuid
from domain.errors import InvalidFieldError

MAX_NAME_LENGTH = 200
MAX_URL_LENGTH = 4096
PROVIDER_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def check_repository_name(field: str, name: Any) -> str:
    """Return `name` if it can name a repository, else raise InvalidFieldError for `field`."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidFieldError(field, "Expected a repository name.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidFieldError(
            field, f"A repository name has at most {MAX_NAME_LENGTH} characters."
        )
    if name.strip() != name or _has_control_character(name):
        raise InvalidFieldError(
            field,
            f"Invalid repository name {name[:80]!r}: it cannot start or end with whitespace"
            " or contain control characters.",
        )
    return name


def check_repository_url(url: Any) -> str | None:
    if url is None or url == "":
        return None
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH or _has_control_character(url):
        raise InvalidFieldError(
            "url", f"Expected a URL of at most {MAX_URL_LENGTH} characters on one line."
        )
    return url


def check_provider(provider: Any) -> str | None:
    if provider is None or provider == "":
        return None
    if not isinstance(provider, str) or not PROVIDER_PATTERN.match(provider):
        raise InvalidFieldError(
            "provider",
            f"Invalid provider {str(provider)[:80]!r}: use an id such as 'git' or"
            " 'integrations:github'.",
        )
    return provider


def _has_control_character(text: str) -> bool:
    return _CONTROL_CHARACTER.search(text) is not None


class Repository(Aggregate):
    """A repository that commits belong to, with the URL and provider that locate it.

    A repository named by a commit before anyone registered it is created
    with neither URL nor provider.
    """

    @staticmethod
    def create_id(org_id: UUID, name: str) -> UUID:
        return ledger_uuid("repository", str(org_id), name.lower())

    @event("Created")
    def __init__(
        self, org_id: UUID, name: str, url: str | None, provider: str | None, cause: Cause
    ) -> None:
        self.org_id = org_id
        self.name = name
        self.url = url
        self.provider = provider

    @event("Updated")
    def update(self, url: str | None, provider: str | None, cause: Cause) -> None:
        """Replace the URL and the provider. The event carries both new values."""
        self.url = url
        self.provider = provider
