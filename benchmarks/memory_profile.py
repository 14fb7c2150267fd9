"""What an XLA program holds at its memory peak: the live buffers of the optimized schedule,
grouped by the op that made them.

    python benchmarks/memory_profile.py --device cpu --common batch=4,dtype=float32
    python benchmarks/memory_profile.py --device cpu --common batch=4,dtype=float32 \
        --variant st --variant am:model=am_stgcn --variant infer:mode=infer

Each `--variant` (step_profile's keys: the train step, or the eval forward with mode=infer) is
compiled with XLA's dumps on. The entry computation of the optimized HLO is a sequential
schedule; the buffer assignment lists the values packed into the preallocated temp buffer.
Each value lives from its defining instruction to its last use (or aliasing position) in that
schedule; the sweep finds the instruction where the most bytes are live and prints what is live
there, grouped by the op's source (fwd/bwd, module path with block numbers folded, op) and shape,
then the largest buffers with their live ranges. XLA's own `memory_analysis()` temp is printed
beside the peak: the difference is fragmentation in XLA's packing. Values defined inside called
computations (loop bodies) are not counted. Round 10 of benchmarks/README.md is this tool's
reading of the NTU train step. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import step_profile  # (same directory; needs the sys.path entry above)
import train_step_benchmark as harness

_DEF = re.compile(r"\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_VALUE = re.compile(r"\s*value: <(\d+) ([\w.\-]+)(?:\{[\d,]*\})? @\d+> "
                    r"\(size=(\d+),offset=(\d+)\): (\S+)")


def entry_schedule(hlo_text: str):
    """[(instruction name, op_name metadata)] of the ENTRY computation, in schedule order."""
    lines = hlo_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ENTRY"))
    order = []
    for line in lines[start + 1:]:
        if line.startswith("}"):
            break
        m = _DEF.match(line)
        if m:
            op = _OP_NAME.search(line)
            order.append((m.group(1), op.group(1) if op else ""))
    return order


def temp_values(assignment_text: str):
    """[(value id, defining instruction, bytes, shape)] of the preallocated temp buffer."""
    lines = assignment_text.splitlines()
    start = next((i for i, line in enumerate(lines) if "preallocated-temp" in line), None)
    if start is None:
        return []
    out = []
    for line in lines[start + 1:]:
        m = _VALUE.match(line)
        if not m:
            break
        out.append((int(m.group(1)), m.group(2), int(m.group(3)), m.group(5).split("{")[0]))
    return out


def value_uses(values_text: str):
    """{value id: names of the instructions that use it or alias it (its positions)}."""
    uses = {}
    for block in values_text.split("\n<")[1:]:
        vid = int(block.split(" ", 1)[0])
        head, _, tail = block.partition(" uses:")
        uses_text = tail.split(" from instruction:")[0]
        names = re.findall(r"^  ([\w.\-]+)(?:\{[\d,]*\})?$", head, re.MULTILINE)
        names += re.findall(r"^  ([\w.\-]+), operand", uses_text, re.MULTILINE)
        uses[vid] = names
    return uses


def live_ranges(order, values, uses):
    """[(first, last, bytes, name, shape, op_name)] for the temp values defined in ENTRY."""
    pos = {name: i for i, (name, _) in enumerate(order)}
    op_name = dict(order)
    ranges = []
    for vid, name, size, shape in values:
        if name not in pos:
            continue
        ends = [pos[u] for u in uses.get(vid, ()) if u in pos]
        ranges.append((pos[name], max([pos[name], *ends]), size, name, shape, op_name[name]))
    return ranges


def peak(ranges, n: int):
    """(bytes, schedule index) where the most bytes are live."""
    delta = [0] * (n + 1)
    for first, last, size, *_ in ranges:
        delta[first] += size
        delta[last + 1] -= size
    best, at, live = 0, 0, 0
    for i in range(n):
        live += delta[i]
        if live > best:
            best, at = live, i
    return best, at


def source_group(op_name: str) -> str:
    """'bwd block*/tcn_conv .. fft' from a jit op_name (step_profile's short form, blocks
    folded), or '(no source)' for XLA's own copies and broadcasts."""
    if not op_name:
        return "(no source)"
    return re.sub(r"block\d+", "block*", step_profile._short_source(op_name))


def analyse(dump_dir: Path, module: str, top: int = 25) -> dict:
    """The peak of the module whose name contains `module` in an XLA dump directory."""
    hlo = list(dump_dir.glob(f"*{module}*after_optimizations.txt"))
    if not hlo:
        raise FileNotFoundError(f"no optimized HLO for {module!r} in {dump_dir}")
    hlo_path = max(hlo, key=lambda p: p.stat().st_size)
    stem = str(hlo_path)[:-len(".txt")]
    order = entry_schedule(hlo_path.read_text())
    values = temp_values(Path(stem + "-buffer-assignment.txt").read_text())
    uses = value_uses(Path(stem + "-buffer-assignment-values.txt").read_text())
    ranges = live_ranges(order, values, uses)
    best, at = peak(ranges, len(order))
    live = [r for r in ranges if r[0] <= at <= r[1]]
    groups = collections.Counter()
    for _, _, size, _, shape, op_name in live:
        groups[(source_group(op_name), shape)] += size
    mib = 2 ** 20
    return {"peak_live_mib": best / mib, "peak_at": at, "schedule_length": len(order),
            "peak_instruction": order[at][0] if order else None,
            "peak_source": step_profile._short_source(order[at][1]) if order else None,
            "groups_at_peak": [{"mib": b / mib, "source": src, "shape": shape}
                               for (src, shape), b in groups.most_common()],
            "largest_at_peak": [{"mib": size / mib, "shape": shape, "name": name,
                                 "source": step_profile._short_source(op) if op else "",
                                 "live": [first, last]}
                                for first, last, size, name, shape, op in
                                sorted(live, key=lambda r: -r[2])[:top]]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", action="append", default=[],
                   help="NAME or NAME:key=value,... (step_profile's keys; default: one 'base')")
    p.add_argument("--common", default="", help="key=value,... applied to every variant")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--top", type=int, default=25, help="groups and buffers listed per variant")
    p.add_argument("--dump-dir", default=None, help="keep XLA's dumps here (default: a temp dir)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    dump_root = Path(args.dump_dir or tempfile.mkdtemp(prefix="memory_profile_"))
    # Dump only the optimized modules and their buffer assignment (no per-pass HLO).
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_dump_to={dump_root}"
                               " --xla_dump_hlo_pass_re=^$").strip()
    harness.configure_process(argparse.Namespace(device=args.device, threads=None,
                                                 triton_gemm=False, malloc="default"))
    import jax

    results = {"device": str(jax.devices()[0].device_kind), "jax": jax.__version__,
               "source": harness.source_revision(), "variants": {}}
    for name, cfg in step_profile.variant_specs(args.variant, args.common):
        prog = step_profile.variant_program(cfg)
        before = set(dump_root.iterdir())
        t0 = time.perf_counter()
        compiled = jax.jit(prog["fn"], donate_argnums=prog["donate"]).lower(
            *prog["args"]).compile()
        module = "jit_train_step" if cfg["mode"] == "train" else "jit_infer"
        new_dir = dump_root / name
        new_dir.mkdir(exist_ok=True)
        for path in set(dump_root.iterdir()) - before:  # this variant's files only
            if path.is_file():
                path.rename(new_dir / path.name)
        info = analyse(new_dir, module, args.top)
        info |= {"config": cfg, "compile_s": time.perf_counter() - t0,
                 "xla_temp_mib": harness._mem(compiled).get("temp_mib")}
        results["variants"][name] = info
        print(f"== {name}: peak {info['peak_live_mib']:.1f} MiB live at instruction "
              f"{info['peak_at']} of {info['schedule_length']} ({info['peak_source']}); "
              f"XLA temp {info['xla_temp_mib']:.1f} MiB", flush=True)
        print("   live at the peak, by source and shape (MiB):")
        for g in info["groups_at_peak"][:args.top]:
            print(f"   {g['mib']:9.1f}  {g['shape']:28s} {g['source']}")
        print("   largest buffers at the peak (MiB, [defined, last used]):")
        for b in info["largest_at_peak"]:
            print(f"   {b['mib']:9.1f}  {b['shape']:28s} {b['live']}  {b['source']}")
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
