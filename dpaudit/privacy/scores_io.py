"""The scores CSV (``dpaudit attack --save-scores DIR`` writes one ``<attack>.csv`` per attack).

Format: a header ``id,member,score`` (columns in any order, extra columns ignored), then one row
per record: ``member`` is 1 or 0, ``score`` a finite number, higher = more likely a member.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "loss.csv"
>>> _ = write_scores_csv(path, ["a", "b"], [1, 0], [0.5, -1.25])
>>> print(path.read_text(), end="")
id,member,score
a,1,0.5
b,0,-1.25
>>> ids, labels, scores = read_scores_csv(path)
>>> ids, labels.tolist(), scores.tolist()
(['a', 'b'], [1, 0], [0.5, -1.25])
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dpaudit.errors import InputError, MissingFileError
from dpaudit.io import write_text_atomic

SCORES_MARKER = "scores.json"
"""Written beside the CSVs by ``attack --save-scores``: marks the directory as dpaudit's own."""

COLUMNS = ("id", "member", "score")


def write_scores_csv(
    path: str | Path, ids: Sequence[str], labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> Path:
    """Write the scores CSV atomically (floats at full precision, so reading back is exact)."""
    ids = [str(i) for i in ids]
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if not (len(ids) == y.shape[0] == s.shape[0]) or y.ndim != 1 or s.ndim != 1:
        raise InputError(
            f"ids, labels and scores must be 1-D and of one length, got {len(ids)}, {y.shape}, {s.shape}", path=path
        )
    if not np.all((y == 0) | (y == 1)):
        raise InputError("labels must be 0 or 1", path=path, field="member")
    if not np.all(np.isfinite(s)):
        raise InputError("scores must be finite", path=path, field="score")
    if len(set(ids)) != len(ids):
        raise InputError("ids must be unique", path=path, field="id")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for rid, label, score in zip(ids, y.tolist(), s.tolist(), strict=True):
        writer.writerow((rid, int(label), repr(float(score))))
    return write_text_atomic(path, buffer.getvalue())


def read_scores_csv(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read ``(ids, labels (n,) int8, scores (n,) float64)``; bad input names file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"No scores file at {path}. Run `dpaudit attack --save-scores DIR` first.")
    ids: list[str] = []
    labels: list[int] = []
    scores: list[float] = []
    seen: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise InputError("empty file; expected a header 'id,member,score'", path=path, line=1)
        header = [h.strip() for h in header]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise InputError(
                f"header lacks {', '.join(missing)}; expected 'id,member,score', got {','.join(header)!r}",
                path=path,
                line=1,
                field=missing[0],
            )
        col = {c: header.index(c) for c in COLUMNS}
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise InputError(f"expected {len(header)} fields, got {len(row)}", path=path, line=line)
            rid = row[col["id"]].strip()
            if not rid:
                raise InputError("empty id", path=path, line=line, field="id")
            if rid in seen:
                raise InputError(f"duplicate id {rid!r} (first on line {seen[rid]})", path=path, line=line, field="id")
            seen[rid] = line
            member = row[col["member"]].strip()
            if member not in ("0", "1"):
                raise InputError(f"must be 1 or 0, got {member!r}", path=path, line=line, field="member")
            raw = row[col["score"]].strip()
            try:
                score = float(raw)
            except ValueError:
                raise InputError(f"not a number: {raw!r}", path=path, line=line, field="score") from None
            if not math.isfinite(score):
                raise InputError(f"must be finite, got {raw!r}", path=path, line=line, field="score")
            ids.append(rid)
            labels.append(int(member))
            scores.append(score)
    if not ids:
        raise InputError("no rows after the header", path=path)
    return ids, np.asarray(labels, dtype=np.int8), np.asarray(scores, dtype=np.float64)


def read_scores(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (scores, labels)}`` from one CSV (name = its stem) or every ``*.csv`` of a directory."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.csv"))
        if not files:
            raise MissingFileError(f"No *.csv scores in {path}. Run `dpaudit attack --save-scores {path}` first.")
    elif path.is_file():
        files = [path]
    else:
        raise MissingFileError(f"No scores at {path}. Run `dpaudit attack --save-scores DIR` first.")
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for file in files:
        _, labels, scores = read_scores_csv(file)
        out[file.stem] = (scores, labels)
    return out
