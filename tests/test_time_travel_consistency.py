"""Reads with ?at= return exactly what the live endpoints returned at that instant.

Each test records a history through the REST API. After every write it
takes an instant and captures the live release bodies and release lists,
then reads each of them again with ?at= at every captured instant. No
field of a release body depends on the moment it is read, so bodies and
lists are compared whole.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import falcon.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from projections.timeline import TimelineProjection
from tests.builders import CAUSE, World, build_world
from tests.conftest import check_postgres_reachable
from tests.files import multipart
from tests.read_models import fresh_services, projection_named, rebuild, table_contents
from tests.test_time_travel import now

R = "/api/0/organizations/acme/releases/"
REPOS = "/api/0/organizations/acme/repos/"
VERSIONS = ("1.0", "2.0", "app@3.0")
OWNER = "owner@example.com"
MAX_EXAMPLES = 8
MAX_STEPS = 14


def issues_path(project: str, short_id: str = "") -> str:
    return f"/api/0/projects/acme/{project}/issues/{short_id + '/' if short_id else ''}"


def reads() -> list[tuple[str, dict[str, str]]]:
    """Return the reads to capture: every release, shown two ways, and filtered lists."""
    details = [f"{R}{version}/" for version in VERSIONS]
    in_project = [f"/api/0/projects/acme/web/releases/{version}/" for version in VERSIONS]
    lists = [
        (R, {}),
        (R, {"status": "archived"}),
        (R, {"query": "app"}),
        (R, {"per_page": "1"}),
        ("/api/0/projects/acme/web/releases/", {}),
        ("/api/0/projects/acme/api/releases/", {}),
    ]
    return [(path, {}) for path in details + in_project] + lists


class Recording:
    """Writes sent through the API, with the live reads captured after each one."""

    def __init__(self, client: falcon.testing.TestClient, world: World) -> None:
        self.client = client
        self.world = world
        self.captures: list[tuple[str, str, dict[str, tuple[int, Any]]]] = []
        self.capture("before any write")

    def write(self, method: str, path: str, **options: Any) -> falcon.testing.Result:
        """Send a write and capture the reads afterwards, whatever its status."""
        headers = {**self.world.headers(), **options.pop("headers", {})}
        response = self.client.simulate_request(method, path, headers=headers, **options)
        self.capture(f"{method} {path} -> {response.status_code}")
        return response

    def capture(self, step: str) -> None:
        moment = now()
        self.captures.append((step, moment, self.read()))

    def read(self, at: str | None = None) -> dict[str, tuple[int, Any]]:
        """Return each read's status and body, keyed by path and query."""
        found = {}
        for path, params in reads():
            query = {**params, "at": at} if at is not None else params
            response = self.client.simulate_get(path, params=query,
                                                headers=self.world.headers())
            key = f"{path}?{urlencode(params)}" if params else path
            found[key] = (response.status_code, response.json)
        return found

    def check_every_capture(self) -> None:
        for step, moment, live in self.captures:
            then = self.read(at=moment)
            for read, captured in live.items():
                assert then[read] == captured, f"{read} at {moment}, after {step}"


def add_owner(world: World) -> None:
    world.services.ledger.create_user(OWNER, False, CAUSE)
    world.services.ledger.add_member("acme", OWNER, "member", ("frontend",), CAUSE)


def commit(number: int, message: str = "change", email: str | None = "ada@example.com"
           ) -> dict[str, Any]:
    return {"id": f"{number:040x}", "repository": "acme/app", "message": message,
            "author_name": "Ada" if email else None, "author_email": email,
            "timestamp": f"2024-03-0{1 + number % 9}T10:00:00+02:00"}


def record_varied_history(recording: Recording) -> None:
    """Write releases with projects, dates, commits, refs, deploys, issues and files."""
    write = recording.write
    upload, content_type = multipart(b"console.log(1)\n", name="~/app.js")

    write("POST", R, json={"version": "1.0", "projects": ["web"], "ref": "main"})
    write("POST", R, json={"version": "2.0", "projects": ["api"],
                           "dateReleased": "2023-01-01T00:00:00Z"})
    write("POST", R, json={"version": "1.0", "projects": ["api"]})
    write("PUT", f"{R}1.0/", json={"dateReleased": "2024-02-01T00:00:00Z"})
    write("PUT", f"{R}1.0/", json={"ref": "v1", "url": "https://example.com/1.0",
                                   "owner": OWNER, "dateStarted": "2024-01-31T00:00:00Z"})
    write("PUT", f"{R}1.0/", json={"commits": [
        commit(2, "Add search"), commit(1, "Fix login", "bo@example.com"), commit(0, email=None),
    ]})
    write("POST", REPOS, json={"name": "acme/lib", "provider": "integrations:github",
                               "url": "https://github.com/acme/lib"})
    write("PUT", f"{R}1.0/", json={"refs": [
        {"repository": "acme/lib", "commit": "def456", "previousCommit": "abc123"},
    ]})
    write("POST", f"{R}1.0/deploys/", json={"environment": "production", "name": "first"})
    write("POST", f"{R}1.0/deploys/", json={"environment": "staging", "projects": ["api"],
                                            "dateFinished": "2024-02-02T00:00:00Z"})
    write("POST", issues_path("web"), json={"shortId": "WEB-1", "title": "Crash",
                                            "firstRelease": "1.0"})
    write("POST", issues_path("web"), json={"shortId": "WEB-2", "title": "Hang",
                                            "firstRelease": "1.0"})
    write("POST", issues_path("api"), json={"shortId": "API-1", "title": "Timeout",
                                            "firstRelease": "1.0"})
    write("POST", issues_path("api"), json={"shortId": "API-2", "title": "Unrelated"})
    write("PUT", f"{R}2.0/", json={"commits": [commit(7, "Fixes API-2")]})
    write("DELETE", issues_path("web", "WEB-1"))
    write("PUT", issues_path("web", "WEB-2"), json={"status": "ignored"})
    write("POST", f"{R}1.0/files/", body=upload, headers={"Content-Type": content_type})
    write("PUT", f"{R}1.0/", json={"status": "archived"})
    write("POST", R, json={"version": "app@3.0", "projects": ["web", "billing"]})
    write("PUT", f"{R}1.0/", json={"status": "open", "owner": None})
    write("DELETE", f"{R}2.0/")
    write("DELETE", issues_path("web", "WEB-2"))
    write("DELETE", issues_path("api", "API-1"))
    write("DELETE", f"{R}1.0/")
    write("POST", R, json={"version": "1.0", "projects": ["billing"], "ref": "again"})
    write("POST", issues_path("billing"), json={"shortId": "BILL-1", "title": "Refund",
                                                "firstRelease": "1.0"})


def test_reads_at_instants_match_live_reads(client, world):
    add_owner(world)
    recording = Recording(client, world)

    record_varied_history(recording)

    recording.check_every_capture()
    statuses = [live[f"{R}1.0/"][0] for _, _, live in recording.captures]
    bodies = [live[f"{R}1.0/"][1] for _, _, live in recording.captures]
    assert statuses.count(404) == 2
    assert {body["newGroups"] for body in bodies if "newGroups" in body} == {0, 1, 2, 3}
    assert any(body.get("deployCount") == 2 for body in bodies)
    assert any(body.get("status") == "archived" for body in bodies)


def test_rebuilt_timeline_matches_live_reads(client, world, services):
    add_owner(world)
    recording = Recording(client, world)
    record_varied_history(recording)
    # Requests catch up only the read models they read, and the last ones
    # do not read the timeline.
    services.projector.catch_up()
    timeline = projection_named(services, TimelineProjection.name)
    live_rows = table_contents(services, timeline)

    rebuild(services, TimelineProjection.name, batch_size=7)

    assert table_contents(services, timeline) == live_rows
    recording.check_every_capture()


def test_each_lifetime_counts_its_new_issues(client, world):
    recording = Recording(client, world)
    write = recording.write

    write("POST", R, json={"version": "1.0", "projects": ["web"], "commits": [commit(1)]})
    write("POST", issues_path("web"), json={"shortId": "WEB-1", "title": "Crash",
                                            "firstRelease": "1.0"})
    write("DELETE", issues_path("web", "WEB-1"))
    write("DELETE", f"{R}1.0/")
    write("POST", R, json={"version": "1.0", "projects": ["api"],
                           "dateReleased": "2024-01-01T00:00:00Z"})
    write("POST", issues_path("web"), json={"shortId": "WEB-1", "title": "Crash again",
                                            "firstRelease": "1.0"})
    write("POST", R, json={"version": "1.0", "projects": ["web"]})
    write("POST", issues_path("web"), json={"shortId": "WEB-1", "title": "Crash again",
                                            "firstRelease": "1.0"})

    recording.check_every_capture()
    last = recording.captures[-1][2][f"{R}1.0/"][1]
    assert last["newGroups"] == 1
    assert [(p["slug"], p["newGroups"]) for p in last["projects"]] == [("api", 0), ("web", 1)]


versions = st.sampled_from(VERSIONS)
projects = st.sampled_from(("web", "api", "billing"))
days = st.integers(min_value=1, max_value=28).map(lambda day: f"2024-02-{day:02d}T00:00:00Z")
creations = st.tuples(st.just("create"), versions, st.lists(projects, min_size=1, max_size=2))
steps = st.one_of(
    creations,
    st.tuples(st.just("finalize"), versions, days),
    st.tuples(st.just("describe"), versions, st.sampled_from(("a", "b", None)),
              st.sampled_from((OWNER, None))),
    st.tuples(st.just("set_commits"), versions, st.lists(st.integers(0, 4), max_size=3)),
    st.tuples(st.just("set_refs"), versions, st.integers(0, 4)),
    st.tuples(st.just("deploy"), versions, st.sampled_from(("production", "staging"))),
    st.tuples(st.just("add_issue"), versions, st.integers(0, 3)),
    st.tuples(st.just("remove_issue"), st.integers(0, 3)),
    st.tuples(st.just("set_status"), versions, st.sampled_from(("open", "archived"))),
    st.tuples(st.just("delete"), versions),
)


class Steps:
    """Generated steps, sent as REST writes. A write that the API rejects changes nothing."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.issues: list[tuple[str, str]] = []

    def run(self, step: tuple) -> None:
        name, *arguments = step
        getattr(self, name)(*arguments)

    def create(self, version: str, slugs: list[str]) -> None:
        self.recording.write("POST", R, json={"version": version, "projects": slugs})

    def finalize(self, version: str, day: str) -> None:
        self.recording.write("PUT", f"{R}{version}/", json={"dateReleased": day})

    def describe(self, version: str, ref: str | None, owner: str | None) -> None:
        self.recording.write("PUT", f"{R}{version}/", json={"ref": ref, "owner": owner})

    def set_commits(self, version: str, numbers: list[int]) -> None:
        commits = [commit(number, f"change {number}") for number in numbers]
        self.recording.write("PUT", f"{R}{version}/", json={"commits": commits})

    def set_refs(self, version: str, number: int) -> None:
        refs = [{"repository": "acme/lib", "commit": f"{number:040x}"}]
        self.recording.write("PUT", f"{R}{version}/", json={"refs": refs})

    def deploy(self, version: str, environment: str) -> None:
        self.recording.write("POST", f"{R}{version}/deploys/", json={"environment": environment})

    def add_issue(self, version: str, number: int) -> None:
        """Create an issue first seen in `version`, in one of the projects linked to it now."""
        status, body = self.recording.captures[-1][2][f"{R}{version}/"]
        if status != 200:
            return
        project = body["projects"][number % len(body["projects"])]["slug"]
        short_id = f"{project.upper()}-{number}"
        response = self.recording.write("POST", issues_path(project), json={
            "shortId": short_id, "title": short_id, "firstRelease": version,
        })
        if response.status_code == 201:
            self.issues.append((project, short_id))

    def remove_issue(self, number: int) -> None:
        if self.issues:
            project, short_id = self.issues.pop(number % len(self.issues))
            self.recording.write("DELETE", issues_path(project, short_id))

    def set_status(self, version: str, status: str) -> None:
        self.recording.write("PUT", f"{R}{version}/", json={"status": status})

    def delete(self, version: str) -> None:
        self.recording.write("DELETE", f"{R}{version}/")


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=creations, sequence=st.lists(steps, max_size=MAX_STEPS))
def test_generated_histories_match_live_reads(backend, tmp_path, first, sequence):
    if backend == "postgresql":
        check_postgres_reachable()
    with fresh_services(backend, tmp_path) as services:
        world = build_world(services)
        add_owner(world)
        client = falcon.testing.TestClient(create_app(services.settings, services))
        client.simulate_post(REPOS, json={"name": "acme/lib"}, headers=world.headers())
        recording = Recording(client, world)
        runner = Steps(recording)

        for step in [first, *sequence]:
            runner.run(step)

        recording.check_every_capture()
