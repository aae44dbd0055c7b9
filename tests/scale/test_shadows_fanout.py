"""Shadow models as Ray tasks: K = 4 shadows with --workers 2 give the serial path's LiRA scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dpaudit.attacks.suite import run_attacks
from dpaudit.scale import FanOut
from dpaudit.train import TrainConfig, run_training
from tests.conftest import make_records

QUICK = TrainConfig(max_steps=2, rank=4, alpha=8, max_length=48, batch_size=8, checkpoint_every=0)


@pytest.fixture()
def quick_target(tmp_path, micro_base_dir):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r.to_json()) + "\n" for r in make_records(24, seed=1)), encoding="utf-8")
    out = tmp_path / "target"
    run_training(data_file=data, base=str(micro_base_dir), out_dir=out, config=QUICK, progress=False)
    return out


@pytest.mark.slow
def test_workers_2_gives_the_serial_lira_scores(quick_target, tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="the [scale] extra (ray) is not installed")
    import ray

    results = {}
    for workers in (1, 2):
        monkeypatch.setenv("DPAUDIT_CACHE", str(tmp_path / f"cache-{workers}"))  # each path trains its own shadows
        results[workers] = run_attacks(
            adapter_dir=quick_target, attacks=["lira"], shadows=4, seed=5, fanout=FanOut(workers=workers), progress=False
        )
    ray.shutdown()
    serial, fanned = results[1], results[2]
    assert serial.shadows_trained == fanned.shadows_trained == 4
    assert len(list((tmp_path / "cache-2" / "shadows").iterdir())) == 4  # written by the Ray workers
    np.testing.assert_allclose(fanned.scores["lira"], serial.scores["lira"], rtol=1e-6, atol=1e-9)
    assert fanned.placement == serial.placement == {"device": "cpu", "dtype": "float32", "quantize": None}
