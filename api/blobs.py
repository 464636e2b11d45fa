"""Release file contents, stored once per content under their SHA-1 hex digest.

File metadata lives in the ledger; only the bytes live here. Several files
(in one release or in many) may share one blob, so a blob is removed only
when no file refers to it (see `api.files.remove_unused_blobs`).
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO

SHA1_PATTERN = re.compile(r"^[0-9a-f]{40}$")
# An upload file unchanged for this long belongs to no running request. A
# worker killed by gunicorn's timeout, or a server stopped mid-upload, left it.
ABANDONED_UPLOAD_SECONDS = 3600


class BlobStore(ABC):
    """Bytes addressed by the SHA-1 hex digest of their content.

    Writers take `lock(sha1)` around adding a blob and recording the file
    that refers to it, and removers take it around checking references and
    removing, so a blob is never removed between those two steps.
    """

    @property
    @abstractmethod
    def scratch_dir(self) -> Path:
        """The folder where uploads are written before `add` takes them in."""

    @abstractmethod
    def add(self, sha1: str, path: Path) -> bool:
        """Take the finished file at `path` in as blob `sha1`; the file is gone afterwards.

        Returns False when the blob was already stored.
        """

    @abstractmethod
    def open(self, sha1: str) -> BinaryIO:
        """Open a blob for reading; raises FileNotFoundError when it is not stored."""

    @abstractmethod
    def remove(self, sha1: str) -> None:
        """Remove a blob; removing a blob that is not stored does nothing."""

    @abstractmethod
    def contains(self, sha1: str) -> bool: ...

    @abstractmethod
    def sha1s(self) -> Iterator[str]:
        """Yield the digest of every stored blob."""

    @abstractmethod
    def lock(self, sha1: str) -> AbstractContextManager[None]:
        """Hold an exclusive lock on `sha1` across processes until the block ends."""

    @abstractmethod
    def remove_abandoned_uploads(self, older_than: float = ABANDONED_UPLOAD_SECONDS) -> int:
        """Remove upload files unchanged for `older_than` seconds and return how many.

        A request writes its upload continuously and moves or removes the
        file when it ends, so only the files of killed workers get that old.
        """


class LocalBlobStore(BlobStore):
    """Blobs as files under one folder: `<root>/<first 2 hex digits>/<other 38>`.

    Locks are `flock` locks on 256 lock files, chosen by the first two hex
    digits, so they hold between the processes of one host.

    A worker killed during an upload leaves its partial file in `tmp/`.
    gunicorn's start and `release-ledger blobs collect` remove such files
    once they are an hour old. Uploads that fail otherwise remove theirs.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._scratch = root / "tmp"
        self._locks = root / "locks"
        for folder in (self.root, self._scratch, self._locks):
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def scratch_dir(self) -> Path:
        return self._scratch

    def add(self, sha1: str, path: Path) -> bool:
        target = self._path(sha1)
        if target.exists():
            path.unlink()
            return False
        target.parent.mkdir(exist_ok=True)
        os.chmod(path, 0o644)
        os.replace(path, target)
        return True

    def open(self, sha1: str) -> BinaryIO:
        return self._path(sha1).open("rb")

    def remove(self, sha1: str) -> None:
        self._path(sha1).unlink(missing_ok=True)

    def contains(self, sha1: str) -> bool:
        return self._path(sha1).exists()

    def sha1s(self) -> Iterator[str]:
        for folder in sorted(self.root.glob("[0-9a-f][0-9a-f]")):
            for blob in sorted(folder.iterdir()):
                if SHA1_PATTERN.match(folder.name + blob.name):
                    yield folder.name + blob.name

    @contextmanager
    def lock(self, sha1: str) -> Iterator[None]:
        _check_sha1(sha1)
        with (self._locks / f"{sha1[:2]}.lock").open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def remove_abandoned_uploads(self, older_than: float = ABANDONED_UPLOAD_SECONDS) -> int:
        cutoff = time.time() - older_than
        removed = 0
        for upload in self._scratch.iterdir():
            try:
                if upload.stat().st_mtime < cutoff:
                    upload.unlink()
                    removed += 1
            except FileNotFoundError:
                # Its request finished, or another process removed it.
                continue
        return removed

    def _path(self, sha1: str) -> Path:
        _check_sha1(sha1)
        return self.root / sha1[:2] / sha1[2:]


def _check_sha1(sha1: str) -> None:
    """Raise ValueError for anything but a lower-case SHA-1 hex digest.

    Blob paths are built from the digest, so this also keeps them inside the root.
    """
    if not SHA1_PATTERN.match(sha1):
        raise ValueError(f"Invalid SHA-1 digest {sha1[:80]!r}.")
