"""The `meshlens` command: `serve`, `migrate`, `demo` and `rules check`.

Every setting of `meshlens.settings.Settings` is also a `serve` flag (`--otlp-grpc-port` for
`otlp_grpc_port`); a flag wins over its `MESHLENS_*` environment variable. `rules check` reads
no settings: it validates a file on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from meshlens.demo.command import add_demo_command
from meshlens.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `meshlens` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    standalone: Any = getattr(args, "run_standalone", None)
    if standalone is not None:  # needs no settings (a bad MESHLENS_* variable does not matter)
        code: int = standalone(args)
        return code
    try:
        settings = Settings(**_given_settings(args))
    except ValidationError as exc:
        print(f"meshlens: invalid settings:\n{_explain(exc)}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    command: Any = args.run
    result: int = command(settings)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meshlens", description=_doc_line())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the collector, the API and the dashboards",
        description="Run OTLP/gRPC, OTLP/HTTP and the web port in one process. Every setting "
        "is a flag here and a MESHLENS_* environment variable; a flag wins.",
    )
    _add_setting_flags(serve)
    serve.set_defaults(run=_serve)
    migrate = commands.add_parser("migrate", help="upgrade the database schema and exit")
    for name in ("database_url", "data_dir", "log_level"):
        _add_setting_flag(migrate, name)
    migrate.set_defaults(run=_migrate)
    add_demo_command(commands)
    _add_rules_command(commands)
    return parser


def _add_rules_command(commands: Any) -> None:
    rules = commands.add_parser("rules", help="work with alert rules files")
    rules.set_defaults(run_standalone=lambda _args: _usage(rules))
    actions = rules.add_subparsers(dest="rules_command", metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="validate a rules file and report every problem with its line",
        description="Validate an alert rules file (the MESHLENS_RULES_FILE format): print "
        "FILE:LINE:COLUMN: message for every problem and exit 1, or a summary and exit 0. "
        "Exit 2 when a file cannot be read.",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="YAML rules files")
    check.set_defaults(run_standalone=_rules_check)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _rules_check(args: argparse.Namespace) -> int:
    files: list[str] = args.files
    return max(_check_rules_file(path) for path in files)


def _check_rules_file(path: str) -> int:
    from alerting.rules import RulesFileError, load_rules_file

    try:
        loaded = load_rules_file(path)
    except RulesFileError as exc:
        for problem in exc.problems:
            print(problem.format(path))
        count = len(exc.problems)
        print(f"meshlens: {path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"meshlens: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    rules, receivers = len(loaded.rules), len(loaded.receivers)
    print(
        f"{path}: {rules} rule{'s' if rules != 1 else ''}, "
        f"{receivers} receiver{'s' if receivers != 1 else ''}: OK"
    )
    return 0


def _doc_line() -> str:
    return "meshlens: observability for service meshes (OTLP in; graph, signals, mTLS, alerts)."


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    for name in Settings.model_fields:
        _add_setting_flag(parser, name)


def _add_setting_flag(parser: argparse.ArgumentParser, name: str) -> None:
    field = Settings.model_fields[name]
    default = field.default
    shown = "unset" if default is None else default
    if field.annotation is bool:  # a switch: `--insecure`, or MESHLENS_INSECURE=true
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            action="store_const",
            const=True,
            default=None,
            help=f"{field.description} [env MESHLENS_{name.upper()}=true]",
        )
        return
    parser.add_argument(
        f"--{name.replace('_', '-')}",
        dest=name,
        default=None,
        metavar=name.upper(),
        help=f"{field.description} [env MESHLENS_{name.upper()}; default: {shown}]",
    )


def _given_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(args).items()
        if name in Settings.model_fields and value is not None
    }


def _explain(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        lines.append(f"  {name} (MESHLENS_{name.upper()}): {error['msg']}")
    return "\n".join(lines)


def _serve(settings: Settings) -> int:
    import psycopg
    from sqlalchemy.exc import OperationalError

    from meshlens.database import DatabaseUnreachable, open_database, unreachable
    from meshlens.embedded_pg import EmbeddedPostgresError
    from meshlens.serve import refuse_open_doors, serve, server_tls

    refuse_open_doors(settings)  # before the embedded PostgreSQL starts
    server_tls(settings)  # unusable certificate files too
    try:
        with open_database(settings) as database:
            try:
                _run(serve(settings, database))
            except (OperationalError, psycopg.OperationalError) as exc:  # at start: migrations
                raise unreachable(database, exc) from None
    except (EmbeddedPostgresError, DatabaseUnreachable) as exc:
        print(f"meshlens: {exc}", file=sys.stderr)
        return 1
    return 0


def _migrate(settings: Settings) -> int:
    from sqlalchemy.exc import OperationalError

    from meshlens.database import open_database, unreachable
    from meshlens.migrations import upgrade_to_head

    with open_database(settings) as database:
        engine = database.sync_engine()
        try:
            upgrade_to_head(engine)
        except OperationalError as exc:
            print(f"meshlens: {unreachable(database, exc)}", file=sys.stderr)
            return 1
        finally:
            engine.dispose()
    print("meshlens: the database schema is at head")
    return 0


def _run(coroutine: Any) -> None:
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(coroutine)
    except ImportError:
        asyncio.run(coroutine)


if __name__ == "__main__":
    raise SystemExit(main())
