"""A schemathesis check loaded through SCHEMATHESIS_HOOKS by the fuzz test.

It fails any response that shows the service's internals: a Python
traceback, SQL, a database driver's name or a path of the source tree.
"""

from __future__ import annotations

import re
from pathlib import Path

import schemathesis

ROOT = str(Path(__file__).resolve().parent.parent)
INTERNALS = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\.py\"|\bSELECT\b.+\bFROM\b"
    r"|\bINSERT INTO\b|\bUPDATE\b.+\bSET\b|psycopg|sqlite3|eventsourcing\."
    + "|" + re.escape(ROOT),
)


def internals(text: str) -> str | None:
    """Return the first sign of internals in a response body, or None."""
    found = INTERNALS.search(text)
    return found.group(0) if found else None


@schemathesis.check
def no_internals_leaked(ctx, response, case) -> None:
    if response.headers.get("content-type", [""])[0].startswith("text/plain"):
        return  # Prometheus samples name their own metrics, not internals.
    leaked = internals(response.text)
    if leaked is not None:
        raise AssertionError(f"The response shows internals: {leaked!r}")
