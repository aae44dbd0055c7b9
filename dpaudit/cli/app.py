"""Root of the CLI: wires the command groups and maps expected errors to one line.

Set ``DPAUDIT_DEBUG=1`` to get the traceback of an expected error as well.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from collections.abc import Iterator

import click
import typer
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
    fedtrain_cmd,
    gate_cmd,
    judge_cmd,
    models_cmd,
    sweep_cmd,
    train_cmd,
)
from dpaudit.cli.common import err_console
from dpaudit.errors import DpauditError
from dpaudit.interrupts import Interrupted, raising_on_signals

# typer >= 0.21 raises its own usage errors; older ones (flwr pins typer < 0.21) raise click's.
_TYPER_USAGE_ERRORS: tuple[type[Exception], ...] = tuple(
    cls for cls in (getattr(getattr(typer, "exceptions", None), "TyperException", None),) if cls is not None
)

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
app.command("fedtrain")(fedtrain_cmd.fedtrain)
app.command("attack")(attack_cmd.attack)
app.command("eval")(eval_cmd.evaluate)
app.command("judge")(judge_cmd.judge)
app.add_typer(epsilon_cmd.app, name="epsilon")
app.command("audit")(audit_cmd.audit)
app.command("compare")(compare_cmd.compare)
app.command("gate")(gate_cmd.gate)
app.command("demo")(demo_cmd.demo)
app.add_typer(sweep_cmd.app, name="sweep")


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
    """Console-script entry point; returns (and exits with) the process exit code.

    Exit codes: 0 success, 1 a result that fails (gate, privacy violation), 2 bad input or usage,
    130 / 143 interrupted by SIGINT / SIGTERM (one line, no traceback, nothing half-written).
    """
    code = 0
    interrupted = False
    try:
        with raising_on_signals(), _one_line_warnings(enabled=argv is None and not os.environ.get("DPAUDIT_DEBUG")):
            result = app(args=argv, standalone_mode=False)
        # Without standalone mode click returns (rather than raises) some exit codes.
        if isinstance(result, int) and not isinstance(result, bool):
            code = result
    except Interrupted as exc:
        err_console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        code = exc.exit_code
        interrupted = True
    except (click.exceptions.Exit, typer.Exit) as exc:
        code = exc.exit_code
    except (click.ClickException, *_TYPER_USAGE_ERRORS) as exc:
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err_console.print(Text.assemble(("error: ", "bold red"), exc.format_message()), soft_wrap=True)
        code = exc.exit_code
    except (click.exceptions.Abort, typer.Abort):
        err_console.print("aborted")
        code = 130
    except DpauditError as exc:
        if os.environ.get("DPAUDIT_DEBUG"):
            raise
        err_console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        code = exc.exit_code
    if argv is None:
        if interrupted and _foreign_threads_alive():
            _exit_now(code)
        sys.exit(code)
    return code


@contextlib.contextmanager
def _one_line_warnings(*, enabled: bool) -> Iterator[None]:
    """Warnings as ``warning: <message>`` lines, not Python's file:line form with a source line.

    Only for the console script (``argv is None``): in-process callers and tests keep Python's
    own handling (pytest records warnings through it). ``DPAUDIT_DEBUG`` keeps the long form.
    """
    if not enabled:
        yield
        return
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        err_console.print(Text.assemble(("warning: ", "bold yellow"), str(message)), soft_wrap=True, highlight=False)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def _foreign_threads_alive() -> bool:
    """Non-daemon threads a library left behind (Flower's ServerApp thread waits up to an hour for
    replies that an interrupted simulation will never send); Python would wait for them at exit."""
    return any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread())


def _exit_now(code: int) -> None:
    """Exit without waiting for threads: the interrupted command has already cleaned up its outputs.

    ``os._exit`` skips ``atexit``, so a Ray runtime still up is shut down here (else its agents outlive us).
    """
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
