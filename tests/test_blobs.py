"""The local blob store: content-addressed files, and its lock across processes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from api.blobs import ABANDONED_UPLOAD_SECONDS, LocalBlobStore
from api.cli import main
from api.files import remove_unused_blobs
from tests.servers import gunicorn
from tests.test_files import SCRIPT, R, create_release, upload

# Exits 0 when it gets the lock file's lock at once, 1 when another process holds it.
TRY_LOCK = """
import fcntl, sys
with open(sys.argv[1], "a") as lock_file:
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(1)
"""


def write(directory: Path, content: bytes) -> tuple[Path, str]:
    path = directory / "upload"
    path.write_bytes(content)
    return path, hashlib.sha1(content).hexdigest()


def test_blob_is_stored_once_per_content(tmp_path):
    store = LocalBlobStore(tmp_path / "blobs")
    first_path, sha1 = write(store.scratch_dir, b"content")

    first = store.add(sha1, first_path)
    second_path, _ = write(store.scratch_dir, b"content")
    second = store.add(sha1, second_path)

    assert first is True
    assert second is False
    assert not first_path.exists()
    assert not second_path.exists()
    assert list(store.sha1s()) == [sha1]
    with store.open(sha1) as blob:
        assert blob.read() == b"content"


def test_missing_blob_cannot_be_opened(tmp_path):
    store = LocalBlobStore(tmp_path / "blobs")
    sha1 = hashlib.sha1(b"never stored").hexdigest()

    store.remove(sha1)

    assert not store.contains(sha1)
    with pytest.raises(FileNotFoundError):
        store.open(sha1)


def test_blob_paths_accept_only_sha1_digests(tmp_path):
    store = LocalBlobStore(tmp_path / "blobs")

    for invalid in ("../../etc/passwd", "A" * 40, "0" * 39, ""):
        with pytest.raises(ValueError):
            store.open(invalid)
        with pytest.raises(ValueError):
            store.remove(invalid)


def test_lock_excludes_other_processes(tmp_path):
    store = LocalBlobStore(tmp_path / "blobs")
    sha1 = hashlib.sha1(b"locked").hexdigest()
    lock_file = store.root / "locks" / f"{sha1[:2]}.lock"

    with store.lock(sha1):
        while_held = subprocess.run([sys.executable, "-c", TRY_LOCK, str(lock_file)],
                                    check=False, timeout=30)
    after = subprocess.run([sys.executable, "-c", TRY_LOCK, str(lock_file)],
                           check=False, timeout=30)

    assert while_held.returncode == 1
    assert after.returncode == 0


def test_concurrent_upload_keeps_blob_of_removed_twin(client, world, services):
    # One thread removes the only file with some bytes while another uploads
    # the same bytes to another release: the blob must survive.
    create_release(client, world, "1.0", "web")
    create_release(client, world, "2.0", "web")
    sha1 = hashlib.sha1(SCRIPT).hexdigest()

    for round_number in range(5):
        old = upload(client, world, "2.0", SCRIPT, name=f"old-{round_number}.js").json
        results: dict[str, int] = {}

        def remove(file_id: str = old["id"], into: dict[str, int] = results) -> None:
            into["removed"] = client.simulate_delete(
                f"{R}2.0/files/{file_id}/", headers=world.headers()).status_code

        def add(number: int = round_number, into: dict[str, int] = results) -> None:
            into["uploaded"] = upload(client, world, "1.0", SCRIPT,
                                      name=f"new-{number}.js").status_code

        threads = [threading.Thread(target=remove), threading.Thread(target=add)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert results == {"removed": 204, "uploaded": 201}
        assert services.blobs.contains(sha1)

    remove_unused_blobs(services, [sha1], "tests")
    assert services.blobs.contains(sha1)


def test_blobs_collect_removes_unreferenced_blobs(client, world, settings, monkeypatch, capsys):
    create_release(client, world, "1.0", "web")
    kept = upload(client, world, "1.0", SCRIPT, name="app.js").json["sha1"]
    orphan_path, orphan = write(world.services.blobs.scratch_dir, b"left behind")
    world.services.blobs.add(orphan, orphan_path)
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LEDGER_BLOB_DIR", settings.blob_dir)

    code = main(["blobs", "collect"])

    assert code == 0
    assert capsys.readouterr().out == "Removed 1 unused blobs.\n"
    assert list(world.services.blobs.sha1s()) == [kept]


def test_abandoned_uploads_removed_after_an_hour(tmp_path):
    store = LocalBlobStore(tmp_path)
    old, fresh = store.scratch_dir / "upload-old", store.scratch_dir / "upload-fresh"
    old.write_bytes(b"partial")
    fresh.write_bytes(b"still arriving")
    two_hours_ago = time.time() - 2 * ABANDONED_UPLOAD_SECONDS
    os.utime(old, (two_hours_ago, two_hours_ago))

    removed = store.remove_abandoned_uploads()

    assert removed == 1
    assert not old.exists()
    assert fresh.exists()


def test_blobs_collect_removes_abandoned_uploads(world, settings, monkeypatch, capsys):
    partial = world.services.blobs.scratch_dir / "upload-killed"
    partial.write_bytes(b"partial")
    two_hours_ago = time.time() - 2 * ABANDONED_UPLOAD_SECONDS
    os.utime(partial, (two_hours_ago, two_hours_ago))
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LEDGER_BLOB_DIR", settings.blob_dir)

    code = main(["blobs", "collect"])

    assert code == 0
    assert capsys.readouterr().out == (
        "Removed 0 unused blobs.\nRemoved 1 uploads abandoned over an hour ago.\n"
    )
    assert not partial.exists()


def test_server_start_removes_abandoned_uploads(services, settings):
    partial = services.blobs.scratch_dir / "upload-killed"
    partial.write_bytes(b"partial")
    two_hours_ago = time.time() - 2 * ABANDONED_UPLOAD_SECONDS
    os.utime(partial, (two_hours_ago, two_hours_ago))

    with gunicorn(settings, workers=1) as server:
        log = server.log()

    assert not partial.exists()
    assert "abandoned uploads removed" in log
