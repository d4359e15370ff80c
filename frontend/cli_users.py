"""`mcp-code-executor user add|passwd|remove|list`: manage the users file (APP_USERS_FILE).

    mcp-code-executor user add alice              # asks for the password twice
    echo "$PASSWORD" | mcp-code-executor user add alice --password-stdin
    mcp-code-executor user passwd alice
    mcp-code-executor user remove alice
    mcp-code-executor user list

A running app picks the changes up at its next request: a removed user or a changed password
ends that user's open sessions.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from settings import ConfigError, Settings, auth_pairs, load_settings

from .users import UserError, UserStore, validate_name


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `user` command (with its subcommands) to the main parser."""
    user = subparsers.add_parser(
        "user",
        help="manage login users (hashed passwords in APP_USERS_FILE)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = user.add_subparsers(dest="user_command", required=True)
    for name, text in (("add", "add a user"), ("passwd", "change a user's password")):
        action = actions.add_parser(name, help=text)
        action.add_argument("name")
        action.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of standard input (for scripts)",
        )
    remove = actions.add_parser("remove", help="remove a user (their chats stay)")
    remove.add_argument("name")
    actions.add_parser("list", help="list the users")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Again: ") != first:
        raise UserError("the passwords differ; nothing changed")
    return first


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """Run one `user` subcommand; 0 on success, 1 with a message on stderr otherwise."""
    try:
        settings = settings or load_settings()
        store = UserStore(settings.users_file)
        command = args.user_command
        if command == "list":
            names = store.names()
            for name in names:
                print(name)
            plain = sorted({name for name, _ in auth_pairs(settings)} - set(names))
            for name in plain:
                print(f"{name}  (APP_AUTH, plain text: move it with `user add {name}`)")
            if not names and not plain:
                print(f"no users in {store.path}: login is off (one local user)")
            return 0
        if command == "add":
            validate_name(args.name)  # before asking for a password
            if args.name in store.names():
                raise UserError(f"user {args.name} exists; use `user passwd {args.name}`")
            store.add(args.name, _password(args))
            print(f"added {args.name} to {store.path}")
        elif command == "passwd":
            if args.name not in store.names():
                raise UserError(f"no user {args.name!r} in {store.path}")
            store.set_password(args.name, _password(args))
            print(f"changed the password of {args.name}; their open sessions have ended")
        elif command == "remove":
            store.remove(args.name)
            print(f"removed {args.name}; their open sessions have ended (their chats stay)")
        return 0
    except (UserError, ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
