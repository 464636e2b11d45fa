"""Concurrent pipelines on one release, against gunicorn on PostgreSQL.

Each scenario starts its requests together behind a barrier. No response
may be a 500; every acknowledged write must appear in the release's history
under its request id at the position it reported; and the final state
must be the one that history's order of events produces.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from api.services import Services
from domain.directory import SCOPES
from tests.builders import CAUSE, World
from tests.rebuild import rebuild, table_contents
from tests.servers import gunicorn

pytestmark = pytest.mark.slow

R = "/api/0/organizations/acme/releases/"
WORKERS = 4
CONFLICT_STATUSES = {409}


@dataclass
class Answer:
    request_id: str
    method: str
    body: Any
    status: int
    position: int | None
    response: Any


class Client:
    """Sends JSON requests with a token and a fresh request id each."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token

    def send(self, method: str, path: str, body: Any = None) -> Answer:
        request_id = uuid.uuid4().hex
        request = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "X-Request-ID": request_id,
                     "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, headers, data = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, data = error.code, error.headers, error.read()
        position = headers.get("X-Ledger-Position")
        return Answer(request_id, method, body, status, int(position) if position else None,
                      json.loads(data) if data else None)


def together(*calls: Callable[[], Answer]) -> list[Answer]:
    """Run the calls in threads that start at the same moment; return their results in order."""
    barrier = threading.Barrier(len(calls))
    answers: list[Answer | None] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        answers[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [answer for answer in answers if answer is not None]


def history(client: Client, version: str) -> list[dict[str, Any]]:
    items, cursor = [], ""
    while True:
        page = client.send("GET", f"{R}{version}/history/?per_page=100{cursor}").response
        items += page
        if len(page) < 100:
            return items
        cursor = f"&cursor={page[-1]['id']}:0:0"


def check_acknowledged(answers: list[Answer], events: list[dict[str, Any]]) -> None:
    """Every write that reported a position recorded an event there, under its request id."""
    by_position = {int(event["id"]): event for event in events}
    for answer in answers:
        assert answer.status < 500, (answer.status, answer.response)
        if answer.status in CONFLICT_STATUSES:
            assert list(answer.response) == ["detail"]
        if answer.position is not None and answer.status < 300:
            event = by_position.get(answer.position)
            assert event is not None, answer
            assert event["requestId"] == answer.request_id, (answer, event)


def replay(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Fold a release's history into the fields a GET shows, in the history's order."""
    state: dict[str, Any] = {"deleted": False}
    for event in events:
        kind, data = event["type"], event["data"]
        if kind in ("release.created", "release.recreated"):
            state = {"deleted": False, "status": "open", "ref": data.get("ref"),
                     "url": data.get("url"), "dateReleased": None, "commits": [],
                     "projects": set()}
        elif kind == "release.deleted":
            state["deleted"] = True
        elif kind == "release.archived":
            state["status"] = "archived"
        elif kind == "release.restored":
            state["status"] = "open"
        elif kind == "release.updated":
            state["ref"], state["url"] = data.get("ref"), data.get("url")
        elif kind == "release.released":
            state["dateReleased"] = data["dateReleased"]
        elif kind == "release.commits_set":
            state["commits"] = [commit["id"] for commit in data["commits"]]
        elif kind == "release.project_added":
            state["projects"] |= set(data["projects"])
    return state


@pytest.fixture
def served(backend, settings, world):
    if backend == "sqlite":
        pytest.skip("Concurrent pipelines are tested on PostgreSQL, the production database.")
    token = world.user(superuser=True, scopes=SCOPES)
    with gunicorn(settings, workers=WORKERS) as server:
        yield Client(server.url, token)
        log = server.log()
    assert '"status": 500' not in log
    assert "Traceback" not in log


def create(client: Client, version: str, *projects: str) -> Answer:
    answer = client.send("POST", R, {"version": version, "projects": list(projects or ["web"])})
    assert answer.status in (201, 208), answer
    return answer


def test_two_puts_of_different_fields_both_apply(served):
    create(served, "1.0")

    rounds = []
    for index in range(8):
        rounds += together(
            lambda index=index: served.send("PUT", f"{R}1.0/", {"ref": f"ref-{index}"}),
            lambda index=index: served.send("PUT", f"{R}1.0/", {"url": f"https://ci/{index}"}),
        )
        shown = served.send("GET", f"{R}1.0/").response

        assert shown["ref"] == f"ref-{index}"
        assert shown["url"] == f"https://ci/{index}"
    assert {answer.status for answer in rounds} == {200}
    check_acknowledged(rounds, history(served, "1.0"))


def test_concurrent_project_additions_keep_every_project(served, world):
    projects = [f"p{index}" for index in range(8)]
    for project in projects:
        world.services.ledger.create_project("acme", project, None, ["frontend"], CAUSE)

    answers = together(*(lambda project=project: served.send(
        "POST", R, {"version": "2.0", "projects": [project]}) for project in projects))
    shown = served.send("GET", f"{R}2.0/").response

    assert {answer.status for answer in answers} == {201}
    assert sorted(project["slug"] for project in shown["projects"]) == projects
    check_acknowledged(answers, history(served, "2.0"))


def test_concurrent_creates_make_one_release(served):
    answers = together(*(lambda: served.send("POST", R, {"version": "3.0", "projects": ["web"]})
                         for _ in range(12)))
    listed = [release["version"] for release in served.send("GET", f"{R}?query=3.0").response]

    assert sorted(answer.status for answer in answers) == [201] + [208] * 11
    assert listed == ["3.0"]


def test_concurrent_commit_sets_leave_one_whole_list(served):
    create(served, "4.0")
    lists = [[f"{index:02d}{commit:038x}" for commit in range(5)] for index in range(8)]

    answers = together(*(lambda ids=ids: served.send(
        "PUT", f"{R}4.0/", {"commits": [{"id": commit_id} for commit_id in ids]})
        for ids in lists))
    events = history(served, "4.0")
    shown = served.send("GET", f"{R}4.0/").response
    listed = [commit["id"] for commit in served.send("GET", f"{R}4.0/commits/").response]

    assert {answer.status for answer in answers} == {200}
    assert listed in lists
    assert listed == replay(events)["commits"]
    assert shown["commitCount"] == 5
    assert len([e for e in events if e["type"] == "release.commits_set"]) == len(lists)
    check_acknowledged(answers, events)


def test_mixed_write_burst_is_serializable(served, world, services, tmp_path):
    create(served, "5.0", "web", "api")
    writes: list[Callable[[], Answer]] = []
    for index in range(3):
        writes += [
            lambda index=index: served.send(
                "PUT", f"{R}5.0/", {"dateReleased": f"2024-01-0{index + 1}T00:00:00Z"}),
            lambda index=index: served.send(
                "PUT", f"{R}5.0/", {"commits": [{"id": f"c{index}"}]}),
            lambda index=index: served.send(
                "POST", R, {"version": "5.0", "projects": ["billing"],
                            "status": "archived" if index % 2 else "open"}),
            lambda index=index: served.send("PUT", f"{R}5.0/", {"ref": f"r{index}"}),
        ]
    writes.append(lambda: served.send("DELETE", f"{R}5.0/"))

    answers = together(*writes)
    events = history(served, "5.0")
    final = replay(events)
    shown = served.send("GET", f"{R}5.0/")

    assert {answer.status for answer in answers} <= {200, 201, 204, 208, 404}
    check_acknowledged(answers, events)
    if final["deleted"]:
        assert shown.status == 404
    else:
        body = shown.response
        assert shown.status == 200
        assert body["status"] == final["status"]
        assert body["ref"] == final["ref"]
        assert body["commitCount"] == len(final["commits"])
        assert (body["dateReleased"] is None) == (final["dateReleased"] is None)
    services.projector.catch_up()
    assert table_contents(services.database) == table_contents(rebuild(services, tmp_path))


def test_lost_races_retried_then_409(settings, services, world, client,
                                                monkeypatch):
    client.simulate_post(R, json={"version": "6.0", "projects": ["web"]},
                         headers=world.headers())
    rival = Services(settings)
    attempts = []
    save = services.ledger.save

    def save_after_a_rival(*aggregates, **kwargs):
        attempts.append(len(attempts))
        rival.ledger.update_release(world_org_id(rival, world), "6.0",
                                    _ref_change(f"rival-{len(attempts)}"), CAUSE)
        return save(*aggregates, **kwargs)

    monkeypatch.setattr(services.ledger, "save", save_after_a_rival)
    try:
        response = client.simulate_put(f"{R}6.0/", json={"url": "https://lost"},
                                        headers=world.headers())
    finally:
        rival.close()
    monkeypatch.undo()
    shown = client.simulate_get(f"{R}6.0/", headers=world.headers()).json

    assert response.status_code == 409
    assert list(response.json) == ["detail"]
    assert "retry" in response.json["detail"]
    assert len(attempts) == 5
    assert shown["url"] is None
    assert shown["ref"] == "rival-5"


def world_org_id(services: Services, world: World) -> Any:
    from uuid import UUID

    with services.read() as queries:
        return UUID(queries.directory.organization(world.org)["id"])


def _ref_change(ref: str) -> Any:
    from domain.application import ReleaseChanges

    return ReleaseChanges(ref=ref)
