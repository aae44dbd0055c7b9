"""Grid files: a sweep is data (a TOML file), not code.

A grid has a ``[base]`` table of options every cell shares and ``[[axis]]`` entries; the cells are
the cross product of the axes, minus the ``[[exclude]]`` rules. An axis either sets the option it
is named after (``values = [1, 4, 16]``) or, when its values are tables, several options at once
(a method row = method + dp + ε; an optional ``label`` names the row)::

    [base]
    synth_n = 400
    epochs = 4

    [[axis]]
    name = "rank"
    values = [1, 4, 16]

    [[axis]]
    name = "row"
    values = [
      { label = "LoRA", method = "lora" },
      { label = "DP-LoRA", method = "lora", dp = true, target_epsilon = 8 },
    ]

    [[exclude]]              # drop every cell that matches all of these axis labels
    rank = "16"
    row = "DP-LoRA"

    [quick]                  # --quick: smaller base options and a subset of each axis
    base = { synth_n = 120, epochs = 2 }
    axis = { rank = [1, 16] }

Options are the fields of :class:`~dpaudit.train.config.TrainConfig` and
:class:`~dpaudit.train.config.DPConfig` by their own names (DP fields count only when ``dp = true``;
``target_epsilon = inf`` means no DP: the ε = ∞ end of a privacy-budget axis), the audit options
``attacks``, ``shadows``, ``confidence``, ``adherence_limit`` and ``audit_delta``
(:class:`~dpaudit.report.audit.AuditConfig`), ``base`` (a ``--base`` spec) and the data: either
``data`` (a file) or the synthetic generator's ``synth_n``, ``synth_seed``, ``categories``, ``mix``
(weights, ``"uniform"`` or ``"no-robots"``) and ``canaries``. Options named ``fed_<field>``
(the fields of :class:`~dpaudit.federated.config.FedConfig`: ``fed_clients``, ``fed_rounds``,
``fed_dp``, ``fed_bandwidth``, ...) make a cell federated: its adapter is trained by
:func:`dpaudit.federated.runner.run_fedtrain` with the other train options as each client's local
training, and its DP settings are the ``fed_`` ones (``dp = true`` is refused there). Every cell is resolved into those
configs when the file is read, so an unknown option or a bad value stops the sweep before any
training, naming the file and the key.
"""

from __future__ import annotations

import itertools
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from dpaudit.errors import ConfigError, InputError
from dpaudit.federated.config import FedConfig
from dpaudit.train.config import DPConfig, TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_BASE = "tiny"
MIX_NAMES = ("uniform", "no-robots")
# Options the sweep sets itself (a cell's seed) or that would break a cell's meaning.
_RESERVED = {"seed", "_noise_scale", "device"}
TRAIN_OPTIONS = tuple(f.name for f in fields(TrainConfig) if f.name not in _RESERVED | {"dp"})
DP_OPTIONS = tuple(f.name for f in fields(DPConfig))
AUDIT_OPTIONS = {"attacks": "attacks", "shadows": "shadows", "confidence": "confidence",
                 "adherence_limit": "adherence_limit", "audit_delta": "delta", "audit_unit": "unit"}
# A sweep runs federated cells in the plain loop (the same rounds as Flower's simulation, tested equal;
# the sweep fans out whole cells already), so the engine's own settings are not options.
_FED_ENGINE = {"train", "backend", "cores", "threads_per_client"}
FED_OPTIONS = {f"fed_{f.name}": f.name for f in fields(FedConfig) if f.name not in _FED_ENGINE}
FED_PREFIX = "fed_"
SYNTH_OPTIONS = {"synth_n": "n", "synth_seed": "seed", "categories": "categories", "mix": "mix", "canaries": "canaries"}
OTHER_OPTIONS = ("base", "dp", "data")
OPTIONS = (*OTHER_OPTIONS, *TRAIN_OPTIONS, *DP_OPTIONS, *AUDIT_OPTIONS, *SYNTH_OPTIONS, *FED_OPTIONS)
_SECTIONS = {"name", "description", "base", "axis", "exclude", "seeds", "quick", "plot", "paper", "budget"}


@dataclass(frozen=True)
class AxisPoint:
    """One value of an axis: its label (the table's row name) and the options it sets."""

    label: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class Axis:
    name: str
    points: tuple[AxisPoint, ...]


@dataclass(frozen=True)
class DataSpec:
    """Where a cell's records come from: a file, or the synthetic generator with these settings."""

    file: str | None = None
    synth: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ResolvedCell:
    """Everything a cell runs with, as validated configs (the cell's identity, with the data hash)."""

    base: str
    data: DataSpec
    train: TrainConfig  # a federated cell: each client's local training
    audit: Any  # dpaudit.report.audit.AuditConfig (imported lazily, so that `dpaudit --help` stays fast)
    fed: FedConfig | None = None  # set for a federated cell (``fed_*`` options)


@dataclass(frozen=True)
class Cell:
    """One grid point: its axis labels (axis name → label) and its merged options (without the seed)."""

    labels: Mapping[str, str]
    options: Mapping[str, Any]


@dataclass(frozen=True)
class Grid:
    name: str
    description: str
    base: Mapping[str, Any]
    axes: tuple[Axis, ...]
    exclude: tuple[Mapping[str, tuple[str, ...]], ...] = ()
    seeds: tuple[int, ...] = (0,)
    plots: tuple[Mapping[str, Any], ...] = ()
    paper: Mapping[str, Any] | None = None
    budget: Mapping[str, Any] | None = None  # ε needed for a fixed utility (dpaudit.sweep.budget)
    source: str | None = None
    quick: bool = False
    text: str = field(default="", repr=False)

    def cells(self) -> list[Cell]:
        """The cross product of the axes (first axis slowest), minus the excluded cells."""
        out = []
        for points in itertools.product(*(axis.points for axis in self.axes)):
            labels = {axis.name: point.label for axis, point in zip(self.axes, points)}
            if any(all(labels[k] in allowed for k, allowed in rule.items()) for rule in self.exclude):
                continue
            options = dict(self.base)
            for point in points:
                options.update(point.options)
            out.append(Cell(labels=labels, options=options))
        return out


def label_of(value: Any) -> str:
    """How a scalar axis value is named in tables and file names: ``0.5 → "0.5"``, ``inf → "inf"``, ``8.0 → "8"``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "inf" if math.isinf(value) and value > 0 else f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(label_of(v) for v in value)
    return str(value)


def load_grid(path: str | Path, *, quick: bool = False) -> Grid:
    """Read, validate and (with ``quick``) shrink a grid file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the grid file: {exc.strerror}", path=path) from None
    return parse_grid(text, source=str(path), quick=quick)


def parse_grid(text: str, *, source: str, quick: bool = False) -> Grid:
    """Parse grid TOML ``text`` (``source`` names it in errors) and resolve every cell once."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))  # Python 3.11's tomllib gives the line only in the text
        raise InputError(f"not valid TOML ({exc})", path=source, line=int(found.group(1)) if found else None) from None
    where = _Where(source)
    unknown = sorted(set(raw) - _SECTIONS)
    if unknown:
        raise where.error(f"unknown section; known: {', '.join(sorted(_SECTIONS))}", unknown[0])
    base = dict(_table(raw.get("base", {}), where, "base"))
    axes = [_axis(entry, i, where) for i, entry in enumerate(_list(raw.get("axis", []), where, "axis"))]
    if not axes:
        raise where.error("a grid needs at least one [[axis]]", "axis")
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        raise where.error(f"axis names repeat: {', '.join(names)}", "axis")
    if quick and "quick" in raw:
        base, axes = _apply_quick(_table(raw["quick"], where, "quick"), base, axes, where)
    for key in base:
        _check_option(key, base[key], where, f"base.{key}")
    _check_axes_disjoint(axes, where)
    exclude = tuple(_exclude(rule, i, axes, where) for i, rule in enumerate(_list(raw.get("exclude", []), where, "exclude")))
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) for s in seeds):
        raise where.error(f"must be a non-empty list of integers, got {seeds!r}", "seeds")
    grid = Grid(
        name=str(raw.get("name") or Path(source).stem),
        description=str(raw.get("description", "")),
        base=base,
        axes=tuple(axes),
        exclude=exclude,
        seeds=tuple(seeds),
        plots=tuple(_table(p, where, f"plot[{i}]") for i, p in enumerate(_list(raw.get("plot", []), where, "plot"))),
        paper=_table(raw["paper"], where, "paper") if "paper" in raw else None,
        budget=_budget(raw["budget"], axes, where) if "budget" in raw else None,
        source=source,
        quick=quick,
        text=text,
    )
    cells = grid.cells()
    if not cells:
        raise where.error("every cell is excluded", "exclude")
    for cell in cells:
        resolve(cell.options, seed=grid.seeds[0], where=where, origin=_origins(grid, cell))
    return grid


def resolve(options: Mapping[str, Any], *, seed: int, where: _Where | None = None,
            origin: Mapping[str, str] | None = None) -> ResolvedCell:
    """Turn a cell's merged options into validated configs (raises one error naming the key)."""
    from dpaudit.data.synth import SynthConfig
    from dpaudit.report.audit import AuditConfig

    where = where or _Where(None)
    origin = origin or {}
    opts = dict(options)
    try:
        dp_on = bool(opts.get("dp", False))
        if dp_on and opts.get("target_epsilon") == math.inf:
            dp_on = False  # ε = ∞: the non-DP end of a privacy-budget axis
        dp_values = {k: _tuple(opts[k]) for k in DP_OPTIONS if k in opts}
        if dp_on and dp_values.get("noise_multiplier") is not None:
            dp_values.pop("target_epsilon", None)  # an explicit σ wins over a shared target
        dp = DPConfig(**dp_values) if dp_on else None
        train = TrainConfig(**{k: _tuple(opts[k]) for k in TRAIN_OPTIONS if k in opts}, seed=seed, dp=dp)
        fed = _federated(opts, train)
        audit = AuditConfig(**{AUDIT_OPTIONS[k]: _tuple(opts[k]) for k in AUDIT_OPTIONS if k in opts}, seed=seed)
        if "data" in opts:
            extra = sorted(k for k in SYNTH_OPTIONS if k in opts)
            if extra:
                raise ConfigError(f"`data` is a file, so {', '.join(f'`{k}`' for k in extra)} cannot be set")
            data = DataSpec(file=str(opts["data"]))
        else:
            synth = {SYNTH_OPTIONS[k]: _tuple(opts[k]) for k in SYNTH_OPTIONS if k in opts}
            synth = _resolve_mix(synth)
            checked = SynthConfig(**synth)  # validates categories, mix, n
            data = DataSpec(synth={"n": checked.n, "seed": checked.seed, "categories": list(checked.categories),
                                   "mix": list(checked.mix) if checked.mix is not None else None,
                                   "canaries": checked.canaries})
    except ConfigError as exc:
        names = re.findall(r"`([a-z_]+)`", str(exc))
        key = next((origin.get(n) or f"base.{n}" for n in names if n in opts), None)
        raise ConfigError(f"{exc}", path=where.source, field=key) from None
    except TypeError as exc:  # a value of the wrong type reached a comparison in __post_init__
        raise ConfigError(f"a value has the wrong type ({exc})", path=where.source) from None
    return ResolvedCell(base=str(opts.get("base", DEFAULT_BASE)), data=data, train=train, audit=audit, fed=fed)


def _federated(opts: Mapping[str, Any], train: TrainConfig) -> FedConfig | None:
    """The cell's :class:`FedConfig` when it sets ``fed_*`` options (errors name the ``fed_`` keys)."""
    values = {FED_OPTIONS[k]: _tuple(v) for k, v in opts.items() if k in FED_OPTIONS}
    if not values:
        return None
    if train.dp is not None:
        raise ConfigError("`dp` is for `train`; a federated cell takes `fed_dp` (local, central or record) "
                          "and `fed_target_epsilon` / `fed_noise_multiplier`")
    try:
        return FedConfig(**values, backend="plain", train=train)
    except ConfigError as exc:
        message = re.sub(r"`([a-z_]+)`", lambda m: f"`{FED_PREFIX}{m.group(1)}`" if FED_PREFIX + m.group(1) in FED_OPTIONS
                         else m.group(0), str(exc))
        raise ConfigError(message) from None


def resolved_json(cell: ResolvedCell) -> dict[str, Any]:
    """The resolved configs as plain JSON: what a cell runs with (every field) and what the table shows."""
    audit = asdict(cell.audit)
    audit.pop("use_cache", None)
    audit["attacks"] = list(audit["attacks"])
    out = {"base": cell.base, "data": asdict(cell.data), "train": cell.train.to_dict(), "audit": audit}
    if cell.fed is not None:
        out["fed"] = {k: v for k, v in cell.fed.to_dict().items() if k != "train"}
    return out


def identity_json(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The part of :func:`resolved_json` that identifies a cell: every value that differs from its default.

    A field added to a config later, with a default that keeps the old behaviour, then leaves
    every finished cell's identity unchanged; a changed default comes with a new dpaudit version,
    which is part of the hash too. The seed always counts.
    """
    from dpaudit.report.audit import AuditConfig

    train = dict(resolved["train"])
    dp = train.pop("dp")
    identity = _changed(train, TrainConfig)
    identity["seed"] = train["seed"]
    if dp is not None:
        identity["dp"] = _changed(dp, DPConfig)
    out = {"base": resolved["base"], "data": resolved["data"], "train": identity,
           "audit": _changed(resolved["audit"], AuditConfig)}
    if resolved.get("fed") is not None:  # absent for a plain cell, so its identity is as before
        out["fed"] = _changed(resolved["fed"], FedConfig)
    return out


def _changed(values: Mapping[str, Any], cls: type) -> dict[str, Any]:
    defaults = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}
    return {k: v for k, v in values.items() if k not in plain or plain[k] != v}


# --------------------------------------------------------------------------- parsing helpers


@dataclass(frozen=True)
class _Where:
    source: str | None

    def error(self, message: str, key: str) -> InputError:
        return InputError(message, path=self.source, field=key)


def _table(value: Any, where: _Where, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.error(f"must be a table, got {type(value).__name__}", key)
    return value


def _list(value: Any, where: _Where, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise where.error(f"must be an array of tables ([[{key}]]), got {type(value).__name__}", key)
    return value


def _axis(entry: Any, index: int, where: _Where) -> Axis:
    entry = _table(entry, where, f"axis[{index}]")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise where.error("every axis needs a `name`", f"axis[{index}].name")
    unknown = sorted(set(entry) - {"name", "values", "option"})
    if unknown:
        raise where.error("unknown key; an axis has name, values and (optionally) option", f"axis[{name}].{unknown[0]}")
    values = entry.get("values")
    if not isinstance(values, list) or not values:
        raise where.error("must be a non-empty array", f"axis[{name}].values")
    option = entry.get("option", name)
    points = []
    for i, value in enumerate(values):
        if isinstance(value, dict):
            opts = {k: v for k, v in value.items() if k != "label"}
            if not opts:
                raise where.error("a table value must set at least one option", f"axis[{name}].values[{i}]")
            label = str(value.get("label") or ",".join(f"{k}={label_of(v)}" for k, v in opts.items()))
        else:
            opts, label = {option: value}, label_of(value)
        for key, val in opts.items():
            _check_option(key, val, where, f"axis[{name}].values[{i}].{key}")
        points.append(AxisPoint(label=label, options=opts))
    labels = [p.label for p in points]
    if len(set(labels)) != len(labels):
        raise where.error(f"labels repeat: {', '.join(labels)}", f"axis[{name}].values")
    return Axis(name=name, points=tuple(points))


def _apply_quick(quick: dict[str, Any], base: dict[str, Any], axes: list[Axis], where: _Where) -> tuple[dict, list[Axis]]:
    unknown = sorted(set(quick) - {"base", "axis"})
    if unknown:
        raise where.error("unknown key; [quick] has base and axis", f"quick.{unknown[0]}")
    base = {**base, **_table(quick.get("base", {}), where, "quick.base")}
    keep = _table(quick.get("axis", {}), where, "quick.axis")
    by_name = {a.name: a for a in axes}
    for name, wanted in keep.items():
        if name not in by_name:
            raise where.error(f"no axis named {name!r}", f"quick.axis.{name}")
        wanted_labels = {label_of(v) for v in wanted} if isinstance(wanted, list) else {label_of(wanted)}
        points = tuple(p for p in by_name[name].points if p.label in wanted_labels)
        missing = sorted(wanted_labels - {p.label for p in points})
        if missing:
            raise where.error(f"not a value of the axis: {', '.join(missing)}", f"quick.axis.{name}")
        by_name[name] = Axis(name=name, points=points)
    return base, [by_name[a.name] for a in axes]


def _budget(value: Any, axes: Sequence[Axis], where: _Where) -> dict[str, Any]:
    """``[budget]``: an ε-ladder axis with ``inf``, a metric with a direction, a relative tolerance."""
    from dpaudit.sweep.budget import LOWER_IS_BETTER

    budget = _table(value, where, "budget")
    unknown = sorted(set(budget) - {"axis", "metric", "within"})
    if unknown:
        raise where.error("unknown key; [budget] has axis, metric and within", f"budget.{unknown[0]}")
    axis = next((a for a in axes if a.name == budget.get("axis")), None)
    if axis is None:
        raise where.error(f"must name an axis of the grid: {', '.join(a.name for a in axes)}", "budget.axis")
    if any(set(p.options) != {"target_epsilon"} for p in axis.points) or "inf" not in {p.label for p in axis.points}:
        raise where.error("must be a target_epsilon axis whose values include inf (the non-DP reference)", "budget.axis")
    if budget.get("metric") not in LOWER_IS_BETTER:
        raise where.error(f"must be one of {', '.join(LOWER_IS_BETTER)}", "budget.metric")
    within = budget.get("within")
    if isinstance(within, bool) or not isinstance(within, (int, float)) or not 0 <= within < 1:
        raise where.error(f"must be a number in [0, 1), got {within!r}", "budget.within")
    return budget


def _check_axes_disjoint(axes: Sequence[Axis], where: _Where) -> None:
    """Two axes setting the same option would make the cell depend on the axis order."""
    owner: dict[str, str] = {}
    for axis in axes:
        for key in {k for p in axis.points for k in p.options}:
            if key in owner:
                raise where.error(f"set by both axis {owner[key]!r} and axis {axis.name!r}", f"axis[{axis.name}].{key}")
            owner[key] = axis.name


def _exclude(rule: Any, index: int, axes: Sequence[Axis], where: _Where) -> dict[str, tuple[str, ...]]:
    rule = _table(rule, where, f"exclude[{index}]")
    labels = {a.name: {p.label for p in a.points} for a in axes}
    out = {}
    for name, value in rule.items():
        if name not in labels:
            raise where.error(f"no axis named {name!r}; axes: {', '.join(labels)}", f"exclude[{index}].{name}")
        out[name] = tuple(label_of(v) for v in (value if isinstance(value, list) else [value]))
    return out


def _origins(grid: Grid, cell: Cell) -> dict[str, str]:
    """Option → the file key that set it in this cell (for error messages)."""
    origin = {k: f"base.{k}" for k in grid.base}
    for axis in grid.axes:
        point = next(p for p in axis.points if p.label == cell.labels[axis.name])
        index = axis.points.index(point)
        origin.update({k: f"axis[{axis.name}].values[{index}].{k}" for k in point.options})
    return origin


_SCALAR_KINDS: dict[str, tuple[type, ...]] = {"float": (float, int), "int": (int,), "str": (str,), "bool": (bool,)}
_EXTRA_KINDS: dict[str, tuple[type, ...]] = {
    "base": (str,), "data": (str,), "dp": (bool,), "synth_n": (int,), "synth_seed": (int,),
    "categories": (list,), "mix": (list, str), "canaries": (int,),
}


def _expected_types(name: str) -> tuple[type, ...]:
    """The TOML types an option accepts, read from its config field's annotation."""
    from dpaudit.report.audit import AuditConfig

    if name in _EXTRA_KINDS:
        return _EXTRA_KINDS[name]
    annotations = {f.name: str(f.type) for cls in (TrainConfig, DPConfig) for f in fields(cls)}
    annotations.update({k: str(f.type) for f in fields(FedConfig) for k, v in FED_OPTIONS.items() if v == f.name})
    annotations.update({k: str(f.type) for f in fields(AuditConfig) for k, v in AUDIT_OPTIONS.items() if v == f.name})
    first = annotations[name].split("|")[0].strip()
    # An annotation this table does not know (a field added later) accepts any TOML value; its config validates it.
    return (list,) if first.startswith("tuple") else _SCALAR_KINDS.get(first, (str, int, float, bool, list))


def _check_option(key: str, value: Any, where: _Where, field_name: str) -> None:
    if key in _RESERVED:
        raise where.error("set by the sweep itself (use `seeds` / --seeds for the seed)", field_name)
    if key not in OPTIONS:
        raise where.error(f"unknown option {key!r}; options: {', '.join(OPTIONS)}", field_name)
    kinds = _expected_types(key)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        wanted = " or ".join(sorted({k.__name__.replace("list", "array") for k in kinds}))
        raise where.error(f"must be {wanted}, got {value!r}", field_name)


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _resolve_mix(synth: dict[str, Any]) -> dict[str, Any]:
    mix = synth.get("mix")
    if isinstance(mix, str):
        if mix not in MIX_NAMES:
            raise ConfigError(f"`mix` must be weights or one of {', '.join(MIX_NAMES)}, got {mix!r}")
        if mix == "uniform":
            from dpaudit.data.synth import CATEGORIES

            synth["mix"] = (1.0,) * len(synth.get("categories") or CATEGORIES)
        else:
            synth["mix"] = None  # the generator's default: No Robots' shares of the chosen categories
    return synth


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
