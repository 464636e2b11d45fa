"""The `release-ledger` command: set-up, directory administration and tokens.

Each subcommand reads LEDGER_DATABASE_URL like the server. On invalid
input it prints one line on stderr, changes nothing and exits with 1.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import uuid
from collections.abc import Callable, Sequence

from api.config import ConfigurationError, Settings
from api.projection_commands import add_projection_commands
from api.services import Services
from domain.cause import Cause
from domain.directory import ROLES, SCOPES
from domain.errors import AlreadyExistsError, LedgerError

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
    except (ConfigurationError, OSError) as error:
        print(f"release-ledger: {error}", file=sys.stderr)
        return 1
    try:
        args.handler(services, args, _cause())
    except LedgerError as error:
        print(f"release-ledger: {error}", file=sys.stderr)
        return 1
    finally:
        services.close()
    return 0


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
    add_member_parser.add_argument("--role", choices=ROLES, help="default member")

    token = _group(commands, "token", "manage API tokens")
    create_token_parser = _command(token, "create", create_token,
                                   "create a token and print only its secret")
    owner = create_token_parser.add_mutually_exclusive_group(required=True)
    owner.add_argument("--user", metavar="EMAIL", help="a token acting as this user")
    owner.add_argument("--org", metavar="ORG", help="an organization token")
    create_token_parser.add_argument(
        "--scope", action="append", default=[], choices=SCOPES, metavar="SCOPE",
        help=f"repeatable; user tokens default to {' '.join(USER_TOKEN_SCOPES)},"
        f" organization tokens to {' '.join(ORG_TOKEN_SCOPES)}",
    )
    revoke_token_parser = _command(token, "revoke", revoke_token,
                                   "revoke a token; the next request with it answers 401")
    revoke_token_parser.add_argument("token", help="the token's secret")

    add_projection_commands(commands)
    return parser


def migrate(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    caught_up = services.projector.catch_up()
    print(f"Tables are ready; {caught_up} events applied to the read models.")


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


def bootstrap(services: Services, args: argparse.Namespace, cause: Cause) -> None:
    """Create what a first session needs, keeping whatever exists, and print sentry-cli's environment.

    Tokens are stored only as hashes, so each run makes a new token; earlier
    ones stay valid until revoked.
    """
    ledger = services.ledger
    _ignore_existing(lambda: ledger.create_user(args.email, True, cause))
    _ignore_existing(lambda: ledger.create_organization(args.org, None, False, cause))
    _ignore_existing(lambda: ledger.create_team(args.org, args.team, None, cause))
    _ignore_existing(lambda: ledger.create_project(args.org, args.project, None, [args.team], cause))
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
    try:
        create()
    except AlreadyExistsError:
        pass


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
