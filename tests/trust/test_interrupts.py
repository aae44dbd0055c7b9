"""An interrupt is a failure (issue #11): SIGINT → 130, SIGTERM → 143, one line, nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_records

DPAUDIT = Path(sys.executable).with_name("dpaudit")


def _start(tmp_path: Path, base: Path, command: str, *extra: str) -> subprocess.Popen:
    data = tmp_path / "private.jsonl"
    data.write_text("".join(json.dumps(r.to_json()) + "\n" for r in make_records(40)), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DPAUDIT_CACHE": str(tmp_path / "cache")}
    return subprocess.Popen(
        [str(DPAUDIT), command, "--data", str(data), "--base", str(base), "--out", str(tmp_path / "adapter"),
         "--batch-size", "4", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _start_training(tmp_path: Path, base: Path, *extra: str) -> subprocess.Popen:
    return _start(tmp_path, base, "train", "--max-steps", "100000", *extra)


def _wait_for_first_step(proc: subprocess.Popen, timeout: float = 120.0, *, stream: str = "stderr",
                         marker: str = "train step 1/") -> None:
    """Output goes to a pipe, so dpaudit prints plain progress lines; the first one means training runs."""
    deadline = time.monotonic() + timeout
    pipe = getattr(proc, stream)
    while time.monotonic() < deadline:
        line = pipe.readline()
        if marker in line:
            return
        if not line and proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"training never started: {proc.stderr.read()}")


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_training_exits_with_one_line_and_writes_nothing(tmp_path, micro_base_dir, signum, code):
    proc = _start_training(tmp_path, micro_base_dir, "--checkpoint-every", "0")
    _wait_for_first_step(proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted; nothing written"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith((".adapter", "adapter"))]
    assert leftovers == []  # no adapter, no temporary sibling


@pytest.mark.slow
def test_interrupted_training_with_a_checkpoint_says_how_to_resume(tmp_path, micro_base_dir):
    proc = _start_training(tmp_path, micro_base_dir, "--checkpoint-every", "1")
    _wait_for_first_step(proc)
    deadline = time.monotonic() + 60
    while not (tmp_path / "adapter" / ".checkpoint" / "state.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "resume with --resume" in stderr.strip().splitlines()[-1]
    assert not (tmp_path / "adapter" / "dpaudit.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_flower_simulation_exits_with_one_line_and_leaves_nothing(tmp_path, micro_base_dir, signum, code):
    """Ray (under Flower) installs SIGTERM handlers and Flower leaves its server thread waiting:
    neither may turn an interrupt into a crash, a hang or a leftover directory."""
    proc = _start(tmp_path, micro_base_dir, "fedtrain", "--clients", "2", "--rounds", "1000", "--max-length", "48",
                  "--cores", "1")
    _wait_for_first_step(proc, stream="stdout", marker="round 1/1000")
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=90)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "Error" not in stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted; nothing written"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith((".adapter", "adapter"))]
    assert leftovers == []


def test_main_maps_interrupted_to_its_exit_code(monkeypatch, capsys):
    """In-process: the handler's exception becomes one line and 130, whatever command raised it."""
    from dpaudit.cli import app as app_module
    from dpaudit.interrupts import Interrupted

    def interrupted(**_: object) -> None:
        raise Interrupted(signal.SIGINT)

    monkeypatch.setattr(app_module, "app", interrupted)
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    assert app_module.main(["data", "synth"]) == 130
    assert capsys.readouterr().err.strip() == "error: interrupted; nothing written"
    # main()'s handlers live only inside it (whatever an earlier test, e.g. ray.init, installed comes back)
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_typer_exit_codes_are_not_lost(cli, tmp_path):
    """With standalone_mode=False click returns an Exit's code instead of raising it; main must pass it on."""
    from dpaudit.cli import app as app_module

    @app_module.app.command("_exit3", hidden=True)
    def _exit3() -> None:
        import typer

        raise typer.Exit(3)

    try:
        assert cli("_exit3")[0] == 3
    finally:
        app_module.app.registered_commands.pop()


def test_a_signal_during_the_swap_is_held_back_until_it_is_done(tmp_path):
    from dpaudit.interrupts import Interrupted, raising_on_signals, signals_deferred

    with raising_on_signals():
        with pytest.raises(Interrupted) as caught:
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler has run by now, and only noted the signal
                (tmp_path / "done").write_text("the block finished")
        assert caught.value.exit_code == 143
    assert (tmp_path / "done").is_file()


def test_the_console_script_prints_warnings_as_one_line(monkeypatch, capsys):
    """Python's warning form (file:line, category, the source line) is noise in a CLI: one line instead."""
    import warnings

    from dpaudit.cli import app as app_module

    def warns(**_: object) -> None:
        warnings.warn("MIA metrics need at least 10 members", UserWarning, stacklevel=1)

    monkeypatch.setattr(app_module, "app", warns)
    monkeypatch.setattr(sys, "argv", ["dpaudit", "data", "synth"])
    monkeypatch.delenv("DPAUDIT_DEBUG", raising=False)
    before = warnings.showwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with pytest.raises(SystemExit) as done:
            app_module.main()
    assert done.value.code == 0
    assert capsys.readouterr().err.strip() == "warning: MIA metrics need at least 10 members"
    assert warnings.showwarning is before
