"""RMIA against a direct, pairwise implementation of the paper's formula on synthetic likelihoods."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dpaudit.attacks import ATTACKS, AttackInputs, PopulationScores, ShadowScores
from dpaudit.attacks.rmia import A_GRID, fit_offline_a, offline_prior, pairwise_score, rmia_scores
from dpaudit.errors import ConfigError, InputError
from dpaudit.models.scoring import TokenScores


def direct_rmia(target_x, target_z, ref_x, ref_z, ref_in, *, a, gamma):
    """Zarifzadeh et al., Alg. 1, written out loop by loop: no sorting, no vectorisation."""
    n, m = len(target_x), len(target_z)
    out = np.empty(n)
    for j in range(n):
        if a is None:  # online: every reference model
            pr_x = np.mean(ref_x[:, j])
        else:
            outs = [ref_x[r, j] for r in range(ref_x.shape[0]) if not ref_in[r, j]]
            pr_x = ((1 + a) * np.mean(outs) + (1 - a)) / 2
        ratio_x = target_x[j] / pr_x
        count = 0
        for i in range(m):
            pr_z = np.mean(ref_z[:, i]) if a is None else ((1 + a) * np.mean(ref_z[:, i]) + (1 - a)) / 2
            count += (ratio_x / (target_z[i] / pr_z)) >= gamma
        out[j] = count / m
    return out


def synthetic(seed=0, n=40, m=30, refs=5):
    rng = np.random.default_rng(seed)
    ref_x = rng.uniform(0.05, 0.6, (refs, n))
    ref_z = rng.uniform(0.05, 0.6, (refs, m))
    ref_in = np.zeros((refs, n), dtype=bool)
    ref_in[1:] = rng.uniform(size=(refs - 1, n)) < 0.5  # row 0 is the base: OUT for every record
    ref_in[1:, 0] = True  # candidate 0 has no OUT shadow, only the base
    return rng.uniform(0.05, 0.9, n), rng.uniform(0.05, 0.9, m), ref_x, ref_z, ref_in


@pytest.mark.parametrize("a", [None, 0.0, 0.3, 1.0])
@pytest.mark.parametrize("gamma", [1.0, 2.0])
def test_rmia_matches_the_direct_pairwise_formula(a, gamma):
    target_x, target_z, ref_x, ref_z, ref_in = synthetic()
    fast = rmia_scores(
        target_x=target_x, target_z=target_z, ref_x=ref_x, ref_z=ref_z, ref_x_in=ref_in, offline_a=a, gamma=gamma
    )
    np.testing.assert_allclose(fast, direct_rmia(target_x, target_z, ref_x, ref_z, ref_in, a=a, gamma=gamma))
    assert 0 < fast.mean() < 1  # neither degenerate end


def test_pairwise_score_counts_ties_and_keeps_nan():
    scores = pairwise_score(np.array([1.0, 2.0, np.nan, 0.1]), np.array([1.0, 2.0, 4.0, np.nan]), gamma=1.0)
    np.testing.assert_array_equal(scores, [1 / 3, 2 / 3, np.nan, 0.0])  # ratio_x / ratio_z >= 1 includes equality
    with pytest.raises(ConfigError, match="`gamma` must be > 0"):
        pairwise_score(np.ones(2), np.ones(2), gamma=0.0)
    with pytest.raises(InputError, match="at least one population record"):
        pairwise_score(np.ones(2), np.array([np.nan]))


def test_offline_prior_is_the_papers_linear_correction():
    np.testing.assert_allclose(offline_prior(np.array([0.2]), 1.0), [0.2])  # a = 1: no correction
    np.testing.assert_allclose(offline_prior(np.array([0.2]), 0.0), [0.6])  # a = 0: halfway to 1
    np.testing.assert_allclose(offline_prior(np.array([0.2]), 0.5), [(1.5 * 0.2 + 0.5) / 2])


def test_fit_offline_a_picks_the_best_auc_on_simulated_targets():
    """A world where IN models raise a record's likelihood: the fitted `a` beats every other on the grid."""
    rng = np.random.default_rng(3)
    n, m, k = 200, 100, 4
    difficulty_x, difficulty_z = rng.uniform(0.05, 0.5, n), rng.uniform(0.05, 0.5, m)
    ref_in = np.vstack([np.zeros((1, n), dtype=bool), rng.uniform(size=(k, n)) < 0.5])
    ref_x = np.clip(difficulty_x + 0.15 * ref_in + rng.normal(0, 0.02, (k + 1, n)), 0.01, 1)
    ref_z = np.clip(difficulty_z + rng.normal(0, 0.02, (k + 1, m)), 0.01, 1)
    a = fit_offline_a(ref_x=ref_x, ref_z=ref_z, ref_x_in=ref_in, n_shadows=k)
    assert a in A_GRID

    def mean_auc(value):
        aucs = []
        for t in range(1, k + 1):
            others = np.arange(k + 1) != t
            scores = direct_rmia(ref_x[t], ref_z[t], ref_x[others], ref_z[others], ref_in[others], a=value, gamma=1.0)
            aucs.append(roc_auc_score(ref_in[t], scores))
        return np.mean(aucs)

    best = mean_auc(a)
    assert all(best >= mean_auc(float(other)) - 1e-12 for other in A_GRID[::5])
    assert fit_offline_a(ref_x=ref_x[:1], ref_z=ref_z[:1], ref_x_in=ref_in[:1], n_shadows=0) == 1.0


def _token_scores(likelihoods, prefix):
    """TokenScores whose geometric-mean token probability is ``likelihoods[j]`` (3 equal tokens each)."""
    return [TokenScores(id=f"{prefix}{j}", logprobs=np.full(3, np.log(p))) for j, p in enumerate(likelihoods)]


def test_registered_attacks_compute_rmia_from_the_suite_inputs():
    target_x, target_z, ref_x, ref_z, ref_in = synthetic(seed=1, refs=3)
    shadows = ShadowScores(in_mask=ref_in[1:], scores=[_token_scores(row, "x") for row in ref_x[1:]])
    inputs = AttackInputs(
        target=_token_scores(target_x, "x"),
        texts=["t"] * len(target_x),
        reference=_token_scores(ref_x[0], "x"),
        shadows=shadows,
        population=PopulationScores(
            target=_token_scores(target_z, "z"),
            reference=_token_scores(ref_z[0], "z"),
            shadows=[_token_scores(row, "z") for row in ref_z[1:]],
        ),
    )
    online = ATTACKS.get("rmia_online")().score(inputs)
    np.testing.assert_allclose(online, direct_rmia(target_x, target_z, ref_x, ref_z, ref_in, a=None, gamma=1.0))
    a = fit_offline_a(ref_x=ref_x, ref_z=ref_z, ref_x_in=ref_in, n_shadows=2)
    offline = ATTACKS.get("rmia")().score(inputs)
    np.testing.assert_allclose(offline, direct_rmia(target_x, target_z, ref_x, ref_z, ref_in, a=a, gamma=1.0))


def test_rmia_without_shadows_ranks_like_ref():
    """K = 0: the base is the only reference and a = 1, so RMIA orders records as Pr(x|θ)/Pr(x|base) does."""
    target_x, target_z, ref_x, ref_z, _ = synthetic(seed=2, refs=1)
    inputs = AttackInputs(
        target=_token_scores(target_x, "x"),
        texts=["t"] * len(target_x),
        reference=_token_scores(ref_x[0], "x"),
        population=PopulationScores(target=_token_scores(target_z, "z"), reference=_token_scores(ref_z[0], "z")),
    )
    scores = ATTACKS.get("rmia")().score(inputs)
    ref = ATTACKS.get("ref")().score(inputs)
    order = np.argsort(ref)
    assert np.all(np.diff(scores[order]) >= 0)  # monotone in ref's score
    with pytest.raises(InputError, match="needs population"):
        ATTACKS.get("rmia")().score(AttackInputs(target=inputs.target, texts=inputs.texts, reference=inputs.reference))


# ----------------------------------------------------------------------------- through run_attacks


def test_suite_scores_the_population_once_per_model(plain_peft_adapter, tmp_path):
    from dpaudit.attacks.suite import run_attacks
    from tests.attacks.conftest import write_jsonl
    from tests.conftest import make_records

    records = make_records(16, seed=5)
    members, nonmembers = write_jsonl(tmp_path / "m.jsonl", records[:4]), write_jsonl(tmp_path / "n.jsonl", records[4:8])
    population = write_jsonl(tmp_path / "z.jsonl", records[2:])  # two candidates among them: dropped
    result = run_attacks(
        adapter_dir=plain_peft_adapter, members=members, nonmembers=nonmembers, attacks=["rmia"], shadows=0,
        population=population, population_size=6, progress=False, n_bootstrap=20,
    )  # fmt: skip
    assert result.n_population == 6 and result.to_json()["n_population"] == 6
    assert {"population_scoring", "attack_rmia"} <= set(result.timings_s)
    assert np.all((result.scores["rmia"] >= 0) & (result.scores["rmia"] <= 1))
    # The default attack list skips RMIA when no population can be found, instead of failing.
    default = run_attacks(
        adapter_dir=plain_peft_adapter, members=members, nonmembers=nonmembers, shadows=0, progress=False, n_bootstrap=20
    )
    assert "rmia" not in default.attacks and "loss" in default.attacks
    with pytest.raises(InputError, match="--population FILE"):
        run_attacks(adapter_dir=plain_peft_adapter, members=members, nonmembers=nonmembers, attacks=["rmia"], shadows=0)


@pytest.mark.slow
def test_rmia_detects_the_memorising_lora(memorising_adapter, tmp_path):
    from dpaudit.attacks.suite import run_attacks
    from tests.attacks.conftest import write_jsonl
    from tests.conftest import make_records

    population = write_jsonl(tmp_path / "z.jsonl", make_records(64, seed=9, prefix="z"))
    result = run_attacks(
        adapter_dir=memorising_adapter, attacks=["rmia", "ref"], shadows=0, population=population, progress=False,
        n_bootstrap=20,
    )  # fmt: skip
    assert result.attacks["rmia"]["auc"] > 0.9
    assert abs(result.attacks["rmia"]["auc"] - result.attacks["ref"]["auc"]) < 0.05  # K = 0 ranks like ref


def test_attack_cli_prints_rmia_and_pii(cli, plain_peft_adapter, tmp_path):
    """`dpaudit attack --attacks rmia,pii`: both tables, and both sections in the JSON."""
    import json

    from tests.attacks.conftest import write_jsonl
    from tests.conftest import make_records

    records = make_records(24, seed=6)
    members, nonmembers = write_jsonl(tmp_path / "m.jsonl", records[:8]), write_jsonl(tmp_path / "n.jsonl", records[8:16])
    population = write_jsonl(tmp_path / "z.jsonl", records[16:])
    code, out, err = cli(
        "attack", "--adapter", plain_peft_adapter, "--members", members, "--nonmembers", nonmembers,
        "--attacks", "rmia,pii", "--shadows", "0", "--population", population, "--pii-samples", "1", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert set(result["attacks"]) == {"rmia"} and result["n_population"] == 8
    assert result["pii_extraction"]["n_targets"] == {"members": 8, "nonmembers": 8}
    assert "PII extraction" in err and "rmia" in err  # the tables go to stderr with --json
