"""Markdown tables from the JSON lines written by train_step_benchmark.py (`--out FILE`).

    python benchmarks/results_table.py benchmarks/results/*.jsonl

One row per run: configuration, clips/s of each framework (train step, inference), the
JAX/PyTorch ratios, achieved model GFLOP/s, compile time and peak memory; then the attention
overhead of every non-ST-GCN run against the ST-GCN run of the same shape, dtype and device.
"""

from __future__ import annotations

import json
import sys

KINETICS_EPOCH_CLIPS = 240_000


def load(paths):
    """The harness's result lines; lines of the other benchmarks in results/ (gemm_ceiling,
    grad_precision: no "config"/"jax" record) are left out, with a count on stderr."""
    rows, other = [], 0
    for path in paths:
        with open(path) as f:
            for line in f:
                if line.strip().startswith("{"):
                    d = json.loads(line)
                    if "config" in d and "jax" in d:
                        rows.append(d)
                    else:
                        other += 1
    if other:
        print(f"({other} lines of other benchmarks left out)", file=sys.stderr)
    return rows


def _fmt(x, spec=".2f"):
    return "–" if x is None else format(x, spec)


def _mem(r):
    for key in ("peak_device_mib", "train_step_peak_rss_delta_mib"):
        if r.get(key) is not None and r[key] >= 0:  # negative: an early, flawed RSS method
            return r[key] / 1024
    return None


def shape_key(d):
    c = d["config"]
    return (c.get("backbone", "stgcn"), c["dataset"], c["frames"], c["batch"], c["persons"],
            c["dtype"], c["device"], d["jax"]["device"], c.get("precision"))


def model_name(c):
    """The row's model: the variant, prefixed with `agcn/` for the 2s-AGCN backbone."""
    return ("agcn/" if c.get("backbone", "stgcn") == "agcn" else "") + c["model"]


def main(paths):
    rows = load(paths)
    print("| model | data | T | batch | dtype | device | JAX train clips/s | torch train "
          "clips/s | train ratio | JAX infer clips/s | torch infer clips/s | infer ratio | "
          "JAX train GFLOP/s | JAX compile train+infer s | peak mem JAX / torch GiB |")
    print("|" + "---|" * 15)
    for d in rows:
        c, j, t = d["config"], d["jax"], d.get("torch", {})
        ratio = d.get("ratio_jax_over_torch", {})
        comp = sum(j.get(p, {}).get(k, 0) for p in ("train_compile", "infer_compile")
                   for k in ("lower_s", "compile_s"))
        print(f"| {model_name(c)}"
              f"{' (' + c['attention_impl'] + ')' if c.get('attention_impl') else ''}"
              f" | {c['dataset']} | {c['frames']} | {c['batch']} | {c['dtype']}"
              f"{' tf32' if c.get('precision') == 'tf32' and c['dtype'] == 'float32' else ''}"
              f" | {j['device']} | {_fmt(j['train']['clips_per_s'])}"
              f" | {_fmt(t.get('train', {}).get('clips_per_s'))} | {_fmt(ratio.get('train'))}"
              f" | {_fmt(j.get('infer', {}).get('clips_per_s'))}"
              f" | {_fmt(t.get('infer', {}).get('clips_per_s'))} | {_fmt(ratio.get('infer'))}"
              f" | {_fmt(j['train']['gflop_per_s'], '.0f')} | {_fmt(comp, '.1f')}"
              f" | {_fmt(_mem(j))} / {_fmt(_mem(t) if t else None)} |")
    base = {shape_key(d): d for d in rows if d["config"]["model"] == "stgcn"}
    lines = []
    for d in rows:
        c = d["config"]
        if "overhead_vs_baseline" in d:
            ov = d["overhead_vs_baseline"]
            flops = d["model_gflop_fwd_per_clip"] / d["jax_baseline"]["model_gflop_fwd_per_clip"]
            lines.append(f"| {model_name(c)} | {c['dataset']} T={c['frames']} b={c['batch']} "
                         f"{c['dtype']} {d['jax']['device']} | jax, interleaved with "
                         f"{c['baseline']} in one process | {100 * ov['train']:+.0f}% "
                         f"(inference {100 * ov.get('infer', float('nan')):+.0f}%) | "
                         f"{100 * (flops - 1):+.0f}% |")
            continue
        b = base.get(shape_key(d))
        if d["config"]["model"] == "stgcn" or b is None:
            continue
        for fw in ("jax", "torch"):
            if "train" in d.get(fw, {}) and "train" in b.get(fw, {}):
                over = b[fw]["train"]["clips_per_s"] / d[fw]["train"]["clips_per_s"] - 1
                lines.append(f"| {model_name(d['config'])} | {d['config']['dataset']} "
                             f"T={d['config']['frames']} b={d['config']['batch']} "
                             f"{d['config']['dtype']} {d['jax']['device']} | {fw}, separate "
                             f"runs | "
                             f"{100 * over:+.0f}% | "
                             f"{100 * (d['model_gflop_fwd_per_clip'] / b['model_gflop_fwd_per_clip'] - 1):+.0f}% |")  # noqa: E501
    if lines:
        print("\n| attention variant | shape | framework | train-step time vs ST-GCN | "
              "model FLOPs vs ST-GCN |\n|---|---|---|---|---|")
        print("\n".join(lines))
    for d in rows:
        c = d["config"]
        if c["dataset"] == "kinetics" and c["device"] == "gpu":
            for fw in ("jax", "torch"):
                if fw in d:
                    cps = d[fw]["train"]["clips_per_s"]
                    print(f"\nKinetics epoch ({KINETICS_EPOCH_CLIPS:,} clips, T={c['frames']}), "
                          f"{c['model']}, {fw}: {KINETICS_EPOCH_CLIPS / cps:.0f} s "
                          f"({cps:.0f} clips/s)")


if __name__ == "__main__":
    main(sys.argv[1:])
