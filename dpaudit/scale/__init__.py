"""Growing past one process: fan plain tasks out over Ray (:mod:`dpaudit.scale.tasks`) and pick the
device, dtype and quantization a base model runs in (:mod:`dpaudit.scale.device`).

Nothing here imports Ray on import; ``workers=1`` never imports it at all.
"""

from dpaudit.scale.tasks import FanOut, run_tasks

__all__ = ["FanOut", "run_tasks"]
