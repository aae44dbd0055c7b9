"""Grid files: parsing, the cross product, exclusions, --quick, and validation before any training."""

from __future__ import annotations

import math

import pytest

from dpaudit.errors import ConfigError, InputError
from dpaudit.sweep.grid import label_of, parse_grid, resolve
from dpaudit.sweep.presets import load_preset, preset_names

GRID = """
name = "g"
[base]
synth_n = 100
epochs = 2
target_epsilon = 8.0
[[axis]]
name = "row"
values = [
  { label = "LoRA", method = "lora" },
  { label = "DP-LoRA", method = "lora", dp = true },
  { label = "DoRA", method = "dora" },
]
[[axis]]
name = "rank"
values = [1, 4, 16]
[[exclude]]
row = "DoRA"
rank = [4, 16]
[quick]
base = { synth_n = 40 }
axis = { rank = [1, 16] }
"""


def test_cells_are_the_cross_product_minus_exclusions():
    grid = parse_grid(GRID, source="g.toml")
    cells = grid.cells()
    assert len(cells) == 3 * 3 - 2
    assert [c.labels for c in cells[:3]] == [{"row": "LoRA", "rank": r} for r in ("1", "4", "16")]
    dp_cell = next(c for c in cells if c.labels == {"row": "DP-LoRA", "rank": "4"})
    assert dp_cell.options == {"synth_n": 100, "epochs": 2, "target_epsilon": 8.0, "method": "lora", "dp": True, "rank": 4}


def test_quick_overrides_base_and_keeps_a_subset_of_each_axis():
    grid = parse_grid(GRID, source="g.toml", quick=True)
    assert grid.quick and grid.base["synth_n"] == 40
    assert [p.label for p in grid.axes[1].points] == ["1", "16"]
    assert len(grid.cells()) == 3 * 2 - 1


def test_dp_options_count_only_with_dp_and_infinite_epsilon_means_no_dp():
    plain = resolve({"method": "lora", "target_epsilon": 8.0}, seed=3)
    assert plain.train.dp is None and plain.train.seed == 3 and plain.audit.seed == 3
    private = resolve({"dp": True, "target_epsilon": 2.0, "clipping": "noise-allocation"}, seed=0)
    assert private.train.dp.target_epsilon == 2.0 and private.train.dp.clipping == "noise-allocation"
    assert resolve({"dp": True, "target_epsilon": math.inf}, seed=0).train.dp is None


def test_synthetic_data_settings_are_resolved_and_mix_names_work():
    cell = resolve({"synth_n": 50, "categories": ["open-qa", "Chat"], "mix": "uniform"}, seed=0)
    assert cell.data.synth == {"n": 50, "seed": 0, "categories": ["Open QA", "Chat"], "mix": [1.0, 1.0], "canaries": 0}
    assert resolve({"mix": "no-robots"}, seed=0).data.synth["mix"] is None


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ('[[axis]]\nname = "rank"\nvalues = [{ rnak = 4 }]', "axis[rank].values[0].rnak", "unknown option 'rnak'"),
        ('[[axis]]\nname = "rank"\nvalues = [0, 4]', "axis[rank].values[0].rank", "`rank` must be >= 1, got 0"),
        ('[base]\nlr = "fast"\n[[axis]]\nname = "rank"\nvalues = [4]', "base.lr", "must be float or int"),
        ('[base]\ndp = true\nclipping = "wobbly"\n[[axis]]\nname = "target_epsilon"\nvalues = [1.0]',
         "base.clipping", "`clipping` must be one of"),
        ('[base]\nseed = 3\n[[axis]]\nname = "rank"\nvalues = [4]', "base.seed", "set by the sweep itself"),
        ('[base]\ndata = "x.jsonl"\nsynth_n = 10\n[[axis]]\nname = "rank"\nvalues = [4]', "base.data", "`data` is a file"),
        ('[[axis]]\nname = "a"\noption = "rank"\nvalues = [1]\n[[axis]]\nname = "b"\noption = "rank"\nvalues = [2]',
         "axis[b].rank", "set by both axis"),
        ('[[axis]]\nname = "rank"\nvalues = [1]\n[[exclude]]\nrnak = 1', "exclude[0].rnak", "no axis named"),
        ('[[axis]]\nname = "rank"\nvalues = [1]\n[[exclude]]\nrank = 1', "exclude", "every cell is excluded"),
        ('[bsae]\nrank = 1\n[[axis]]\nname = "rank"\nvalues = [1]', "bsae", "unknown section"),
        ('[quick]\naxis = { rank = [3] }\n[[axis]]\nname = "rank"\nvalues = [1]', "quick.axis.rank", "not a value"),
        ('[base]\nfed_dp = "central"\n[[axis]]\nname = "fed_rounds"\nvalues = [2]', "base.fed_dp",
         "`fed_dp` 'central' needs exactly one of `fed_noise_multiplier` and `fed_target_epsilon`"),
        ('[base]\nfed_rounds = 2\ndp = true\ntarget_epsilon = 8.0\n[[axis]]\nname = "rank"\nvalues = [4]', "base.dp",
         "a federated cell takes `fed_dp`"),
        ('[base]\nfed_backend = "simulation"\n[[axis]]\nname = "rank"\nvalues = [4]', "base.fed_backend", "unknown option"),
        ('[base]\nfed_rounds = 2\nmethod = "full"\n[[axis]]\nname = "rank"\nvalues = [4]', "base.method",
         "for federated training"),
    ],
)
def test_bad_grids_stop_before_training_naming_file_and_key(text, field, message):
    with pytest.raises(InputError) as caught:
        parse_grid(text, source="my.toml", quick=True)
    assert caught.value.path == "my.toml"
    assert caught.value.field == field
    assert message in str(caught.value)


def test_a_toml_syntax_error_names_the_line():
    with pytest.raises(InputError, match="not valid TOML") as caught:
        parse_grid('[base]\nrank = \n', source="bad.toml")
    assert caught.value.line == 2


def test_labels_of_scalar_values():
    assert [label_of(v) for v in (0.5, 8.0, math.inf, 16, True, ["a", "b"])] == ["0.5", "8", "inf", "16", "true", "a,b"]


@pytest.mark.parametrize("name", ["table1", "epsilon", "sampling", "diversity", "rank", "clipping", "federated"])
def test_every_preset_validates_in_both_sizes(name):
    assert name in preset_names()
    full, quick = load_preset(name), load_preset(name, quick=True)
    assert 1 <= len(quick.cells()) <= len(full.cells())
    assert quick.base.get("synth_n", 400) <= full.base.get("synth_n", 400)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match="presets: table1, epsilon"):
        load_preset("tabel1")


def test_table1_carries_the_papers_numbers_as_theirs():
    grid = load_preset("table1")
    assert grid.paper["rows"]["DP-LoRA"] == ["16.2", "0.65", "78.1", "0.5"]
    assert "theirs" in grid.paper["note"] and "No Robots" in grid.paper["note"]


def test_fed_options_make_a_federated_cell_whose_local_training_is_the_train_options():
    cell = resolve({"fed_clients": 4, "fed_rounds": 3, "fed_dp": "record", "fed_noise_multiplier": 1.0,
                    "fed_bandwidth": 2000, "epochs": 2.0, "rank": 4}, seed=5)
    assert cell.fed is not None and cell.train.dp is None
    assert (cell.fed.clients, cell.fed.rounds, cell.fed.dp, cell.fed.bandwidth) == (4, 3, "record", 2000)
    assert cell.fed.backend == "plain" and cell.fed.train == cell.train  # the clients' local training
    assert (cell.fed.train.epochs, cell.fed.train.rank, cell.fed.train.seed) == (2.0, 4, 5)
    assert resolve({"rank": 4}, seed=0).fed is None


def test_a_plain_cells_identity_has_no_federated_part_and_fed_options_change_it():
    from dpaudit.sweep.grid import identity_json, resolved_json

    plain = identity_json(resolved_json(resolve({"rank": 4}, seed=0)))
    assert "fed" not in plain  # hashes of sweeps run before federated cells existed stay valid
    fed = identity_json(resolved_json(resolve({"rank": 4, "fed_rounds": 3}, seed=0)))
    assert fed["fed"] == {"rounds": 3, "backend": "plain"} and fed["train"] == plain["train"]
