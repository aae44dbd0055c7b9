"""The tiny Llama-architecture model dpaudit builds for itself (tokenizer + weights).

Small enough to pretrain in minutes on two CPU cores, big enough to memorise
training records, so that every privacy effect the toolkit measures shows up on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from dpaudit.data.tokenize import BUILTIN_CHAT_TEMPLATE

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")


@dataclass(frozen=True)
class TinyConfig:
    """Architecture of the tiny base; the defaults are the `tiny` preset."""

    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 352
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    max_position_embeddings: int = 512

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"`{name}` must be > 0, got {value}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` ({self.num_attention_heads})"
            )


def train_tokenizer(texts: Iterable[str], *, vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on ``texts``, wrapped as a HF fast tokenizer with our chat template."""
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    wrapped.chat_template = BUILTIN_CHAT_TEMPLATE
    return wrapped


def init_tiny_model(tokenizer: PreTrainedTokenizerFast, config: TinyConfig | None = None, *, seed: int = 0) -> LlamaForCausalLM:
    """Randomly initialised tiny Llama sized for ``tokenizer`` (deterministic for ``seed``)."""
    import torch

    config = config or TinyConfig()
    torch.manual_seed(seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(llama)


# --------------------------------------------------------------------------------------------
# Pretraining the `tiny` preset on the public split of the synthetic data
# --------------------------------------------------------------------------------------------

# Bump when the recipe changes in a way the config fields below do not capture (invalidates caches).
RECIPE_VERSION = 1
BUILD_MANIFEST = "dpaudit_build.json"


@dataclass(frozen=True)
class TinyBuildConfig:
    """Everything that determines the `tiny` base; its hash is the cache key.

    The defaults are the `tiny` preset (one place per default), sized to build in under 3 minutes
    on 2 CPU cores (``dpaudit models build tiny``); tests shrink ``model``, ``corpus_n``, ``steps``.

    - ``corpus_n``/``corpus_seed``: ``SynthConfig(n=corpus_n, seed=corpus_seed)``; only its
      ``public`` split is used (disjoint from the private pool by construction).
    - ``eval_records``: public records held out of pretraining to measure the final loss.
    - ``labels``: ``"all"`` (default) trains on every token of the chat-rendered record, a plain
      causal LM of the whole dialogue as real bases are: the same compute per step gives about
      twice the supervised tokens of ``"assistant"`` (assistant turns only), and prompts carry
      the same kind of names and numbers as answers.

    How the defaults were chosen (1.07M parameters, ~208 tokens per record; measured on the
    shared 2-core dev machine, one training thread, ~6k tokens/s when quiet): at equal tokens,
    batch 8 beats batch 16 and 32 by far (held-out loss 3.1 vs 4.6 and 5.3 after ~350k tokens;
    this regime is update-bound), lr 3e-3 beats 5e-3 and 1e-2 (1e-2 stalls near 6) and ties
    2e-3. 500 steps reached a held-out loss of 1.76 nats/token (uniform: 7.62); 450 steps keep
    the build near 2 minutes of training on an idle machine, leaving margin for the corpus,
    tokenizer, encoding and saving (~10 s together).
    """

    model: TinyConfig = TinyConfig()
    corpus_n: int = 3000
    corpus_seed: int = 0
    eval_records: int = 64
    steps: int = 450
    batch_size: int = 8
    lr: float = 3e-3
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 256
    labels: str = "all"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("corpus_n", "steps", "batch_size", "max_length"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"`{name}` must be > 0, got {value}")
        if self.eval_records < 0:
            raise ValueError(f"`eval_records` must be >= 0, got {self.eval_records}")
        if self.warmup_steps < 0:
            raise ValueError(f"`warmup_steps` must be >= 0, got {self.warmup_steps}")
        if not self.lr > 0:
            raise ValueError(f"`lr` must be > 0, got {self.lr}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"`min_lr_ratio` must be in [0, 1], got {self.min_lr_ratio}")
        if self.labels not in ("all", "assistant"):
            raise ValueError(f"`labels` must be 'all' or 'assistant', got {self.labels!r}")

    def to_json(self) -> dict:
        from dataclasses import asdict

        return asdict(self)

    def fingerprint(self) -> str:
        """12 hex digits of sha256 over the config and the recipe version (the cache key)."""
        import hashlib
        import json

        payload = json.dumps({"recipe": RECIPE_VERSION, **self.to_json()}, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' own tqdm bars (weight loading, shard writing, GGUF dequantising) for a block."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def render_for_tokenizer(record) -> str:
    """The chat-rendered text of ``record`` as the built-in template writes it, minus the eos marker
    (special tokens are added to the vocabulary separately)."""
    return "".join(f"<|{m.role}|>\n{m.content}\n" for m in record.messages)


def synth_config(config: TinyBuildConfig):
    """The synthetic dataset whose public split the tiny base is pretrained on."""
    from dpaudit.data.synth import SynthConfig

    return SynthConfig(n=config.corpus_n, seed=config.corpus_seed)


def public_corpus(config: TinyBuildConfig, *, progress=None) -> list:
    """The public split of :func:`synth_config`'s dataset (disjoint from its private pool by construction)."""
    from dpaudit.data.synth import generate

    return list(generate(synth_config(config), progress=progress).public)


class _Reporter:
    """Progress for a build: a rich progress bar on a terminal, nothing otherwise."""

    def __init__(self, show: bool | None) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.show = self.console.is_terminal if show is None else show
        self.progress = None

    def __enter__(self):
        if self.show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description:<22}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"),
                console=self.console,
                transient=False,
            )
            self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def task(self, description: str, total: int | None) -> int | None:
        if self.progress is None:
            return None
        return self.progress.add_task(description, total=total, info="")

    def update(self, task: int | None, *, advance: float = 0, completed: float | None = None, info: str | None = None) -> None:
        if self.progress is None or task is None:
            return
        kwargs = {"advance": advance}
        if completed is not None:
            kwargs = {"completed": completed}
        if info is not None:
            kwargs["info"] = info
        self.progress.update(task, **kwargs)


# Below this many parameters the matrices are too small for intra-op threads to pay off.
SINGLE_THREAD_BELOW = 250_000


@contextmanager
def _intra_op_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _ThreadChooser:
    """Pick the intra-op thread count of the training loop by measuring it (the weights do not depend on it).

    On a machine whose cores are shared, two spin-waiting threads run a step 5-10x slower than one
    (measured on the 2-core dev machine under load); on an idle one they are somewhat faster. So
    step 1 runs on one thread and step 2 on all, the faster wins, and if the winner is "all" but
    three steps in a row then run more than twice as slow per token as the one-thread probe (the
    machine got busy), the loop falls back to one thread for good.
    """

    def __init__(self, max_threads: int) -> None:
        self.max = max(1, max_threads)
        self.per_token: dict[int, float] = {}
        self.choice = 1
        self.slow_steps = 0
        self.fell_back = False

    def threads(self, step: int) -> int:
        if self.max == 1 or step <= 1:
            return 1
        if step == 2:
            return self.max
        return self.choice

    def record(self, step: int, threads: int, tokens: int, seconds: float) -> None:
        rate = seconds / max(tokens, 1)
        if self.max == 1 or step == 0:
            return
        if step in (1, 2):
            self.per_token[threads] = rate
            if step == 2:
                self.choice = min(self.per_token, key=self.per_token.__getitem__)
            return
        if self.choice > 1:
            self.slow_steps = self.slow_steps + 1 if rate > 2 * self.per_token[1] else 0
            if self.slow_steps >= 3:
                self.choice, self.fell_back = 1, True

    def summary(self) -> dict:
        return {
            "max": self.max,
            "chosen": self.choice,
            "fell_back": self.fell_back,
            "probe_ms_per_1k_tokens": {str(k): round(v * 1e6, 2) for k, v in self.per_token.items()},
        }


def _batches(lengths: list[int], *, batch_size: int, generator) -> list[list[int]]:
    """One epoch of length-bucketed batches: shuffle, sort within windows of 50 batches, batch, shuffle batches."""
    import torch

    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in perm]


def _collate(examples, *, pad_id: int):
    import torch

    from dpaudit.data.tokenize import IGNORE_INDEX

    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return input_ids, mask, labels


def _eval_losses(model, encoded, *, pad_id: int, batch_size: int) -> tuple[float, float]:
    """Token-weighted mean cross-entropy (nats/token) over all tokens and over assistant tokens, one pass."""
    import torch
    import torch.nn.functional as F

    from dpaudit.data.tokenize import IGNORE_INDEX

    sums, counts = [0.0, 0.0], [0, 0]
    model.eval()
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            input_ids, mask, labels_all = _collate([(e.input_ids, e.input_ids) for e in chunk], pad_id=pad_id)
            _, _, labels_asst = _collate([(e.input_ids, e.labels) for e in chunk], pad_id=pad_id)
            logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1]
            flat = logits.reshape(-1, logits.size(-1))
            for k, labels in enumerate((labels_all, labels_asst)):
                target = labels[:, 1:].reshape(-1)
                sums[k] += float(F.cross_entropy(flat, target, ignore_index=IGNORE_INDEX, reduction="sum"))
                counts[k] += int((target != IGNORE_INDEX).sum())
    return sums[0] / max(counts[0], 1), sums[1] / max(counts[1], 1)


def build_tiny(out_dir, config: TinyBuildConfig | None = None, *, corpus=None, show_progress: bool | None = None) -> dict:
    """Train the tokenizer, pretrain the tiny Llama and ``save_pretrained`` both into ``out_dir``.

    Returns the build manifest (also written to ``out_dir/dpaudit_build.json``). ``out_dir`` should
    be a fresh temporary directory: caching and atomic publication are :mod:`dpaudit.models.base`'s job.
    ``corpus`` (records) replaces :func:`public_corpus` (for experiments; it is not part of the cache key).
    """
    import hashlib
    import json
    import math
    import platform
    import time
    from pathlib import Path

    import tokenizers
    import torch
    import transformers

    from dpaudit import __version__
    from dpaudit.data.tokenize import encode_record
    from dpaudit.io import write_json_atomic

    config = config or TinyBuildConfig()
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    with _Reporter(show_progress) as rep, ExitStack() as stack:
        if corpus is None:
            gen_task = rep.task("generating corpus", total=synth_config(config).total)
            corpus = public_corpus(config, progress=lambda k: rep.update(gen_task, advance=k))
        prep = rep.task("preparing corpus", total=3)
        corpus = list(corpus)
        if len(corpus) <= config.eval_records:
            raise ValueError(f"the public corpus has {len(corpus)} records; need more than `eval_records` ({config.eval_records})")
        digest = hashlib.sha256()
        for record in corpus:
            digest.update(json.dumps(record.to_json(), sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n")
        timings["corpus_s"] = time.perf_counter() - t0
        rep.update(prep, advance=1, info="training the byte-level BPE tokenizer")

        gen = torch.Generator().manual_seed(config.seed)
        perm = torch.randperm(len(corpus), generator=gen).tolist()
        eval_idx, train_idx = perm[: config.eval_records], perm[config.eval_records :]
        train_records = [corpus[i] for i in train_idx]
        eval_records = [corpus[i] for i in eval_idx]

        t = time.perf_counter()
        tokenizer = train_tokenizer((render_for_tokenizer(r) for r in train_records), vocab_size=config.model.vocab_size)
        timings["tokenizer_s"] = time.perf_counter() - t
        rep.update(prep, advance=1, info="encoding records")

        t = time.perf_counter()

        def encode(record):
            enc = encode_record(record, tokenizer, max_length=config.max_length)
            if config.labels == "all":
                return enc.input_ids, list(enc.input_ids)
            return enc.input_ids, enc.labels

        train_examples = [encode(r) for r in train_records]
        eval_encoded = [encode_record(r, tokenizer, max_length=config.max_length) for r in eval_records]
        timings["encode_s"] = time.perf_counter() - t
        rep.update(prep, advance=1, info=f"{len(train_examples)} records, {sum(len(i) for i, _ in train_examples)} tokens")

        model = init_tiny_model(tokenizer, config.model, seed=config.seed)
        n_params = sum(p.numel() for p in model.parameters())
        stack.enter_context(_intra_op_threads(torch.get_num_threads()))  # restored after the build
        chooser = _ThreadChooser(1 if n_params < SINGLE_THREAD_BELOW else torch.get_num_threads())
        model.train()
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr,
            betas=(0.9, 0.98),
        )

        def lr_at(step: int) -> float:
            if step < config.warmup_steps:
                return config.lr * (step + 1) / config.warmup_steps
            progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
            floor = config.min_lr_ratio
            return config.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

        pad_id = tokenizer.pad_token_id
        lengths = [len(ids) for ids, _ in train_examples]
        queue: list[list[int]] = []
        t = time.perf_counter()
        train_task = rep.task("pretraining tiny", total=config.steps)
        ema = None
        curve: list[list[float]] = []
        tokens_seen = 0
        epochs = 0
        for step in range(config.steps):
            if not queue:
                queue = _batches(lengths, batch_size=config.batch_size, generator=gen)
                epochs += 1
            batch = queue.pop()
            threads = chooser.threads(step)
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            step_start = time.perf_counter()
            input_ids, mask, labels = _collate([train_examples[i] for i in batch], pad_id=pad_id)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            chooser.record(step, threads, int(mask.sum()), time.perf_counter() - step_start)
            tokens_seen += int(mask.sum())
            value = loss.item()
            ema = value if ema is None else 0.9 * ema + 0.1 * value
            if step % 10 == 9 or step == config.steps - 1:
                curve.append([step + 1, round(ema, 4), round(time.perf_counter() - t, 1)])
            elapsed = time.perf_counter() - t
            rep.update(train_task, advance=1, info=f"loss {ema:.3f}  {tokens_seen / max(elapsed, 1e-9):,.0f} tok/s")
        timings["train_s"] = time.perf_counter() - t
        model.eval()

        save = rep.task("evaluating and saving", total=2)
        t = time.perf_counter()
        eval_loss = eval_loss_assistant = None
        if eval_encoded:
            eval_loss, eval_loss_assistant = _eval_losses(model, eval_encoded, pad_id=pad_id, batch_size=config.batch_size)
        timings["eval_s"] = time.perf_counter() - t
        rep.update(save, advance=1, info=f"held-out loss {eval_loss:.3f} (uniform {math.log(len(tokenizer)):.3f})" if eval_loss is not None else "")
        t = time.perf_counter()
        out_dir.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            model.save_pretrained(out_dir, safe_serialization=True)
            tokenizer.save_pretrained(out_dir)
        timings["save_s"] = time.perf_counter() - t
        rep.update(save, advance=1)

    manifest = {
        "kind": "tiny",
        "fingerprint": config.fingerprint(),
        "recipe_version": RECIPE_VERSION,
        "config": config.to_json(),
        "corpus": {"records": len(corpus), "train_records": len(train_records), "eval_records": len(eval_records), "sha256": digest.hexdigest()},
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "tokens_seen": tokens_seen,
        "epochs": epochs,
        "train_loss_final": ema,
        "loss_curve": curve,
        "eval_loss": eval_loss,
        "eval_loss_assistant": eval_loss_assistant,
        "uniform_loss": math.log(len(tokenizer)),
        "wall_time_s": round(time.perf_counter() - t0, 2),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "threads": chooser.summary(),
        "versions": {
            "dpaudit": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "python": platform.python_version(),
        },
    }
    write_json_atomic(out_dir / BUILD_MANIFEST, manifest)
    return manifest
