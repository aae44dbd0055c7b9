"""Attack speed: the scoring pass against a plain forward pass, and LiRA against training its shadows.

    python benchmarks/bench_attack.py                       # tiny base, 256 records, K = 8
    python benchmarks/bench_attack.py --shadows 4 --n 128   # quicker
    python benchmarks/bench_attack.py --skip-lira           # the scoring ratio only
    python benchmarks/bench_attack.py --skip-lira --fanout-workers 2 --shadows 4   # + shadows on Ray vs serial
    python benchmarks/bench_attack.py --base smollm2-135m --device cuda --dtype bfloat16   # on a GPU

Targets (issue #4): scoring tokens/s ÷ plain forward tokens/s ≥ 0.9; LiRA wall time ÷ (K × one
adapter's training time) ≤ 1.2. Issue #15: RMIA's arithmetic ≤ 10% of the attack wall time when the
scores exist (its population's scoring is reported beside it); PII-extraction generation tokens/s ÷
a plain ``model.generate`` on the same batches ≥ 0.9.

Protocol.
- Scoring: the same records (synthetic private data, chat template, ``max_length`` of the
  recipe) go through (a) :func:`dpaudit.models.scoring.score_tokens` with the vocabulary moments
  (what the attack suite runs) and without, and (b) a plain ``model(input_ids, attention_mask)``
  forward in input order with the same batch size, padded to each batch's longest record, logits
  kept (what a user would write with transformers). Both count the same real tokens; both run
  under ``torch.inference_mode``. The measurements alternate ``--repeats`` times; ratios are of
  the medians.
- LiRA: train one target adapter with the default recipe on half of the records (timed: T);
  then ``run_attacks(attacks=["lira"], shadows=K)`` from an empty shadow cache (timed: W, which
  includes loading the base, training the K shadows, and scoring the target and the K shadows).
  The ratio is W / (K · T).
- RMIA: with those K shadows cached, ``run_attacks(attacks=["lira", "rmia"])`` again: RMIA's share
  is its own ``attack_rmia`` time (arithmetic on the scores) ÷ the run's wall time; the scoring of
  its population records (``population_scoring``: m records under the target, the base and the K
  shadows) is printed as a share too, since it is the rest of what RMIA adds.
- Shadows on Ray (``--fanout-workers N``, issue #12): the K shadows of a target are trained from an
  empty cache by ``run_attacks(attacks=["lira"])`` in this process (``--threads`` torch threads),
  then again with ``FanOut(workers=N)`` (Ray tasks, ``threads // N`` threads each; the local Ray
  runtime is started and warmed up before the clock starts, as a running cluster would be). The
  ratio is of the two ``shadow_training`` times; the LiRA scores of both runs are compared.
- Generation: the PII-extraction prompts of the records (text before each target span) are
  continued greedily by :func:`dpaudit.evaluators.generation.generate_continuations` and by a
  plain ``model.generate`` over the same left-padded batches with the same ``max_new_tokens``
  (both produce the same tokens); the ratio is of the median wall times, i.e. of tokens/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def _records(n: int, seed: int):
    from dpaudit.data.synth import SynthConfig, generate

    return generate(SynthConfig(n=n, seed=seed)).private


def plain_forward(model, tokenizer, encoded, *, batch_size: int) -> int:
    """What a transformers user writes: batches in input order, padded, full logits. Returns real tokens."""
    import torch

    from dpaudit.data.tokenize import pad_batch

    tokens = 0
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            batch = pad_batch(encoded[start : start + batch_size], pad_id=tokenizer.pad_token_id)
            model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
            tokens += int(batch["attention_mask"].sum())
    return tokens


def bench_scoring(model, tokenizer, encoded, *, batch_size: int, repeats: int) -> dict[str, float]:
    from dpaudit.models.scoring import score_tokens

    tokens = sum(len(e.input_ids) for e in encoded)
    runs = {
        "plain forward": lambda: plain_forward(model, tokenizer, encoded, batch_size=batch_size),
        "score_tokens": lambda: score_tokens(model, tokenizer, encoded, batch_size=batch_size),
        "score_tokens + moments": lambda: score_tokens(model, tokenizer, encoded, batch_size=batch_size, with_entropy=True),
    }
    for run in runs.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: tokens / statistics.median(t) for name, t in times.items()}


def bench_lira(base, records, *, shadows: int, seed: int) -> dict[str, float]:
    from dpaudit.attacks.suite import run_attacks, shadow_recipe_of
    from dpaudit.attacks.shadows import plan_shadows
    from dpaudit.data.splits import member_split
    from dpaudit.models.adapters import read_card
    from dpaudit.train import TrainConfig, train_adapter

    config = TrainConfig(seed=seed, checkpoint_every=0)
    members, nonmembers = member_split(records, fraction=config.member_fraction, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.jsonl"
        data.write_text("".join(json.dumps(r.to_json()) + "\n" for r in records), encoding="utf-8")
        target = Path(tmp) / "target"
        start = time.perf_counter()
        train_adapter(
            base_model=base.model, tokenizer=base.tokenizer, members=members, nonmembers=nonmembers, config=config,
            out_dir=target, progress=False, base_spec=base.spec, base_resolved=base.resolved, data_file=data,
        )
        one = time.perf_counter() - start
        # An empty shadow cache for exactly these shadows (other cache entries are left alone).
        plan = plan_shadows(
            members + nonmembers, k=shadows, seed=seed, base_id=base.resolved,
            recipe=shadow_recipe_of(target, read_card(target)), dp=None,
        )
        for directory in plan.dirs:
            shutil.rmtree(directory, ignore_errors=True)
        start = time.perf_counter()
        result = run_attacks(adapter_dir=target, base=base.spec, attacks=["lira"], shadows=shadows, seed=seed, progress=False)
        wall = time.perf_counter() - start
        population = Path(tmp) / "population.jsonl"
        population.write_text("".join(json.dumps(r.to_json()) + "\n" for r in _records(len(records), seed + 1)),
                              encoding="utf-8")
        start = time.perf_counter()
        both = run_attacks(adapter_dir=target, base=base.spec, attacks=["lira", "rmia"], shadows=shadows, seed=seed,
                           population=population, progress=False)
        rmia_wall = time.perf_counter() - start
        for directory in plan.dirs:
            shutil.rmtree(directory, ignore_errors=True)
    assert result.shadows_trained == shadows, "the shadow cache was not empty"
    return {"one_training_s": one, "lira_wall_s": wall, "ratio": wall / (shadows * one), "timings": result.timings_s,
            "auc": result.attacks["lira"]["auc"], "rmia_wall_s": rmia_wall, "rmia_timings": both.timings_s,
            "rmia_auc": both.attacks["rmia"]["auc"]}


def bench_shadow_fanout(base, records, *, shadows: int, workers: int, seed: int) -> dict[str, float]:
    """Seconds to train K shadows serially and as Ray tasks on ``workers`` workers (same shadows)."""
    import numpy as np

    from dpaudit.attacks.shadows import base_identity, plan_shadows
    from dpaudit.attacks.suite import run_attacks, shadow_recipe_of
    from dpaudit.data.splits import member_split
    from dpaudit.models.adapters import read_card
    from dpaudit.scale import FanOut, run_tasks
    from dpaudit.train import TrainConfig, train_adapter

    config = TrainConfig(seed=seed, checkpoint_every=0)
    members, nonmembers = member_split(records, fraction=config.member_fraction, seed=seed)
    fanned = FanOut(workers=workers)
    run_tasks(abs, [0] * workers, fanout=fanned, label="warm-up", progress=False)  # start Ray and its workers
    out: dict[str, float] = {}
    scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.jsonl"
        data.write_text("".join(json.dumps(r.to_json()) + "\n" for r in records), encoding="utf-8")
        target = Path(tmp) / "target"
        train_adapter(base_model=base.model, tokenizer=base.tokenizer, members=members, nonmembers=nonmembers, config=config,
                      out_dir=target, progress=False, base_spec=base.spec, base_resolved=base.resolved, data_file=data)
        plan = plan_shadows(members + nonmembers, k=shadows, seed=seed, base_id=base_identity(base),
                            recipe=shadow_recipe_of(target, read_card(target)), dp=None)
        for name, fanout in (("serial", FanOut()), (f"workers_{workers}", fanned)):
            for directory in plan.dirs:
                shutil.rmtree(directory, ignore_errors=True)
            result = run_attacks(adapter_dir=target, base=base.spec, attacks=["lira"], shadows=shadows, seed=seed,
                                 fanout=fanout, progress=False)
            assert result.shadows_trained == shadows, "the shadow cache was not empty"
            out[f"{name}_s"] = result.timings_s["shadow_training"]
            scores[name] = result.scores["lira"]
        for directory in plan.dirs:
            shutil.rmtree(directory, ignore_errors=True)
    out["ratio"] = out[f"workers_{workers}_s"] / out["serial_s"]
    out["max_abs_score_difference"] = float(np.max(np.abs(scores["serial"] - scores[f"workers_{workers}"])))
    return out


def bench_generation(model, tokenizer, records, *, batch_size: int, repeats: int) -> dict[str, float]:
    """Median seconds of generate_continuations and of a plain model.generate on the same prompts."""
    import torch

    from dpaudit.data.tokenize import encode_prefix
    from dpaudit.evaluators.extraction import EXTRA_TOKENS, extraction_targets
    from dpaudit.evaluators.generation import _eos_ids, generate_continuations, left_pad

    targets = extraction_targets(records, member=True)
    prompts = [encode_prefix(t.record, tokenizer, message=t.span.message, upto=t.span.start, max_length=512) for t in targets]
    new = max(len(tokenizer(t.span.value, add_special_tokens=False)["input_ids"]) for t in targets) + EXTRA_TOKENS
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def plain() -> None:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                ids, mask = left_pad([prompts[i] for i in order[start : start + batch_size]], pad_id=pad)
                model.generate(input_ids=ids, attention_mask=mask, do_sample=False, num_beams=1, max_new_tokens=new,
                               pad_token_id=pad, eos_token_id=_eos_ids(model, tokenizer), temperature=None, top_p=None, top_k=None)

    def ours() -> None:
        generate_continuations(model=model, tokenizer=tokenizer, prompts=prompts, max_new_tokens=new, batch_size=batch_size)

    model.eval()
    times: dict[str, list[float]] = {"plain": [], "ours": []}
    for name, run in (("plain", plain), ("ours", ours)):  # warm-up
        run()
    for _ in range(repeats):
        for name, run in (("plain", plain), ("ours", ours)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {"prompts": len(prompts), "plain_s": statistics.median(times["plain"]), "ours_s": statistics.median(times["ours"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="tiny")
    parser.add_argument("--n", type=int, default=256, help="records (half become the target's members)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shadows", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-lira", action="store_true")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--fanout-workers", type=int, default=0, help="also time the K shadows on N Ray workers vs serial")
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    args = parser.parse_args()

    import torch

    from dpaudit.data.tokenize import encode_record
    from dpaudit.models.base import load_base
    from dpaudit.scale.device import Placement
    from dpaudit.train import TrainConfig

    torch.set_num_threads(args.threads)
    base = load_base(args.base, placement=Placement(device=args.device, dtype=args.dtype))
    records = _records(args.n, args.seed)
    max_length = TrainConfig().max_length
    encoded = [encode_record(r, base.tokenizer, max_length=max_length) for r in records]
    tokens = sum(len(e.input_ids) for e in encoded)
    print(f"base {args.base}, {len(records)} records, {tokens} tokens, batch {args.batch_size}, "
          f"max_length {max_length}, {args.threads} threads, device {base.placement.device}, dtype {base.placement.dtype}")
    rates = bench_scoring(base.model, base.tokenizer, encoded, batch_size=args.batch_size, repeats=args.repeats)
    plain = rates["plain forward"]
    for name, rate in rates.items():
        print(f"  {name:24} {rate:10.0f} tokens/s   ratio {rate / plain:5.2f}")
    print(f"scoring ratio (score_tokens + moments ÷ plain forward): {rates['score_tokens + moments'] / plain:.2f} (target ≥ 0.9)")
    if args.fanout_workers:
        fan = bench_shadow_fanout(base, records, shadows=args.shadows, workers=args.fanout_workers, seed=args.seed)
        print(f"K = {args.shadows} shadows: serial ({args.threads} threads) {fan['serial_s']:.1f} s, "
              f"{args.fanout_workers} Ray workers ({max(1, args.threads // args.fanout_workers)} thread(s) each) "
              f"{fan[f'workers_{args.fanout_workers}_s']:.1f} s; ratio {fan['ratio']:.2f}; "
              f"largest LiRA score difference {fan['max_abs_score_difference']:.3g}")
    if not args.skip_generation:
        gen = bench_generation(base.model, base.tokenizer, records, batch_size=args.batch_size, repeats=args.repeats)
        print(f"PII-extraction generation, {gen['prompts']} prompts: {gen['ours_s']:.2f} s vs plain model.generate "
              f"{gen['plain_s']:.2f} s; throughput ratio {gen['plain_s'] / gen['ours_s']:.2f} (target ≥ 0.9)")
    if args.skip_lira:
        return
    lira = bench_lira(base, records, shadows=args.shadows, seed=args.seed)
    print(f"one adapter's training: {lira['one_training_s']:.1f} s; LiRA with K = {args.shadows}: "
          f"{lira['lira_wall_s']:.1f} s {lira['timings']}; AUC {lira['auc']:.3f}")
    print(f"LiRA ratio (wall ÷ K × training): {lira['ratio']:.2f} (target ≤ 1.2)")
    rmia = lira["rmia_timings"]
    print(f"RMIA with the K shadows cached: {lira['rmia_wall_s']:.1f} s {rmia}; AUC {lira['rmia_auc']:.3f}")
    print(f"RMIA arithmetic ÷ attack wall time: {rmia['attack_rmia'] / lira['rmia_wall_s']:.3f} (target ≤ 0.10); "
          f"its population scoring ÷ wall time: {rmia['population_scoring'] / lira['rmia_wall_s']:.3f}")


if __name__ == "__main__":
    main()
