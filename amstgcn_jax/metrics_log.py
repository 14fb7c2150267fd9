"""Where training metrics go: a JSONL log, TensorBoard event files and tqdm progress bars.

`metrics.jsonl` holds one JSON object per write (`{"step": ..., "train/loss": ..., ...}`),
appended across restarts; readers keep the last record of a step. Only process 0 writes.
"""

import json
import math
import time
from pathlib import Path

import jax
import numpy as np
from absl import logging

METRICS_FILE = "metrics.jsonl"


def _to_python(v):
    v = np.asarray(v)
    return v.item() if v.ndim == 0 else v.tolist()


class MetricsLogger:
    """Writes scalar metrics to `<workdir>/metrics.jsonl` and TensorBoard (`<workdir>/tb/`)."""

    def __init__(self, workdir, *, tensorboard: bool = True):
        self.active = jax.process_index() == 0
        self.path = Path(workdir) / METRICS_FILE
        self._tb = None
        if self.active:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a")
            if tensorboard:
                try:
                    from tensorboardX import SummaryWriter
                except ImportError:
                    logging.warning("tensorboardX is not installed: no TensorBoard event files "
                                    "(metrics still go to %s)", self.path)
                else:
                    self._tb = SummaryWriter(str(Path(workdir) / "tb"))

    def write(self, step: int, metrics: dict) -> None:
        if not self.active:
            return
        record = {"step": int(step), "time": time.time()}
        record.update({k: _to_python(v) for k, v in metrics.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in record.items():
                if k not in ("step", "time") and isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, int(step))

    def close(self) -> None:
        if self.active:
            self._file.close()
            if self._tb is not None:
                self._tb.close()


def read_metrics(path) -> list[dict]:
    """Records of a `metrics.jsonl` (file or its workdir), last write per (step, keys) kept."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    latest = {}
    with path.open() as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                keys = tuple(sorted(k for k in rec if k not in ("step", "time")))
                latest[(rec["step"], keys)] = rec
    return sorted(latest.values(), key=lambda r: r["step"])


class _NoBar:
    """Stands in for tqdm where it is not installed."""

    def update(self, n=1):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def progress_bar(total: int, initial: int = 0, desc: str = "train"):
    """A tqdm bar for the step loop (disabled on processes other than 0)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True,
                disable=jax.process_index() != 0, mininterval=1.0)
