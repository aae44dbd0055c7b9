"""Root of the CLI: wires the command groups and maps expected errors to one line.

Set ``DPAUDIT_DEBUG=1`` to get the traceback of an expected error as well.
"""

from __future__ import annotations

import os
import sys

import click
import typer
from typer import exceptions as typer_exceptions
from rich.text import Text

from dpaudit import __version__
from dpaudit.cli import (
    attack_cmd,
    audit_cmd,
    compare_cmd,
    data_cmd,
    demo_cmd,
    epsilon_cmd,
    eval_cmd,
    gate_cmd,
    judge_cmd,
    models_cmd,
    train_cmd,
)
from dpaudit.cli.common import err_console
from dpaudit.errors import DpauditError

app = typer.Typer(
    name="dpaudit",
    help="Train, attack and audit LoRA adapters of language models for privacy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

app.add_typer(data_cmd.app, name="data")
app.add_typer(models_cmd.app, name="models")
app.command("train")(train_cmd.train)
app.command("attack")(attack_cmd.attack)
app.command("eval")(eval_cmd.evaluate)
app.command("judge")(judge_cmd.judge)
app.add_typer(epsilon_cmd.app, name="epsilon")
app.command("audit")(audit_cmd.audit)
app.command("compare")(compare_cmd.compare)
app.command("gate")(gate_cmd.gate)
app.command("demo")(demo_cmd.demo)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dpaudit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Train, attack and audit LoRA adapters of language models for privacy."""


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the process exit code."""
    code = 0
    try:
        app(args=argv, standalone_mode=False)
    except (click.exceptions.Exit, typer_exceptions.Exit) as exc:
        code = exc.exit_code
    except (click.ClickException, typer_exceptions.TyperException) as exc:
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err_console.print(Text.assemble(("error: ", "bold red"), exc.format_message()), soft_wrap=True)
        code = exc.exit_code
    except (click.exceptions.Abort, typer_exceptions.Abort):
        err_console.print("aborted")
        code = 130
    except DpauditError as exc:
        if os.environ.get("DPAUDIT_DEBUG"):
            raise
        err_console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        code = exc.exit_code
    if argv is None:
        sys.exit(code)
    return code
