"""Property: read models kept up to date while commands run equal the same models rebuilt.

Hypothesis generates sequences of release commands, with catch-ups at
random points between them. Each example runs on a ledger of its own.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.services import Services
from domain.application import ReleaseChanges
from domain.errors import LedgerError
from tests.builders import CAUSE
from tests.conftest import check_postgres_reachable
from tests.read_models import BASE_TIME, all_contents, fresh_services, rebuild

VERSIONS = ("1.0", "1.1", "2.0")
PROJECTS = ("web", "api", "billing")
ENVIRONMENTS = ("production", "staging")
MAX_EXAMPLES = 20
MAX_COMMANDS = 25

versions = st.sampled_from(VERSIONS)
project_sets = st.lists(st.sampled_from(PROJECTS), min_size=1, max_size=3, unique=True)
hours = st.integers(min_value=0, max_value=24 * 21)
commit_lists = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=5),
        st.sampled_from(("acme/app", "acme/lib")),
        st.one_of(st.none(), st.integers(min_value=0, max_value=24 * 14)),
    ),
    max_size=5,
)
commands = st.one_of(
    st.tuples(st.just("create"), versions, project_sets, st.one_of(st.none(), hours)),
    st.tuples(st.just("add_projects"), versions, project_sets),
    st.tuples(st.just("finalize"), versions, hours),
    st.tuples(st.just("set_commits"), versions, commit_lists),
    st.tuples(st.just("archive"), versions),
    st.tuples(st.just("restore"), versions),
    st.tuples(st.just("delete"), versions),
    st.tuples(st.just("deploy"), versions, st.sampled_from(ENVIRONMENTS),
              st.lists(st.sampled_from(PROJECTS), max_size=3, unique=True), hours),
    st.tuples(st.just("add_issue"), versions, st.integers(0, 2)),
    st.tuples(st.just("remove_issue"), st.sampled_from(PROJECTS), st.integers(0, 2)),
    st.tuples(st.just("catch_up")),
)


class Commands:
    """Runs generated commands against one organization with projects web, api and billing."""

    def __init__(self, services: Services) -> None:
        self.services = services
        ledger = services.ledger
        ledger.create_organization("acme", "Acme", False, CAUSE)
        ledger.create_team("acme", "everyone", None, CAUSE)
        self.projects = {
            slug: ledger.create_project("acme", slug, None, ["everyone"], CAUSE).aggregate.id
            for slug in PROJECTS
        }
        self.org_id = ledger.get_organization("acme").id

    def run(self, command: tuple) -> None:
        """Run one command; a command the ledger rejects records nothing and is skipped."""
        name, *arguments = command
        with contextlib.suppress(LedgerError):
            getattr(self, name)(*arguments)

    def create(self, version: str, projects: list[str], hour: int | None) -> None:
        changes = ReleaseChanges(project_ids=self._ids(projects))
        if hour is not None:
            changes.date_released = BASE_TIME + timedelta(hours=hour)
        self.services.ledger.create_release(self.org_id, version, changes, CAUSE)

    def add_projects(self, version: str, projects: list[str]) -> None:
        changes = ReleaseChanges(project_ids=self._ids(projects))
        self.services.ledger.update_release(self.org_id, version, changes, CAUSE)

    def finalize(self, version: str, hour: int) -> None:
        changes = ReleaseChanges(date_released=BASE_TIME + timedelta(hours=hour))
        self.services.ledger.update_release(self.org_id, version, changes, CAUSE)

    def set_commits(self, version: str, commits: list[tuple]) -> None:
        listed = [
            {"id": f"{number:040x}", "repository": repository, "message": None,
             "author_name": None, "author_email": None, "patch_set": [],
             "timestamp": None if hour is None
             else (BASE_TIME + timedelta(hours=hour)).isoformat()}
            for number, repository, hour in commits
        ]
        self.services.ledger.update_release(
            self.org_id, version, ReleaseChanges(commits=listed), CAUSE
        )

    def archive(self, version: str) -> None:
        self.services.ledger.update_release(
            self.org_id, version, ReleaseChanges(status="archived"), CAUSE
        )

    def restore(self, version: str) -> None:
        self.services.ledger.update_release(
            self.org_id, version, ReleaseChanges(status="open"), CAUSE
        )

    def delete(self, version: str) -> None:
        self.services.ledger.delete_release(self.org_id, version, CAUSE)

    def deploy(self, version: str, environment: str, projects: list[str], hour: int) -> None:
        release = self.services.ledger.get_release(self.org_id, version)
        chosen = [p for p in self._ids(projects) if p in release.project_ids]
        deploy = {"environment": environment, "name": None, "url": None, "date_started": None,
                  "date_finished": BASE_TIME + timedelta(hours=hour)}
        self.services.ledger.record_deploy(self.org_id, version, deploy, chosen, CAUSE)

    def add_issue(self, version: str, number: int) -> None:
        """Create an issue first seen in `version`, in one of the projects linked to it."""
        release = self.services.ledger.get_release(self.org_id, version)
        project_id = release.project_ids[number % len(release.project_ids)]
        project = next(slug for slug, known in self.projects.items() if known == project_id)
        self.services.ledger.create_issue(
            self.org_id, project_id, f"{project.upper()}-{number}", "Error", version, CAUSE
        )

    def remove_issue(self, project: str, number: int) -> None:
        self.services.ledger.delete_issue(
            self.org_id, self.projects[project], f"{project.upper()}-{number}", CAUSE
        )

    def catch_up(self) -> None:
        self.services.projector.catch_up()

    def _ids(self, projects: list[str]) -> list:
        return [self.projects[slug] for slug in projects]


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sequence=st.lists(commands, max_size=MAX_COMMANDS),
    batch_size=st.integers(min_value=1, max_value=40),
)
def test_live_read_models_equal_rebuilt_ones(backend, tmp_path, sequence, batch_size):
    if backend == "postgresql":
        check_postgres_reachable()
    with fresh_services(backend, tmp_path) as services:
        runner = Commands(services)
        for command in sequence:
            runner.run(command)
        services.projector.catch_up()
        live = all_contents(services)

        for projection in services.projector.projections:
            rebuild(services, projection.name, batch_size=batch_size)

        assert all_contents(services) == live
