"""Commit lists of releases started in one batch, and of earlier ones, reach the commits table.

Around COPY_FROM_ROWS commits a list changes from pipelined INSERTs to a COPY stream.
"""

from __future__ import annotations

from domain.application import ReleaseChanges
from projections.postgres import COPY_FROM_ROWS
from projections.projector import Projector
from projections.releases import COMMITS
from tests.builders import CAUSE
from tests.read_models import org_id, project_ids, projection_named


def commits(prefix: str, count: int) -> list[dict]:
    return [{"id": f"{prefix}{index:08x}", "repository": "acme/app", "message": f"m{index}",
             "author_name": "Ada", "author_email": "ada@example.com",
             "timestamp": "2024-01-01T00:00:00+00:00",
             "patch_set": [{"path": f"f{index}.py", "type": "M"}]}
            for index in range(count)]


def changes(project_ids: list, prefix: str, count: int) -> ReleaseChanges:
    return ReleaseChanges(project_ids=project_ids, commits=commits(prefix, count))


def test_commit_lists_in_one_batch(services, world):
    ledger, org = services.ledger, org_id(services)
    web = project_ids(services, "web")
    ledger.create_release(org, "old", changes(web, "aa", 3), CAUSE)
    projection = projection_named(services, "releases_v1")
    projector = Projector(ledger, services.database, [projection], batch_size=10_000)
    projector.catch_up()
    expected = {}
    for count in (0, 1, COPY_FROM_ROWS - 1, COPY_FROM_ROWS, COPY_FROM_ROWS + 1, 200):
        version = f"v{count}"
        ledger.create_release(org, version, ReleaseChanges(project_ids=web), CAUSE)
        ledger.update_release(org, version, changes(web, "bb", count), CAUSE)
        expected[version] = commits("bb", count)
    ledger.create_release(org, "twice", changes(web, "cc", 70), CAUSE)
    ledger.update_release(org, "twice", changes(web, "dd", 5), CAUSE)
    expected["twice"] = commits("dd", 5)
    ledger.create_release(org, "again", changes(web, "ee", 80), CAUSE)
    ledger.delete_release(org, "again", CAUSE)
    ledger.create_release(org, "again", changes(web, "ff", 66), CAUSE)
    expected["again"] = commits("ff", 66)
    ledger.update_release(org, "old", changes(web, "gg", 90), CAUSE)
    expected["old"] = commits("gg", 90)

    projector.catch_up()

    for version, listed in expected.items():
        release_id = str(ledger.get_release(org, version).id)
        with services.database.transaction() as cursor:
            rows = cursor.execute(
                f"SELECT position, commit_id FROM {COMMITS} WHERE release_id = %s"
                " ORDER BY position", (release_id,)).fetchall()
        assert [(row["position"], row["commit_id"]) for row in rows] == [
            (index, commit["id"]) for index, commit in enumerate(listed)], version
