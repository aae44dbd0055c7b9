"""What every empirical lower bound on ε reports, whichever test produced it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class LowerBound:
    """ε_lb holds with probability ``confidence`` at ``delta``; subclasses add how it was found.

    ``epsilon`` is the common name the comparator reads from bounds and estimates alike.
    """

    epsilon_lb: float
    confidence: float
    delta: float

    method: ClassVar[str]
    kind: ClassVar[str] = "bound"

    @property
    def epsilon(self) -> float:
        return self.epsilon_lb

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "kind": self.kind, **{f.name: getattr(self, f.name) for f in fields(self)}}
