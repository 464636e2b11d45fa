"""Helpers for release file tests: multipart bodies and a look into the blob folder."""

from __future__ import annotations

import uuid
from pathlib import Path

from api.services import Services


def multipart(
    file: bytes | None = None,
    filename: str | None = "app.js",
    **fields: str | list[str],
) -> tuple[bytes, str]:
    """Build a multipart/form-data body; return it and its Content-Type.

    A list value sends the field once per item, as `header` is sent.
    """
    boundary = f"ledger-{uuid.uuid4().hex}"
    parts = []
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{item}\r\n".encode()
            )
    if file is not None:
        disposition = f'form-data; name="file"; filename="{filename}"' if filename else (
            'form-data; name="file"')
        parts.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n".encode() + file + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def stored_blobs(services: Services) -> list[str]:
    return list(services.blobs.sha1s())


def scratch_files(services: Services) -> list[Path]:
    return list(services.blobs.scratch_dir.iterdir())
