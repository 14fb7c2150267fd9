"""The harness flags of the fastest train-step variant in a `step_profile.py` results file.

    python benchmarks/pick_variant.py OUT/prof/results.json ntu_   # -> --activation-layout ...

Only variants whose name starts with the prefix and that differ from the first such variant
in model-formulation keys alone (layout, graph/temporal conv, BatchNorm backward, attention
impl) are candidates: a faster variant with another batch, dropout or model is not the same
benchmark. Prints the flags (empty for the defaults) and, on stderr, which variant won and by
how much.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import step_profile  # (same directory; needs the sys.path entry above)

FLAGS = {"activation_layout": "--activation-layout", "gcn_impl": "--gcn-impl",
         "tcn_impl": "--tcn-impl", "attention_impl": "--attention-impl",
         "bn_impl": "--bn-impl", "block_output": "--block-output"}
DEFAULT_VALUES = {key: step_profile.DEFAULTS[key] for key in FLAGS}


def pick(results: dict, prefix: str) -> tuple[str, list[str], float]:
    """(name, harness flags, speed-up over the first candidate) of the fastest candidate."""
    timed = [(name, info) for name, info in results["variants"].items()
             if name.startswith(prefix) and "clips_per_s" in info]
    if not timed:
        raise SystemExit(f"no timed variant named {prefix}* in the results")
    base_cfg = timed[0][1]["config"]

    def comparable(cfg):
        return all(cfg.get(k) == v for k, v in base_cfg.items() if k not in FLAGS)

    name, info = max(((n, i) for n, i in timed if comparable(i["config"])),
                     key=lambda item: item[1]["clips_per_s"])
    flags = []
    for key, flag in FLAGS.items():
        value = info["config"].get(key, DEFAULT_VALUES[key])
        if value != DEFAULT_VALUES[key]:
            flags += [flag, str(value)]
    return name, flags, info["clips_per_s"] / timed[0][1]["clips_per_s"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        raise SystemExit("usage: pick_variant.py RESULTS_JSON NAME_PREFIX")
    with open(argv[0]) as f:
        results = json.loads(f.read().strip().splitlines()[-1])
    name, flags, gain = pick(results, argv[1])
    print(f"picked {name} ({gain:.3f}x the first {argv[1]}* variant): {' '.join(flags)}",
          file=sys.stderr)
    print(" ".join(flags))


if __name__ == "__main__":
    main()
