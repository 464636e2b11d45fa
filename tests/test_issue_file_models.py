"""The issue and release file read models: rebuild from position zero, and concurrent writers."""

from __future__ import annotations

import threading

from api.services import Services
from projections.files import FilesProjection
from projections.issues import IssuesProjection
from projections.projector import POSITIONS_TABLE
from tests.test_files import SCRIPT, upload
from tests.test_issues import R, create_issue, create_release, issues_path


def table_rows(services: Services, tables: tuple[str, ...]) -> dict[str, list[tuple]]:
    with services.database.transaction() as cursor:
        return {
            table: sorted(tuple(str(value) for value in row.values())
                          for row in cursor.execute(f"SELECT * FROM {table}").fetchall())
            for table in tables
        }


def reset(services: Services, projection_name: str, tables: tuple[str, ...]) -> None:
    with services.database.transaction(write=True) as cursor:
        for table in tables:
            cursor.execute(f"DELETE FROM {table}")
        cursor.execute(f"UPDATE {POSITIONS_TABLE} SET position = 0 WHERE name = %s",
                       (projection_name,))


def test_issue_and_file_models_rebuild_to_same_rows(client, world, services):
    create_release(client, world, "1.0", "web")
    create_release(client, world, "2.0", "web")
    create_issue(client, world, "WEB-1", firstRelease="1.0")
    create_issue(client, world, "WEB-2", firstRelease="2.0")
    client.simulate_put(f"{R}2.0/", json={"commits": [{"id": "a" * 40, "message": "Fixes WEB-1"}]},
                        headers=world.headers())
    client.simulate_delete(f"{issues_path()}WEB-2/", headers=world.headers())
    create_issue(client, world, "WEB-2", firstRelease="1.0")
    first = upload(client, world, "1.0", SCRIPT, name="a.js").json
    upload(client, world, "2.0", SCRIPT, name="b.js")
    client.simulate_put(f"{R}1.0/files/{first['id']}/", json={"name": "c.js"},
                        headers=world.headers())
    client.simulate_delete(f"{R}2.0/", headers=world.headers())
    services.projector.catch_up()
    models = [IssuesProjection(), FilesProjection()]
    before = {model.name: table_rows(services, model.tables) for model in models}

    for model in models:
        reset(services, model.name, model.tables)
    replayed = services.projector.catch_up()
    again = services.projector.catch_up()

    assert replayed > 0
    assert again == 0
    for model in models:
        assert table_rows(services, model.tables) == before[model.name], model.name
    assert before["files_v1"]["files_v1_files"][0][3] == "c.js"


def test_issue_racing_release_delete_stays_consistent(client, world, services):
    # Either the release is deleted and the issue is refused, or the issue
    # refers to a release that still exists: never an issue pointing at a
    # deleted release.
    for round_number in range(5):
        version = f"race-{round_number}"
        short_id = f"WEB-{round_number + 100}"
        create_release(client, world, version, "web")
        results: dict[str, int] = {}

        def delete(into: dict[str, int] = results, version: str = version) -> None:
            into["delete"] = client.simulate_delete(f"{R}{version}/",
                                                    headers=world.headers()).status_code

        def create(into: dict[str, int] = results, version: str = version,
                   short_id: str = short_id) -> None:
            into["create"] = create_issue(client, world, short_id,
                                          firstRelease=version).status_code

        threads = [threading.Thread(target=delete), threading.Thread(target=create)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        shown = client.simulate_get(f"{R}{version}/", headers=world.headers())
        issue = client.simulate_get(f"{issues_path()}{short_id}/", headers=world.headers())
        assert results in ({"delete": 204, "create": 400}, {"delete": 400, "create": 201}), results
        if results["create"] == 201:
            assert shown.status_code == 200
            assert shown.json["newGroups"] == 1
            assert issue.status_code == 200
        else:
            assert shown.status_code == 404
            assert issue.status_code == 404
