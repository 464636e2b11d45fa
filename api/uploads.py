"""Reading a release file upload: a multipart form with `file`, `name`, `dist` and `header` parts.

The file part is streamed to a temporary file while it is hashed, so an
upload never sits in memory whole, and an upload over the size limit
leaves no file behind.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import falcon
from falcon.media import MultipartFormHandler
from falcon.media.multipart import BodyPart, MultipartParseOptions

from domain.errors import InvalidFieldError

CHUNK_BYTES = 64 * 1024
# Bytes a form may carry besides the file: boundaries, part headers and the
# name, dist and header fields. A larger request is rejected before reading.
FORM_OVERHEAD_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 16 * 1024
MAX_FILE_NAME_LENGTH = 1024
MAX_HEADERS = 32
DIST_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
HEADER_NAME_PATTERN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
MAX_HEADER_VALUE_LENGTH = 1024


def _multipart_handler() -> MultipartFormHandler:
    options = MultipartParseOptions()
    options.max_body_part_buffer_size = MAX_FIELD_BYTES
    options.max_body_part_count = MAX_HEADERS + 8
    return MultipartFormHandler(options)


MULTIPART = _multipart_handler()


@dataclass
class SpooledFile:
    """An uploaded file written to disk, with its SHA-1 hex digest and size in bytes."""

    path: Path
    sha1: str
    size: int

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class Upload:
    """The fields of an upload form, checked, and its file on disk."""

    name: str
    dist: str | None
    headers: dict[str, str]
    content: SpooledFile = field(repr=False)


def read_upload(req: falcon.Request, max_file_bytes: int, scratch_dir: Path) -> Upload:
    """Parse an upload form; the caller must `discard` the content when done with it.

    Raises 411 without Content-Length, 413 when the file exceeds
    `max_file_bytes`, 415 for another media type and 400 for invalid fields.
    """
    _check_request(req, max_file_bytes)
    form = MULTIPART.deserialize(req.bounded_stream, req.content_type, req.content_length)
    content: SpooledFile | None = None
    texts: dict[str, list[str]] = {"name": [], "dist": [], "header": []}
    file_name = None
    try:
        for part in form:
            if part.name == "file":
                if content is not None:
                    raise InvalidFieldError("file", "Send one file per request.")
                file_name = part.filename
                content = spool(part.stream, max_file_bytes, scratch_dir)
            elif part.name in texts:
                texts[part.name].append(_text(part))
        if content is None:
            raise InvalidFieldError("file", "Missing uploaded file.")
        return Upload(
            name=check_file_name(_last(texts["name"]) or file_name),
            dist=check_dist(_last(texts["dist"])),
            headers=parse_headers(texts["header"]),
            content=content,
        )
    except BaseException:
        if content is not None:
            content.discard()
        raise


def spool(stream: BinaryIO, max_bytes: int, directory: Path) -> SpooledFile:
    """Copy `stream` to a new file in `directory` while hashing it.

    Raises 413 as soon as more than `max_bytes` arrive, after removing
    the partial file.
    """
    digest = hashlib.sha1(usedforsecurity=False)
    size = 0
    with tempfile.NamedTemporaryFile(dir=directory, prefix="upload-", delete=False) as target:
        path = Path(target.name)
        try:
            while chunk := stream.read(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise falcon.HTTPContentTooLarge(
                        description=f"The file exceeds the limit of {max_bytes} bytes."
                    )
                digest.update(chunk)
                target.write(chunk)
        except BaseException:
            target.close()
            path.unlink(missing_ok=True)
            raise
    return SpooledFile(path, digest.hexdigest(), size)


def check_file_name(name: str | None) -> str:
    """Return a file name, which may be a path or URL such as `~/static/app.js`."""
    if not name:
        raise InvalidFieldError("name", "This field is required: send it, or a file name.")
    if len(name) > MAX_FILE_NAME_LENGTH:
        raise InvalidFieldError(
            "name", f"Ensure this field has no more than {MAX_FILE_NAME_LENGTH} characters."
        )
    if "\\" in name or any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise InvalidFieldError(
            "name", "A file name cannot contain '\\' or control characters such as tabs."
        )
    return name


def check_dist(dist: str | None) -> str | None:
    if dist is None or dist == "":
        return None
    if not DIST_PATTERN.match(dist):
        raise InvalidFieldError(
            "dist", f"Invalid dist {dist[:80]!r}: use 1 to 64 letters, digits, '_', '.' or '-'."
        )
    return dist


def parse_headers(lines: list[str]) -> dict[str, str]:
    """Parse `Name: value` lines; a name given twice keeps its last value."""
    if len(lines) > MAX_HEADERS:
        raise InvalidFieldError("header", f"Send at most {MAX_HEADERS} headers.")
    headers: dict[str, str] = {}
    for line in lines:
        name, separator, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not separator or not HEADER_NAME_PATTERN.match(name):
            raise InvalidFieldError(
                "header", f"Invalid header {line[:80]!r}: use the form 'Name: value'."
            )
        if len(value) > MAX_HEADER_VALUE_LENGTH or any(
            ord(char) < 32 or ord(char) == 127 for char in value
        ):
            raise InvalidFieldError(
                "header",
                f"Invalid value of header {name!r}: use at most {MAX_HEADER_VALUE_LENGTH}"
                " characters and no control characters.",
            )
        headers[name] = value
    return headers


def content_type(headers: dict[str, str]) -> str:
    """Return the Content-Type among a file's headers, whatever its letter case."""
    for name, value in headers.items():
        if name.lower() == "content-type" and value:
            return value
    return "application/octet-stream"


def _check_request(req: falcon.Request, max_file_bytes: int) -> None:
    media_type = (req.content_type or "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise falcon.HTTPUnsupportedMediaType(
            description=f"Upload files as multipart/form-data, not {media_type or 'no type'!r}."
        )
    if req.content_length is None:
        raise falcon.HTTPLengthRequired(
            description="Send the upload with a Content-Length header."
        )
    max_request_bytes = max_file_bytes + FORM_OVERHEAD_BYTES
    if req.content_length > max_request_bytes:
        raise falcon.HTTPContentTooLarge(
            description=f"The request body has {req.content_length} bytes; uploads are"
            f" limited to files of {max_file_bytes} bytes."
        )


def _text(part: BodyPart) -> str:
    try:
        return part.get_data().decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidFieldError(part.name or "form", "Expected UTF-8 text.") from None


def _last(values: list[str]) -> str | None:
    return values[-1] if values else None
