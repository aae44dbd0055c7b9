"""The DP-LoRA paper's experiments, shipped as grid files (``dpaudit/sweep/grids/*.toml``).

A preset is an ordinary grid: ``dpaudit sweep --print-preset NAME > my.toml`` writes it so that it
can be edited and run with ``dpaudit sweep my.toml``. Each has a ``[quick]`` size for the tiny base.
"""

from __future__ import annotations

from importlib import resources

from dpaudit.errors import ConfigError
from dpaudit.sweep.grid import Grid, parse_grid

PRESET_PACKAGE = "dpaudit.sweep.grids"


def preset_names() -> list[str]:
    """Every shipped preset, in the order the paper presents them."""
    order = ("table1", "epsilon", "sampling", "diversity", "rank", "clipping", "federated")
    found = sorted(p.name[:-5] for p in resources.files(PRESET_PACKAGE).iterdir() if p.name.endswith(".toml"))
    return [n for n in order if n in found] + [n for n in found if n not in order]


def preset_text(name: str) -> str:
    """The TOML text of preset ``name`` (an unknown name lists the presets)."""
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}", field="preset")
    return resources.files(PRESET_PACKAGE).joinpath(f"{name}.toml").read_text(encoding="utf-8")


def load_preset(name: str, *, quick: bool = False) -> Grid:
    return parse_grid(preset_text(name), source=f"preset:{name}", quick=quick)
