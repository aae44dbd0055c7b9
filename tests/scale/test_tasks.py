"""run_tasks: serial path without Ray, Ray path in payload order, retries and original errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dpaudit.errors import ConfigError, InputError
from dpaudit.scale import FanOut, run_tasks
from dpaudit.scale.tasks import threads_per_task


def square(x: int) -> int:
    return x * x


def torch_threads(_: int) -> int:
    import torch

    return torch.get_num_threads()


def fail_on_three(x: int) -> int:
    if x == 3:
        raise InputError("record three is bad", field="x")
    return x


def flaky_once(marker: str) -> str:
    """Fails the first time it runs for a marker file, succeeds on the retry."""
    path = Path(marker)
    if not path.exists():
        path.write_text("seen")
        raise RuntimeError("first attempt fails")
    return "ok"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"workers": 0}, "workers"), ({"workers": 1.5}, "workers"), ({"workers": True}, "workers"), ({"ray_address": " "}, "ray_address")],
)
def test_fanout_rejects_bad_values(kwargs, field):
    with pytest.raises(ConfigError, match=f"`{field}`"):
        FanOut(**kwargs)


def test_one_worker_runs_in_process_without_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # importing ray would now fail
    assert run_tasks(square, [3, 1, 2], fanout=FanOut(), label="squares", progress=False) == [9, 1, 4]
    assert run_tasks(square, [], fanout=FanOut(workers=2), label="nothing") == []


def test_missing_ray_is_one_config_error_with_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'dpaudit\[scale\]'"):
        run_tasks(square, [1], fanout=FanOut(workers=2), label="squares", progress=False)


def test_threads_per_task_never_oversubscribe():
    assert threads_per_task(FanOut(workers=2), cores=2) == 1
    assert threads_per_task(FanOut(workers=3), cores=16) == 5
    assert threads_per_task(FanOut(workers=4), cores=2) == 1
    assert threads_per_task(FanOut(workers=2, ray_address="auto"), cores=64) == 1


@pytest.fixture(scope="module")
def ray_runtime():
    ray = pytest.importorskip("ray", reason="the [scale] extra (ray) is not installed")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_results_come_back_in_payload_order_with_threads_set(ray_runtime):
    fanout = FanOut(workers=2)
    assert run_tasks(square, list(range(6)), fanout=fanout, label="squares", progress=False) == [x * x for x in range(6)]
    expected = threads_per_task(fanout)
    assert run_tasks(torch_threads, [0, 1], fanout=fanout, label="threads", progress=False) == [expected, expected]
    assert ray_runtime.is_initialized()


@pytest.mark.slow
def test_ray_retries_once_then_raises_the_original_error(ray_runtime, tmp_path):
    fanout = FanOut(workers=2)
    assert run_tasks(flaky_once, [str(tmp_path / "a")], fanout=fanout, label="flaky", progress=False) == ["ok"]
    with pytest.raises(InputError, match="record three is bad") as info:
        run_tasks(fail_on_three, [1, 2, 3, 4], fanout=fanout, label="failing", progress=False)
    assert type(info.value) is InputError and info.value.field == "x"


@pytest.mark.slow
def test_ray_init_keeps_the_callers_sigterm_handler(ray_runtime):
    """ray.init installs a SIGTERM handler of its own; the CLI's (exit 143, one line) must survive it."""
    import signal

    ray_runtime.shutdown()

    def callers_handler(signum, frame):  # pragma: no cover - never called
        raise AssertionError

    previous = signal.signal(signal.SIGTERM, callers_handler)
    try:
        assert run_tasks(square, [2], fanout=FanOut(workers=2), label="squares", progress=False) == [4]
        assert signal.getsignal(signal.SIGTERM) is callers_handler
    finally:
        signal.signal(signal.SIGTERM, previous)
