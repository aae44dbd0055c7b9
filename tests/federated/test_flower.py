"""The same rounds through Flower's simulation engine (Ray): same adapter as the plain loop."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from dpaudit.federated.runner import run_fedtrain
from tests.federated.conftest import fed_config

pytest.importorskip("flwr", reason="needs the [fed] extra: pip install 'dpaudit[fed]'")
pytest.importorskip("ray", reason="needs the [fed] extra: pip install 'dpaudit[fed]'")


@pytest.mark.slow
def test_flower_simulation_gives_the_plain_loops_adapter(tmp_path, fed_data, micro_base_dir):
    # Every client joins every round (q = 1) and the noise is reproducible (test opt-in), so the only
    # difference left is the order in which replies are summed: float rounding.
    config = dict(dp="central", noise_multiplier=1.0, max_grad_norm=0.5, bandwidth=3000)
    cards = {}
    for backend in ("plain", "simulation"):
        cards[backend] = run_fedtrain(data_file=fed_data, base=str(micro_base_dir), out_dir=tmp_path / backend,
                                      config=fed_config(backend=backend, **config), progress=False)
    flower, plain = (load_file(tmp_path / b / "adapter_model.safetensors") for b in ("simulation", "plain"))
    for key in plain:
        torch.testing.assert_close(flower[key], plain[key], rtol=1e-4, atol=1e-6)
    fed = cards["simulation"]["federated"]
    assert fed["backend"] == "simulation" and fed["rounds_joined"] == {c: 3 for c in fed["clients"]}
    assert fed["bytes_sent"] == cards["plain"]["federated"]["bytes_sent"]
    assert json.loads((tmp_path / "simulation" / "dpaudit.json").read_text())["dp"]["steps"] == 3
