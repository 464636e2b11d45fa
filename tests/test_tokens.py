"""API tokens: stored only as hashes, never compared with ==, revoked on every worker at once."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.builders import CAUSE
from tests.rebuild import table_contents
from tests.servers import BIN, ROOT, gunicorn

R = "/api/0/organizations/acme/releases/"
SOURCE_FOLDERS = ("api", "domain", "projections", "chain")
SECRET_WORDS = ("secret", "token", "signature", "password", "digest")
MAX_REQUESTS = 200


def status_of(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def answered_pids(log: str, status: int) -> set[int]:
    """Return the worker pids that logged a response with `status` to the releases list."""
    pids = set()
    for line in log.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "api.access" and entry.get("status") == status:
                pids.add(entry["pid"])
    return pids


def secret_comparisons(path: Path) -> list[str]:
    """Return the == and != comparisons in a module whose operands name a secret."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            continue
        operands = (node.left, *node.comparators)
        if any(isinstance(operand, ast.Constant) for operand in operands):
            continue
        for operand in operands:
            name = ast.unparse(operand).lower()
            if any(word in name for word in SECRET_WORDS) and "scope" not in name:
                found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_secret_is_compared_with_equality():
    modules = [path for folder in SOURCE_FOLDERS for path in (ROOT / folder).rglob("*.py")]

    found = [line for path in modules for line in secret_comparisons(path)]

    assert modules
    assert found == []


def test_token_secret_is_stored_nowhere(services, world):
    secret = world.token(org="acme", scopes=("org:ci",))
    services.ledger.revoke_token(secret, CAUSE)
    services.projector.catch_up()

    notifications = services.ledger.recorder.select_notifications(start=1, limit=100_000)
    read_models = json.dumps(table_contents(services.database), default=str)

    assert notifications
    assert all(secret.encode() not in notification.state for notification in notifications)
    assert secret not in read_models
    assert secret.removeprefix("sntryu_") not in read_models


@pytest.mark.slow
def test_revoke_takes_effect_on_every_worker(settings, world):
    token = world.token(org="acme", scopes=("org:ci",))
    environment = {**os.environ, "LEDGER_DATABASE_URL": settings.database_url}

    with gunicorn(settings, workers=2) as server, ThreadPoolExecutor(4) as pool:
        url = server.url + R
        before = []
        while len(before) < MAX_REQUESTS and len(answered_pids(server.log(), 200)) < 2:
            before += pool.map(status_of, [url] * 4, [token] * 4)
        revoked = subprocess.run([str(BIN / "release-ledger"), "token", "revoke", token],
                                 env=environment, capture_output=True, text=True, timeout=60)
        after = []
        while len(after) < MAX_REQUESTS and len(answered_pids(server.log(), 401)) < 2:
            after += pool.map(status_of, [url] * 4, [token] * 4)
        log = server.log()

    assert set(before) == {200}
    assert revoked.returncode == 0, revoked.stderr
    assert set(after) == {401}
    assert len(answered_pids(log, 200)) == 2
    assert len(answered_pids(log, 401)) == 2
