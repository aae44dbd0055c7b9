"""Attack speed: the scoring pass against a plain forward pass, and LiRA against training its shadows.

    python benchmarks/bench_attack.py                       # tiny base, 256 records, K = 8
    python benchmarks/bench_attack.py --shadows 4 --n 128   # quicker
    python benchmarks/bench_attack.py --skip-lira           # the scoring ratio only

Targets (issue #4): scoring tokens/s ÷ plain forward tokens/s ≥ 0.9; LiRA wall time ÷ (K × one
adapter's training time) ≤ 1.2.

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
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            batch = pad_batch(encoded[start : start + batch_size], pad_id=tokenizer.pad_token_id)
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
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
        for directory in plan.dirs:
            shutil.rmtree(directory, ignore_errors=True)
    assert result.shadows_trained == shadows, "the shadow cache was not empty"
    return {"one_training_s": one, "lira_wall_s": wall, "ratio": wall / (shadows * one), "timings": result.timings_s,
            "auc": result.attacks["lira"]["auc"]}


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
    args = parser.parse_args()

    import torch

    from dpaudit.data.tokenize import encode_record
    from dpaudit.models.base import load_base
    from dpaudit.train import TrainConfig

    torch.set_num_threads(args.threads)
    base = load_base(args.base)
    records = _records(args.n, args.seed)
    max_length = TrainConfig().max_length
    encoded = [encode_record(r, base.tokenizer, max_length=max_length) for r in records]
    tokens = sum(len(e.input_ids) for e in encoded)
    print(f"base {args.base}, {len(records)} records, {tokens} tokens, batch {args.batch_size}, "
          f"max_length {max_length}, {args.threads} threads, device cpu")
    rates = bench_scoring(base.model, base.tokenizer, encoded, batch_size=args.batch_size, repeats=args.repeats)
    plain = rates["plain forward"]
    for name, rate in rates.items():
        print(f"  {name:24} {rate:10.0f} tokens/s   ratio {rate / plain:5.2f}")
    print(f"scoring ratio (score_tokens + moments ÷ plain forward): {rates['score_tokens + moments'] / plain:.2f} (target ≥ 0.9)")
    if args.skip_lira:
        return
    lira = bench_lira(base, records, shadows=args.shadows, seed=args.seed)
    print(f"one adapter's training: {lira['one_training_s']:.1f} s; LiRA with K = {args.shadows}: "
          f"{lira['lira_wall_s']:.1f} s {lira['timings']}; AUC {lira['auc']:.3f}")
    print(f"LiRA ratio (wall ÷ K × training): {lira['ratio']:.2f} (target ≤ 1.2)")


if __name__ == "__main__":
    main()
