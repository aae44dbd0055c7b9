"""`dpaudit epsilon` (issue #6): theoretical ε, empirical ε from scores, and the comparator.

``dpaudit epsilon --noise-multiplier σ --sample-rate q --steps T --delta δ`` (no subcommand) prints
the accountants' ε; ``empirical`` bounds ε from a scores CSV; ``compare`` puts the training card's
promise beside the evidence and exits 1 on a VIOLATION.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dpaudit.cli.common import JsonOpt, SeedOpt, console, print_json
from dpaudit.errors import ConfigError, InputError, MissingFileError, PrivacyViolation
from dpaudit.io import read_json_object

app = typer.Typer(
    help="Privacy budgets: the accountant's ε, empirical ε from attack scores, and their comparison.",
    invoke_without_command=True,
    no_args_is_help=False,
)

DeltaOpt = Annotated[float, typer.Option("--delta", help="δ of the (ε, δ) guarantee, in (0, 1).")]
ConfidenceOpt = Annotated[
    float, typer.Option("--confidence", help="Confidence of the empirical lower bounds, in (0, 1).")
]
METHOD_CHOICES = ("clopper-pearson", "one-run", "gdp", "all")
NO_AMPLIFICATION_LABEL = "no-amplification bound (σ-Gaussian × T, zCDP; no credit for subsampling)"
SUBSAMPLING_NOTE = (
    "The accountants credit Poisson subsampling: each example is in only ≈ q·T batches and even then "
    "hides among the others, which is why their ε is far below the no-amplification bound."
)


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "∞"
    return f"{value:.{digits}g}"


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _accountant_names(accountant: str) -> list[str]:
    from dpaudit.privacy.accountants import ACCOUNTANTS

    if accountant == "all":
        return ACCOUNTANTS.names()
    ACCOUNTANTS.get(accountant)  # unknown names list the registered ones
    return [accountant]


def _methods(method: str) -> list[str] | None:
    if method not in METHOD_CHOICES:
        raise ConfigError(f"`--method` must be one of {', '.join(METHOD_CHOICES)}, got {method!r}")
    return None if method == "all" else [method]


@app.callback(invoke_without_command=True)
def theory(
    ctx: typer.Context,
    noise_multiplier: Annotated[
        float | None, typer.Option("--noise-multiplier", help="σ: noise std / clipping norm C.")
    ] = None,
    sample_rate: Annotated[
        float | None, typer.Option("--sample-rate", help="q: Poisson sampling rate, in (0, 1].")
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="T: number of noisy steps (>= 1).")] = None,
    delta: Annotated[float | None, typer.Option("--delta", help="δ of the (ε, δ) guarantee, in (0, 1).")] = None,
    accountant: Annotated[str, typer.Option("--accountant", help="prv, rdp or all.")] = "prv",
    target_epsilon: Annotated[
        float | None,
        typer.Option("--target-epsilon", help="Instead of --noise-multiplier: print the σ that reaches this ε."),
    ] = None,
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """ε(δ) of DP-SGD from (σ, q, T, δ) per accountant, or the σ for a target ε."""
    if ctx.invoked_subcommand is not None:
        return
    given = [noise_multiplier, sample_rate, steps, delta, target_epsilon]
    if all(v is None for v in given):
        console.print(ctx.get_help())
        raise typer.Exit(0)
    report = epsilon_report(
        noise_multiplier=noise_multiplier,
        sample_rate=sample_rate,
        steps=steps,
        delta=delta,
        accountant=accountant,
        target_epsilon=target_epsilon,
    )
    if json_out:
        print_json(report)
        return
    table = Table(title="Theoretical ε")
    table.add_column("accountant")
    table.add_column("σ", justify="right")
    table.add_column("ε", justify="right")
    sigmas = report.get("noise_multipliers") or {}
    unavailable = report.get("unavailable") or {}
    for name, eps in report["epsilons"].items():
        shown = f"n/a ({unavailable[name]})" if name in unavailable else _fmt(eps)
        table.add_row(name, _fmt(sigmas.get(name, report["noise_multiplier"])), shown)
    console.print(table)
    for note in report.get("notes") or []:
        console.print(note, style="dim")
    if target_epsilon is not None:
        console.print(
            f"noise multiplier for ε ≤ {target_epsilon:g}: σ = {report['noise_multiplier']:.6g} "
            f"({report['accountant']}, landed ε = {report['epsilon']:.4g})"
        )
    console.print(f"q = {report['sample_rate']:g}, T = {report['steps']}, δ = {report['delta']:g}")
    console.print(f"{NO_AMPLIFICATION_LABEL}: ε = {_fmt(report['no_amplification_epsilon'])}")
    console.print(SUBSAMPLING_NOTE, style="dim")


def epsilon_report(
    *,
    noise_multiplier: float | None,
    sample_rate: float | None,
    steps: int | None,
    delta: float | None,
    accountant: str = "prv",
    target_epsilon: float | None = None,
) -> dict[str, Any]:
    """The numbers `dpaudit epsilon` prints (also its --json document)."""
    from dpaudit.privacy.accountants import (
        AccountantUnavailable,
        calibrate,
        compute_epsilon,
        no_amplification_epsilon,
    )

    missing = [opt for opt, v in (("--sample-rate", sample_rate), ("--steps", steps), ("--delta", delta)) if v is None]
    if (noise_multiplier is None) == (target_epsilon is None):
        missing.insert(0, "exactly one of --noise-multiplier or --target-epsilon")
    if missing:
        raise ConfigError(f"`dpaudit epsilon` needs {', '.join(missing)}; see `dpaudit epsilon --help`")
    names = _accountant_names(accountant)
    out: dict[str, Any] = {"sample_rate": sample_rate, "steps": steps, "delta": delta}
    notes: list[str] = []
    if target_epsilon is not None:
        calibrations = {
            name: calibrate(
                target_epsilon=target_epsilon, sample_rate=sample_rate, steps=steps, delta=delta, accountant=name
            )
            for name in names
        }
        sigmas = {name: c.noise_multiplier for name, c in calibrations.items()}
        notes += [f"σ for {name}: {c.note}" for name, c in calibrations.items() if c.note]
        chosen = min(sigmas, key=sigmas.__getitem__)  # the tightest accountant needs the least noise
        sigma = sigmas[chosen]
        out.update(target_epsilon=target_epsilon, noise_multipliers=sigmas)
    else:
        sigma = float(noise_multiplier)  # type: ignore[arg-type]
    epsilons: dict[str, float | None] = {}
    unavailable: dict[str, str] = {}
    for name in names:  # an accountant that cannot answer shows "n/a (reason)"; the others carry on
        try:
            epsilons[name] = compute_epsilon(
                noise_multiplier=sigma, sample_rate=sample_rate, steps=steps, delta=delta, accountant=name
            )
        except AccountantUnavailable as exc:
            epsilons[name], unavailable[name] = None, str(exc)
    answered = {k: v for k, v in epsilons.items() if v is not None}
    if target_epsilon is None:
        chosen = min(answered, key=answered.__getitem__) if answered else None
    out.update(
        accountant=chosen,
        epsilon=_num(answered.get(chosen)) if chosen is not None else None,
        epsilons={k: _num(v) for k, v in epsilons.items()},
        unavailable=unavailable,
        notes=notes,
        noise_multiplier=sigma,
        no_amplification_epsilon=_num(no_amplification_epsilon(noise_multiplier=sigma, steps=steps, delta=delta)),
    )
    return out


def _detail(result: Any) -> str:
    data = result.to_json()
    if data["method"] == "clopper-pearson":
        return (
            f"t ≥ {_fmt(data['threshold'])}, FPR ≤ {_fmt(data['fpr_ub'])}, FNR ≤ {_fmt(data['fnr_ub'])} "
            f"({data['selection']})"
        )
    if data["method"] == "one-run":
        return (
            f"{data['correct']}/{data['guesses']} right (k₊={data['k_plus']}, k₋={data['k_minus']}, m={data['m']}); "
            f"ceiling {_fmt(data['ceiling'], 3)}"
        )
    return f"AUC {data['auc']:.4f}, μ = {_fmt(data['mu'], 3)}"


@app.command("empirical")
def empirical(
    scores: Annotated[
        Path, typer.Option("--scores", help="Scores CSV (id,member,score) from `dpaudit attack --save-scores`.")
    ],
    delta: DeltaOpt,
    confidence: ConfidenceOpt = 0.95,
    method: Annotated[str, typer.Option("--method", help="clopper-pearson, one-run, gdp or all.")] = "all",
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Empirical ε from attack scores: lower bounds (clopper-pearson, one-run) and a GDP estimate."""
    from dpaudit.privacy.empirical import empirical_epsilons
    from dpaudit.privacy.scores_io import read_scores_csv

    methods = _methods(method)
    _, labels, values = read_scores_csv(scores)
    results = empirical_epsilons(values, labels, delta=delta, confidence=confidence, methods=methods, seed=seed)
    if json_out:
        print_json(
            {
                "scores": str(scores),
                "delta": delta,
                "confidence": confidence,
                "seed": seed,
                "n": int(labels.size),
                "n_members": int(labels.sum()),
                "results": {name: r.to_json() for name, r in results.items()},
            }
        )
        return
    table = Table(title=f"Empirical ε at δ = {delta:g} ({scores.name}, n = {labels.size})")
    for col in ("method", "kind", "ε", "confidence", "details"):
        table.add_column(col, justify="right" if col in ("ε", "confidence") else "left")
    for name, r in results.items():
        label = "lower bound" if r.kind == "bound" else "estimate"
        conf = "-" if r.confidence is None else f"{r.confidence:g}"
        table.add_row(name, label, _fmt(r.epsilon, 3), conf, _detail(r))
    console.print(table)
    console.print(
        "Lower bounds hold with the stated confidence; the GDP number is an estimate, not a bound.", style="dim"
    )


def _read_card(adapter: Path) -> dict[str, Any]:
    if not adapter.is_dir():
        raise MissingFileError(f"No adapter directory at {adapter}. Run `dpaudit train --out {adapter}` first.")
    path = adapter / "dpaudit.json"
    if not path.is_file():
        raise MissingFileError(f"No training card at {path}. Run `dpaudit train --out {adapter}` first.")
    return read_json_object(path)


@app.command("compare")
def compare(
    adapter: Annotated[
        Path, typer.Option("--adapter", help="Adapter directory holding the training card dpaudit.json.")
    ],
    scores: Annotated[
        Path,
        typer.Option(
            "--scores",
            help="A scores CSV or a directory of them (`dpaudit attack --save-scores`), or the adapter's "
            "gradient_canary_scores.csv for a white-box canary audit.",
        ),
    ],
    delta: Annotated[float | None, typer.Option("--delta", help="δ (default: the card's dp.delta).")] = None,
    confidence: ConfidenceOpt = 0.95,
    method: Annotated[str, typer.Option("--method", help="clopper-pearson, one-run, gdp or all.")] = "all",
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Theoretical ε from the training card beside each empirical ε; exit 1 on a VIOLATION."""
    from dpaudit.privacy.comparator import VIOLATION, compare_epsilon

    card = _read_card(adapter)
    try:
        comparison = compare_epsilon(
            card=card, scores=scores, delta=delta, confidence=confidence, methods=_methods(method), seed=seed
        )
    except InputError as exc:
        if exc.path is None and exc.field is not None and exc.field.startswith(("dp", "events")):
            raise InputError(str(exc), path=adapter / "dpaudit.json") from None
        raise
    if json_out:
        print_json(comparison.to_json())
    else:
        _print_comparison(comparison)
    if comparison.verdict == VIOLATION:
        worst = max((r for r in comparison.rows if r.violates), key=lambda r: r.epsilon)
        raise PrivacyViolation(
            f"empirical ε ≥ {worst.epsilon:.3g} ({worst.source}/{worst.method}) exceeds the theoretical "
            f"ε = {comparison.epsilon_theory:.3g}: a bug in training or accounting"
        )


def _print_comparison(c: Any) -> None:
    t = c.theory
    if t.guaranteed:
        per = ", ".join(
            [f"{k} {_fmt(v)}" for k, v in t.epsilons.items()] + [f"{k} n/a ({why})" for k, why in t.unavailable.items()]
        )
        console.print(f"theoretical ε at δ = {c.delta:g}: {_fmt(c.epsilon_theory)} ({per})")
        if t.card_epsilon is not None:
            console.print(f"card's ε: {_fmt(t.card_epsilon)} ({t.card_accountant})")
        if t.no_amplification_epsilon is not None:
            console.print(f"{NO_AMPLIFICATION_LABEL}: {_fmt(t.no_amplification_epsilon)}", style="dim")
    else:
        console.print(f"theoretical ε: ∞ (no DP guarantee: {t.no_guarantee_reason})")
    table = Table(title=f"Empirical ε at δ = {c.delta:g}")
    for col in ("source", "method", "kind", "ε", "confidence", "ε / ε_theory", ""):
        table.add_column(col, justify="right" if col in ("ε", "confidence", "ε / ε_theory") else "left")
    for r in c.rows:
        conf = "-" if r.result.confidence is None else f"{r.result.confidence:.4g}"
        kind = "lower bound" if r.kind == "bound" else "estimate"
        flag = "[bold red]above theory[/]" if r.violates else ""
        table.add_row(r.source, r.method, kind, _fmt(r.epsilon, 3), conf, _fmt(r.tightness, 3), flag)
    console.print(table)
    for note in c.notes:
        console.print(note, style="dim")
    style = {"consistent": "bold green", "VIOLATION": "bold red"}.get(c.verdict, "bold yellow")
    tight = "" if c.tightness is None else f" (tightness {c.tightness:.3g})"
    console.print(f"verdict: [{style}]{c.verdict}[/]{tight}")
