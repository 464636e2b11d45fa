"""Errors that commands raise when a request cannot be recorded.

The API maps each class to one HTTP status in a single error handler.
"""


class LedgerError(Exception):
    """Base class of the errors a ledger command raises on invalid input."""


class NotFoundError(LedgerError):
    """Raised when the named organization, project, release or user does not exist."""


class AlreadyExistsError(LedgerError):
    """Raised when a slug, email or version is already taken."""


class InvalidRequestError(LedgerError):
    """Raised when a request is invalid as a whole rather than in one field."""


class InvalidFieldError(LedgerError):
    """Raised when one field of a request is invalid.

    `field` is the API name of the field, so the response can name it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ReferencedError(LedgerError):
    """Raised when a record cannot be deleted because other records refer to it."""


class ConflictError(LedgerError):
    """Raised when concurrent writes kept winning over this one after all retries."""


class PermissionDeniedError(LedgerError):
    """Raised when the caller is known but may not perform the action."""
