"""The output-directory rule: dpaudit never deletes or overwrites what it did not create.

Every command that writes a directory (``train``, ``audit``, ``attack --save-scores``,
``compare --out``, ``demo --runs/--out``, ``data synth`` and any new one) calls
:func:`prepare_output_dir` before doing any work, then writes through
:func:`dpaudit.io.atomic_dir`:

- a missing or empty target is fine (it is created by the atomic write);
- a target that dpaudit wrote before, recognised by its own marker file (the training card, the
  ``report.json``, the demo's stamp, ...) or by holding nothing but the command's own file names,
  is replaced only with ``--overwrite``;
- any other non-empty target (a file, the user's own folder) is refused, whatever the flags;
- a target that holds one of the command's own inputs is refused too, even with ``--overwrite``
  (replacing it would delete the data being read).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from dpaudit.errors import InputError

OVERWRITE_FLAG = "--overwrite"


def _names(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def is_dpaudit_output(path: str | Path, *, marker: str | Sequence[str], own_files: Sequence[str] = ()) -> bool:
    """True if ``path`` is a directory that dpaudit wrote: it holds one of the ``marker`` files (or
    folders), or it is not empty and holds nothing but ``own_files`` (e.g. a committed ``report.md``)."""
    path = Path(path)
    if not path.is_dir():
        return False
    markers = _names(marker)
    if any((path / name).exists() for name in markers):
        return True
    names = {p.name for p in path.iterdir()}
    return bool(names) and bool(own_files) and names <= {*own_files, *markers}


def prepare_output_dir(
    path: str | Path,
    *,
    marker: str | Sequence[str],
    overwrite: bool,
    inputs: Iterable[str | Path] = (),
    own_files: Sequence[str] = (),
    own_subdirs: str | Sequence[str] = (),
    option: str = "--out",
) -> Path:
    """Check that dpaudit may write the directory ``path``; return it resolved (absolute).

    Call it before any expensive work, so that a refusal costs nothing. It only checks: the
    caller writes with :func:`dpaudit.io.atomic_dir`, which replaces the target whole.

    ``marker``: the file name(s) by which this command recognises its own earlier output
    (e.g. ``"dpaudit.json"`` for an adapter, ``"report.json"`` for a report).
    ``overwrite``: the user passed ``--overwrite``; needed to replace an earlier output.
    ``inputs``: files or directories the command reads; a target containing one is refused.
    ``own_files``: the names this command writes; a target holding only these counts as its earlier
    output even without the marker (the committed example reports hold only ``report.md``).
    ``own_subdirs``: marker(s) of dpaudit outputs that may sit inside the target and that the command
    leaves alone (the report directories beside ``compare --out``'s files); they do not block it.
    ``option``: the option that named ``path``, for the message (``--out``, ``--runs``, ...).

    Raises :class:`InputError` (one line, exit 2) naming the path and the way out.
    """
    target = Path(path).expanduser().resolve()
    for item in inputs:
        source = Path(item).expanduser().resolve()
        if source == target or target in source.parents:
            raise InputError(
                f"holds {source.name}, an input of this command; choose another {option} directory", path=target
            )
    if not target.exists():
        return target
    if not target.is_dir():
        raise InputError(f"exists and is not a directory; choose another {option}", path=target)
    entries = sorted(p.name for p in target.iterdir() if not (own_subdirs and is_dpaudit_output(p, marker=own_subdirs)))
    if is_dpaudit_output(target, marker=marker) or (entries and set(entries) <= {*own_files, *_names(marker)}):
        if overwrite:
            return target
        raise InputError(
            f"holds an earlier dpaudit output; pass {OVERWRITE_FLAG} to replace it, or choose another {option}",
            path=target,
        )
    if not entries:
        return target
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise InputError(
        f"holds files dpaudit did not write ({shown}); choose an empty or new {option} directory "
        f"({OVERWRITE_FLAG} never replaces them)",
        path=target,
    )
