"""RMIA against LiRA on the same shadows (K = 2, 4, 8) and against `ref` with no shadows (K = 0).

    python benchmarks/rmia_vs_lira.py --runs /tmp/rmia-vs-lira      # tiny base, 600 private records

Protocol: synthesize ``--n`` private records (and as many public ones: RMIA's population), train
one LoRA with the demo's recipe on half of them (members), then attack it with K = 0, 2, 4, 8
shadows from one shadow cache (growing K reuses the shadows already trained). Every attack sees
the same candidates; AUC and TPR at 1% / 10% FPR are printed as a Markdown table (the README's; TPR at
1% is n/a below 500 non-members, the low-FPR rule of ``mia_metrics``).
LiRA needs ≥ 4 shadows (two IN and two OUT per record) unless given a fixed variance, so its K = 2
cell is left empty rather than filled with a guessed variance.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ks", default="0,2,4,8", help="shadow counts to run (comma list)")
    args = parser.parse_args()

    from dpaudit.attacks.suite import run_attacks
    from dpaudit.data.synth import SynthConfig, generate, write_dataset
    from dpaudit.demo import DemoConfig
    from dpaudit.train import run_training
    from dpaudit.train.config import TrainConfig

    data = args.runs / "data"
    if not (data / "private.jsonl").is_file():
        write_dataset(generate(SynthConfig(n=args.n, seed=args.seed)), data)
    demo = DemoConfig()
    adapter = args.runs / "lora"
    if not (adapter / "dpaudit.json").is_file():
        recipe = TrainConfig(epochs=demo.epochs, lr=demo.lr, batch_size=demo.batch_size, max_length=demo.max_length,
                             seed=args.seed, checkpoint_every=0)
        run_training(data_file=data / "private.jsonl", base="tiny", out_dir=adapter, config=recipe, progress=False)
    plan = {0: ["ref", "rmia"], 2: ["rmia", "rmia_online"], 4: ["lira", "lira_offline", "rmia", "rmia_online"],
            8: ["lira", "lira_offline", "rmia", "rmia_online"]}
    rows = []
    for k, names in plan.items():
        if str(k) not in args.ks.split(","):
            continue
        tick = time.perf_counter()
        result = run_attacks(adapter_dir=adapter, attacks=names, shadows=k, seed=args.seed, progress=False)
        for name, m in result.attacks.items():
            rows.append({"K": k, "attack": name, "auc": m["auc"], "tpr@1%": m["tpr_at_fpr"]["0.01"],
                         "tpr@10%": m["tpr_at_fpr"]["0.1"], "timings_s": result.timings_s})
        print(f"K={k}: {time.perf_counter() - tick:.0f} s", flush=True)
    (args.runs / f"rmia_vs_lira-K{args.ks.replace(',', '-')}.json").write_text(json.dumps(rows, indent=2))
    print("| K | attack | AUC | TPR@1% FPR | TPR@10% FPR |\n|---|---|---|---|---|")
    for r in rows:
        cells = ["n/a" if r[key] is None else f"{r[key]:.3f}" for key in ("auc", "tpr@1%", "tpr@10%")]
        print(f"| {r['K']} | {r['attack']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
