"""DP-LoRA vs LoRA, and label-position logits vs full logits: step time and peak memory ratios,
side by side, on the same batch.

    python benchmarks/bench_train.py                      # tiny and smollm2-135m
    python benchmarks/bench_train.py --bases tiny --repeats 5
    python benchmarks/bench_train.py --bases tiny-random  # a TinyConfig-sized random model, no build
    python benchmarks/bench_train.py --bases smollm2-135m-random  # SmolLM2-135M's shape, random weights
    python benchmarks/bench_train.py --bases smollm2-135m --device cuda --dtype bfloat16   # on a GPU

Targets (issue #3): time ratio ≤ 1.15, memory ratio ≤ 1.3. Issue #12: a LoRA step with the LM head
at label positions only ÷ the same step with today's full logits ≤ 0.9.

Protocol. Both runs train the same LoRA (rank 8 on the default target modules) with Adam on
the same logical batch: N = batch = physical batch (sample rate 1, so the Poisson batch is the
whole set at every step and both sides see identical batches). DP adds opacus's per-example
gradients, flat clipping and noise. Each measurement runs in a fresh child process (so memory
peaks do not mix) and the children alternate LoRA, DP-LoRA, LoRA, ... ``--repeats`` times;
the ratio reported is of the medians of the per-step times (after warm-up steps). A third mode,
``lora-full``, is the LoRA step with the per-example loss computed from the logits of every
position (:func:`full_logits_loss`, what dpaudit did before issue #12), for the logits ratio.

Memory is the peak resident set size (VmHWM, CPU) of the child while training, with the peak
reset after the base is loaded (``/proc/self/clear_refs``), reported both as the whole
process's peak and as the increment over the loaded model; on CUDA it is
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BASES = ("tiny", "smollm2-135m")
MODES = ("lora", "lora-full", "dp")  # label-position logits (today), full logits (the pre-#12 reference), DP-SGD


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def full_logits_loss(model, batch):
    """The reference: the LM head over every position, then the cross-entropy of the target tokens."""
    import torch.nn.functional as F

    from dpaudit.data.tokenize import IGNORE_INDEX

    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    logits = out.logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    token_loss = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
    mask = (labels != IGNORE_INDEX).to(token_loss.dtype)
    return (token_loss * mask).sum(1) / mask.sum(1).clamp(min=1)


def _load(base: str, placement):
    if base == "tiny-random":
        from dpaudit.data.synth import SynthConfig, generate
        from dpaudit.models.tiny import TinyConfig, init_tiny_model, train_tokenizer

        texts = [r.text for r in generate(SynthConfig(n=200, seed=1)).private]
        tokenizer = train_tokenizer(texts, vocab_size=TinyConfig().vocab_size)
        return init_tiny_model(tokenizer, TinyConfig(), seed=0).to(placement.device, placement.torch_dtype), tokenizer
    if base == "smollm2-135m-random":  # SmolLM2-135M's architecture with random weights: same cost per step
        from transformers import LlamaConfig, LlamaForCausalLM

        _, tokenizer = _load("tiny-random", placement)
        config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                             num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                             tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id)
        return LlamaForCausalLM(config).to(placement.device, placement.torch_dtype), tokenizer
    from dpaudit.models.base import load_base

    loaded = load_base(base, show_progress=False, placement=placement)
    return loaded.model, loaded.tokenizer


def child(args: argparse.Namespace) -> None:
    """One measurement: load, train ``warmup + steps`` logical steps, print JSON."""
    import torch

    from dpaudit.data.synth import SynthConfig, generate
    from dpaudit.data.tokenize import encode_record
    from dpaudit.train import DPConfig, TrainConfig
    from dpaudit.train.loop import TrainingRun, plan_run, resolve_device
    from dpaudit.train import loop
    from dpaudit.train.methods import prepare_model
    from dpaudit.scale.device import Placement

    torch.set_num_threads(args.threads)
    if args.mode == "lora-full":
        loop.per_example_loss = full_logits_loss  # what TrainingRun._backward calls
    model, tokenizer = _load(args.base, Placement(device=args.device, dtype=args.dtype).resolve())
    records = generate(SynthConfig(n=4 * args.batch, seed=0)).private[: args.batch]
    examples = [encode_record(r, tokenizer, max_length=args.max_length) for r in records]
    dp = DPConfig(noise_multiplier=1.0, max_grad_norm=1.0) if args.mode == "dp" else None
    config = TrainConfig(batch_size=args.batch, sampler="poisson", max_steps=args.warmup + args.steps, dp=dp, rank=8)
    plan = plan_run(len(examples), config)
    device = resolve_device("auto", model=model)
    cuda = device.type == "cuda"
    prepared = prepare_model(model, config)
    run = TrainingRun(prepared, config=config, plan=plan, device=device)
    batches = run.batches()
    for _ in range(args.warmup):
        run.logical_step(next(batches), examples, pad_id=tokenizer.pad_token_id)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_mem = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        base_mem = _rss_kib("VmRSS") * 1024
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        run.logical_step(next(batches), examples, pad_id=tokenizer.pad_token_id)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if cuda else _rss_kib("VmHWM") * 1024
    run.close()
    tokens = sum(len(e.input_ids) for e in examples)
    print(json.dumps({"times": times, "peak": peak, "base": base_mem, "device": str(device), "tokens": tokens}))


def measure(base: str, mode: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", "--base", base, "--mode", mode, "--batch", str(args.batch),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--max-length", str(args.max_length),
           "--threads", str(args.threads), "--device", args.device, "--dtype", args.dtype]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode:
        raise SystemExit(f"{base} {mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bases", default=",".join(BASES), help="comma list: tiny, smollm2-135m, tiny-random, smollm2-135m-random")
    parser.add_argument("--batch", type=int, default=8, help="logical = physical batch size")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="alternating measurements per mode")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    rows = []
    for base in args.bases.split(","):
        results: dict[str, list[dict]] = {mode: [] for mode in MODES}
        for _ in range(args.repeats):
            for mode in MODES:
                results[mode].append(measure(base, mode, args))
        step = {m: statistics.median(t for r in rs for t in r["times"]) for m, rs in results.items()}
        peak = {m: statistics.median(r["peak"] for r in rs) for m, rs in results.items()}
        extra = {m: statistics.median(r["peak"] - r["base"] for r in rs) for m, rs in results.items()}
        rows.append({
            "base": base,
            "device": results["dp"][0]["device"],
            "tokens_per_batch": results["dp"][0]["tokens"],
            "lora_step_s": step["lora"],
            "dp_step_s": step["dp"],
            "time_ratio": step["dp"] / step["lora"],
            "full_step_s": step["lora-full"],
            "logits_ratio": step["lora"] / step["lora-full"],
            "peak_mem_ratio": peak["dp"] / peak["lora"],
            "train_mem_ratio": extra["dp"] / max(extra["lora"], 1),
            "lora_peak_mib": peak["lora"] / 2**20,
            "dp_peak_mib": peak["dp"] / 2**20,
            "lora_train_mib": extra["lora"] / 2**20,
            "dp_train_mib": extra["dp"] / 2**20,
        })
    print(f"batch {args.batch} (logical = physical), max_length {args.max_length}, {args.threads} threads, "
          f"median over {args.repeats}×{args.steps} steps; targets: time ≤ 1.15, memory ≤ 1.3, logits ≤ 0.9")
    header = f"{'base':14} {'device':6} {'LoRA s/step':>11} {'DP s/step':>10} {'time ratio':>10} {'peak mem ratio':>14} {'train mem ratio':>15} {'LoRA MiB':>9} {'DP MiB':>8} {'+LoRA MiB':>9} {'+DP MiB':>8}"
    print(header)
    for r in rows:
        print(f"{r['base']:14} {r['device']:6} {r['lora_step_s']:11.4f} {r['dp_step_s']:10.4f} {r['time_ratio']:10.3f} "
              f"{r['peak_mem_ratio']:14.3f} {r['train_mem_ratio']:15.3f} {r['lora_peak_mib']:9.1f} {r['dp_peak_mib']:8.1f} "
              f"{r['lora_train_mib']:9.1f} {r['dp_train_mib']:8.1f}")
    for r in rows:
        print(f"{r['base']}: LoRA step with label-position logits {r['lora_step_s']:.4f} s ÷ full logits "
              f"{r['full_step_s']:.4f} s = logits ratio {r['logits_ratio']:.3f}")
    print("peak mem ratio: whole-process peak RSS (CPU) or peak allocated (CUDA); train mem ratio (+MiB columns): the "
          "peak's increment over the loaded model after warm-up, i.e. what training itself adds.")


if __name__ == "__main__":
    main()
