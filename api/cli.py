"""The `release-ledger` command: set-up, directory administration and tokens.

Each subcommand reads LEDGER_DATABASE_URL like the server. On invalid
input it prints one line on stderr, changes nothing and exits with 1.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sqlite3
import sys
import uuid
from collections.abc import Callable, Sequence

import psycopg
from eventsourcing.persistence import PersistenceError

from api.audit_commands import add_audit_commands
from api.config import ConfigurationError, Settings
from api.files import remove_unused_blobs
from api.projection_commands import add_projection_commands
from api.projector import run_projections
from api.services import Services
from domain.cause import Cause
from domain.directory import ROLES, SCOPES
from domain.errors import AlreadyExistsError, LedgerError

DATABASE_ERRORS = (psycopg.Error, sqlite3.Error, PersistenceError)
USER_TOKEN_SCOPES = ("org:read", "project:read", "project:write", "project:releases")
ORG_TOKEN_SCOPES = ("org:ci",)
BOOTSTRAP_SCOPES = (
    "org:read", "org:write", "org:admin", "project:read", "project:write", "project:admin",
    "project:releases", "team:read", "team:write",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        settings = Settings.from_environ()
        services = Services(settings, create_tables=args.handler is migrate
                            or settings.backend == "sqlite")
    except (ConfigurationError, OSError, *DATABASE_ERRORS) as error:
        print(f"release-ledger: {error}", file=sys.stderr)
        return 1
    try:
        status = args.handler(services, args, _cause())
    except LedgerError as error:
        print(f"release-ledger: {error}", file=sys.stderr)
        return 1
    except DATABASE_ERRORS as error:
        print(f"release-ledger: database error: {error}".splitlines()[0], file=sys.stderr)
        return 1
    finally:
        services.close()
    return status or 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="release-ledger", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(metavar="COMMAND")

    _command(commands, "migrate", migrate, "create or upgrade the ledger's tables")
    _command(commands, "bootstrap", bootstrap,
             "make a first organization, team, project, superuser and token")

    user = _group(commands, "user", "manage users")
    create_user_parser = _command(user, "create", create_user, "create a user")
    create_user_parser.add_argument("email")
    create_user_parser.add_argument("--superuser", action="store_true",
                                    help="let the user use every organization and project")

    org = _group(commands, "org", "manage organizations")
    create_org_parser = _command(org, "create", create_org, "create an organization")
    create_org_parser.add_argument("slug")
    create_org_parser.add_argument("--name", help="display name, default the slug")
    create_org_parser.add_argument("--open-membership", action="store_true",
                                   help="let every member use every project")

    team = _group(commands, "team", "manage teams")
    create_team_parser = _command(team, "create", create_team, "create a team")
    create_team_parser.add_argument("org")
    create_team_parser.add_argument("slug")

    project = _group(commands, "project", "manage projects")
    create_project_parser = _command(project, "create", create_project, "create a project")
    create_project_parser.add_argument("org")
    create_project_parser.add_argument("slug")
    create_project_parser.add_argument("--team", required=True, help="slug of the owning team")
    create_project_parser.add_argument("--name", help="display name, default the slug")

    member = _group(commands, "member", "manage memberships")
    add_member_parser = _command(member, "add", add_member,
                                 "make a user a member or add teams to a member")
    add_member_parser.add_argument("org")
    add_member_parser.add_argument("email")
    add_member_parser.add_argument("--team", action="append", default=[],
                                   help="slug of a team to join; repeatable")
    add_member_parser.add_argument("--role", help=f"one of {', '.join(ROLES)}; default member")

    repo = _group(commands, "repo", "manage repositories")
    register_repo_parser = _command(
        repo, "register", register_repo,
        "register a repository, or replace the URL and provider of a registered one",
    )
    register_repo_parser.add_argument("org")
    register_repo_parser.add_argument("name", help="the name commits and refs use, e.g. acme/app")
    register_repo_parser.add_argument(
        "--url", help="the repository's URL; with --provider git, a local path or file:// URL"
        " lets refs read its history",
    )
    register_repo_parser.add_argument(
        "--provider", help="provider id, e.g. git or integrations:github"
    )

    token = _group(commands, "token", "manage API tokens")
    create_token_parser = _command(token, "create", create_token,
                                   "create a token and print only its secret")
    owner = create_token_parser.add_mutually_exclusive_group(required=True)
    owner.add_argument("--user", metavar="EMAIL", help="a token acting as this user")
    owner.add_argument("--org", metavar="ORG", help="an organization token")
    create_token_parser.add_argument(
        "--scope", action="append", default=[], metavar="SCOPE",
        help=f"repeatable, one of {', '.join(SCOPES)}; user tokens default to"
        f" {' '.join(USER_TOKEN_SCOPES)}, organization tokens to {' '.join(ORG_TOKEN_SCOPES)}",
    )
    revoke_token_parser = _command(token, "revoke", revoke_token,
                                   "revoke a token; the next request with it answers 401")
    revoke_token_parser.add_argument("token", help="the token's secret")

    blobs = _group(commands, "blobs", "manage the contents of release files")
    _command(blobs, "collect", collect_blobs,
             "remove stored file contents that no release file refers to")
    add_audit_commands(commands)
    projections = add_projection_commands(commands)
    run_parser = _command(projections, "run", run_projections_command,
                          "keep read models up to date until SIGTERM or Ctrl-C")
    run_parser.add_argument("names", nargs="*", metavar="NAME",
                            help="read models to keep up to date; default all")
    return parser


def migrate(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    linked = services.ledger.recorder.chain_earlier_events()
    if linked:
        print(f"Linked {linked} events recorded before the hash chain existed.")
    caught_up = services.projector.catch_up()
    print(f"Tables are ready; {caught_up} events applied to the read models.")


def run_projections_command(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    run_projections(services, args.names)


def create_user(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    services.ledger.create_user(args.email, args.superuser, cause)
    print(f"Created user {args.email}.")


def create_org(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    services.ledger.create_organization(args.slug, args.name, args.open_membership, cause)
    print(f"Created organization {args.slug}.")


def create_team(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    services.ledger.create_team(args.org, args.slug, None, cause)
    print(f"Created team {args.slug} in {args.org}.")


def create_project(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    services.ledger.create_project(args.org, args.slug, args.name, [args.team], cause)
    print(f"Created project {args.slug} in {args.org}, owned by team {args.team}.")


def add_member(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    services.ledger.add_member(args.org, args.email, args.role, args.team, cause)
    print(f"{args.email} is a member of {args.org}.")


def register_repo(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    organization = services.ledger.get_organization(args.org)
    outcome = services.ledger.register_repository(
        organization.id, args.name, args.url, args.provider, cause
    )
    verb = "Registered" if outcome.created else "Updated"
    print(f"{verb} repository {outcome.aggregate.name} in {args.org}.")


def create_token(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    default_scopes = USER_TOKEN_SCOPES if args.user else ORG_TOKEN_SCOPES
    secret, _ = services.ledger.create_token(
        cause, user_email=args.user, org_slug=args.org, scopes=args.scope or default_scopes,
        label="command line",
    )
    print(secret)


def revoke_token(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    services.ledger.revoke_token(args.token, cause)
    print("Revoked the token.")


def collect_blobs(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    """Remove unreferenced blobs and abandoned uploads, such as those of a stopped server."""
    removed = remove_unused_blobs(services, list(services.blobs.sha1s()), cause.request_id or "-")
    print(f"Removed {removed} unused blobs.")
    abandoned = services.blobs.remove_abandoned_uploads()
    if abandoned:
        print(f"Removed {abandoned} uploads abandoned over an hour ago.")


def bootstrap(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    """Create what a first session needs and print sentry-cli's environment.

    Whatever exists already is kept.

    Tokens are stored only as hashes, so each run makes a new token; earlier
    ones stay valid until revoked.
    """
    ledger = services.ledger
    _ignore_existing(lambda: ledger.create_user(args.email, True, cause))
    _ignore_existing(lambda: ledger.create_organization(args.org, None, False, cause))
    _ignore_existing(lambda: ledger.create_team(args.org, args.team, None, cause))
    _ignore_existing(
        lambda: ledger.create_project(args.org, args.project, None, [args.team], cause)
    )
    ledger.add_member(args.org, args.email, "owner", [args.team], cause)
    secret, _ = ledger.create_token(
        cause, user_email=args.email, scopes=BOOTSTRAP_SCOPES, label="bootstrap"
    )
    url = services.settings.public_url
    print(f"# Superuser {args.email}, organization {args.org}, team {args.team},"
          f" project {args.project}.")
    print("# Export these for sentry-cli:")
    print(f"export SENTRY_URL={url}")
    print(f"export SENTRY_AUTH_TOKEN={secret}")
    print(f"export SENTRY_ORG={args.org}")
    print(f"export SENTRY_PROJECT={args.project}")


def _ignore_existing(create: Callable[[], object]) -> None:
    with contextlib.suppress(AlreadyExistsError):
        create()


def _command(
    commands: argparse._SubParsersAction, name: str, handler: Callable, help_text: str
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    if handler is bootstrap:
        parser.add_argument("--email", default="admin@localhost", help="the superuser's email")
        parser.add_argument("--org", default="acme", help="organization slug")
        parser.add_argument("--team", default="platform", help="team slug")
        parser.add_argument("--project", default="web", help="project slug")
    return parser


def _group(commands: argparse._SubParsersAction, name: str, help_text: str):
    parser = commands.add_parser(name, help=help_text)
    return parser.add_subparsers(metavar="ACTION", required=True)


def _cause() -> Cause:
    try:
        operator = getpass.getuser()
    except (KeyError, OSError):
        operator = "unknown"
    return Cause("system", f"cli:{operator}", None, f"cli-{uuid.uuid4().hex}")


if __name__ == "__main__":
    sys.exit(main())
