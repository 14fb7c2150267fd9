"""Train-step variants side by side in one process, with a per-op device-time profile.

Each `--variant NAME:key=value,...` is one JAX train step (the project's
`amstgcn_jax.train_step.train_step`, state donated, AOT-compiled once) on a fixed random batch
resident on the device. All variants are compiled first, then timed in interleaved rounds
(A, B, C, A, B, C, ...), so they share the same machine state. Variants named in `--profile` are
then traced with `jax.profiler` and their device time is broken down per XLA op (fusion,
convolution, GEMM, custom call) with a one-line summary of what each op computes, read from the
optimized HLO. This is the tool behind the GPU tuning notes in benchmarks/README.md.

    python benchmarks/step_profile.py --device gpu --common dataset=ntu,batch=128,dtype=bfloat16 \
        --variant base --variant rbg:prng=rbg --variant kron:gcn_impl=kron --profile base

Variant keys: model (stgcn | am_stgcn | a placement name), dataset (ntu | kinetics), frames,
batch, persons, dtype, dropout, prng (threefry | rbg | unsafe_rbg: the key type the dropout
masks come from), tcn_impl, gcn_impl (one per block joined by '+'), activation_layout
(auto | NTVC | VNTC | per_block; 2s-AGCN: auto | NTVC | NVTC), bn_impl (auto | custom |
autodiff), block_output (auto | stored | fused), attention_impl, mode
(train: the train step | infer: the eval-mode forward, as the harness times it). The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_step_benchmark as harness  # (same directory; needs the sys.path entry above)

DEFAULTS = {"model": "stgcn", "backbone": "stgcn", "dataset": "ntu", "frames": 300,
            "batch": 128, "persons": 2, "dtype": "bfloat16", "dropout": None,
            "prng": "threefry", "tcn_impl": "auto", "gcn_impl": "auto",
            "activation_layout": "auto", "bn_impl": "auto", "block_output": "auto",
            "attention_impl": None, "mode": "train"}


def parse_spec(text: str) -> dict:
    out = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in DEFAULTS:
            raise SystemExit(f"unknown variant key {key!r}; known: {sorted(DEFAULTS)}")
        out[key] = value
    return out


def typed(spec: dict) -> dict:
    cfg = dict(DEFAULTS) | spec
    for key in ("frames", "batch", "persons"):
        cfg[key] = int(cfg[key])
    cfg["dropout"] = None if cfg["dropout"] in (None, "", "default") else float(cfg["dropout"])
    cfg["attention_impl"] = cfg["attention_impl"] or None
    if cfg["mode"] not in ("train", "infer"):
        raise SystemExit(f"mode must be train or infer, not {cfg['mode']!r}")
    if cfg["backbone"] not in ("stgcn", "agcn"):
        raise SystemExit(f"backbone must be stgcn or agcn, not {cfg['backbone']!r}")
    return cfg


def variant_specs(variants: list[str], common: str) -> list[tuple[str, dict]]:
    """[(name, typed config)] from `--variant NAME[:key=value,...]` texts (default: one
    'base') and the `--common` keys every variant starts from."""
    shared = parse_spec(common)
    specs = []
    for text in variants or ["base"]:
        name, _, rest = text.partition(":")
        specs.append((name, typed(shared | parse_spec(rest))))
    return specs


def default_device() -> str:
    """"cpu" or "gpu" for `--device`: what `JAX_PLATFORMS` names first, else "gpu" where an
    NVIDIA driver is visible. (A fixed "gpu" made the CPU commands in the READMEs fail with an
    opaque backend assertion unless `JAX_PLATFORMS=cpu` was set.)"""
    platforms = os.environ.get("JAX_PLATFORMS", "").strip()
    if platforms:
        return "cpu" if platforms.split(",")[0].strip() == "cpu" else "gpu"
    nvidia = Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None
    return "gpu" if nvidia else "cpu"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", action="append", default=[],
                   help="NAME or NAME:key=value,... (repeatable; default: one 'base')")
    p.add_argument("--common", default="", help="key=value,... applied to every variant")
    p.add_argument("--profile", default="", help="comma-separated variant names to trace")
    p.add_argument("--device", choices=("cpu", "gpu"), default=None,
                   help="default: JAX_PLATFORMS's first platform, else gpu where an NVIDIA "
                        "driver is visible, else cpu")
    p.add_argument("--malloc", choices=("default", "keep"), default="default",
                   help="keep: glibc keeps freed memory (amstgcn_jax.host_malloc)")
    p.add_argument("--iters", type=int, default=4, help="interleaved timed rounds")
    p.add_argument("--chunk", type=int, default=5, help="steps per timed round")
    p.add_argument("--top", type=int, default=30, help="ops listed per profile")
    p.add_argument("--budget-s", type=float, default=1e9,
                   help="stop compiling further variants after this many seconds")
    p.add_argument("--out", default=None, help="directory for results.json / profile_*.txt")
    args = p.parse_args(argv)
    args.device = args.device or default_device()
    return args


def variant_model(cfg: dict):
    """A variant's model, its `get_model` kwargs, and the dataset's joints and classes."""
    from amstgcn_jax import model as model_lib

    layout, v, num_classes, dropout = harness.dataset_settings(cfg["dataset"], cfg["backbone"])
    hargs = argparse.Namespace(model=cfg["model"], backbone=cfg["backbone"],
                               attention_impl=cfg["attention_impl"],
                               dtype=cfg["dtype"], tcn_impl=cfg["tcn_impl"],
                               gcn_impl=cfg["gcn_impl"],
                               activation_layout=cfg["activation_layout"],
                               bn_impl=cfg["bn_impl"], block_output=cfg["block_output"])
    kwargs = harness.jax_model_kwargs(hargs, {
        "num_classes": num_classes, "layout": layout,
        "dropout": dropout if cfg["dropout"] is None else cfg["dropout"]})
    return model_lib.get_model(**kwargs), kwargs, v, num_classes


def variant_program(cfg: dict) -> dict:
    """The function a variant runs and its arguments, not yet lowered: `fn(*args)` with
    `donate` argnums (train: `train_step(state, batch, rng)`, the state donated; infer: the
    eval forward), plus what the timing and the FLOP count need."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    model, kwargs, v, num_classes = variant_model(cfg)
    rs = np.random.default_rng(0)
    x_NMTVC = jnp.asarray(rs.standard_normal(
        (cfg["batch"], cfg["persons"], cfg["frames"], v, 3)).astype(np.float32))
    label_N = jnp.asarray(rs.integers(0, num_classes, cfg["batch"]).astype(np.int32))
    variables = jax.jit(lambda r: model.init({"params": r}, x_NMTVC[:1], train=False))(
        jax.random.PRNGKey(0))
    variables = harness.randomize_variables(dict(variables), 0)
    out = {"v": v, "num_classes": num_classes, "attention": kwargs["attention"],
           "flops": harness.forward_flops_counter(cfg["backbone"])}
    if cfg["mode"] == "infer":
        def infer(variables, x):
            return model.apply(variables, x, train=False)[0].astype(jnp.float32)
        return out | {"fn": infer, "args": (variables, x_NMTVC), "donate": (),
                      "flop_factor": 1}
    step_fn, state = harness.make_train_step(model, variables, 0.01)
    rng = (jax.random.PRNGKey(0) if cfg["prng"] == "threefry"
           else jax.random.key(0, impl=cfg["prng"]))
    batch = {"x": x_NMTVC, "label": label_N}
    return out | {"fn": step_fn, "args": (state, batch, rng), "donate": (0,), "flop_factor": 3,
                  "state": state, "batch": batch, "rng": rng}


def build_variant(name: str, cfg: dict):
    import jax

    prog = variant_program(cfg)
    t0 = time.perf_counter()
    compiled = jax.jit(prog["fn"], donate_argnums=prog["donate"]).lower(*prog["args"]).compile()
    info = {"config": cfg, "compile_s": time.perf_counter() - t0,
            "cost": harness._cost(compiled, cfg["batch"]), "memory": harness._mem(compiled),
            f"model_gflop_{cfg['mode']}_per_clip": prog["flop_factor"] * prog["flops"](
                prog["v"], cfg["frames"], cfg["persons"], prog["num_classes"],
                harness.attention_blocks(prog["attention"], strict=False)) / 1e9}
    if cfg["mode"] == "infer":
        holder = {}

        def run(n=1):
            for _ in range(n):
                holder["logits"] = compiled(*prog["args"])
            holder["logits"].block_until_ready()
    else:
        holder = {"state": prog["state"]}
        run = harness.step_runner(compiled, holder, prog["batch"], prog["rng"])

    t0 = time.perf_counter()
    run(2)  # first call + one warm step
    info["first_calls_s"] = time.perf_counter() - t0
    # (infer: the mean logit, a sanity value computed once here, outside the timed calls)
    info["loss"] = float(holder["loss"] if cfg["mode"] == "train" else holder["logits"].mean())
    return {"name": name, "info": info, "run": run, "hlo": compiled.as_text()}


# --------------------------------------------------------------------------------------------
# HLO summaries: what each op in the profile computes


_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(\([^=]*?\)|\S+)\s+([\w\-]+)\(")
_COMP = re.compile(r"^\s*(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")


def hlo_index(text: str):
    """{instruction name: (opcode, shape, called computation, custom-call target)} and
    {computation name: Counter of opcodes}."""
    instrs, comps, aliases, current = {}, {}, {}, None
    for line in text.splitlines():
        m = _COMP.match(line)
        if m and "=" not in line.split("{")[0]:
            current = m.group(1)
            comps[current] = collections.Counter()
            continue
        m = _INSTR.match(line)
        if not m:
            continue
        name, shape, opcode = m.groups()
        if current is not None:
            comps[current][opcode] += 1
        calls = re.search(r"calls=%?([\w.\-]+)", line)
        target = re.search(r'custom_call_target="([^"]+)"', line)
        kind = re.search(r"kind=(\w+)", line)
        source = re.search(r'op_name="([^"]+)"', line)
        instrs[name] = (opcode, shape, calls.group(1) if calls else None,
                        (target.group(1) if target else "") + (kind.group(1) if kind else ""),
                        _short_source(source.group(1)) if source else "")
        # Deduplicated fusions share one kernel, named after the representative.
        dedup = re.search(r'deduplicated_name="([^"]+)"', line)
        if dedup:
            aliases.setdefault(dedup.group(1), name)
    for alias, name in aliases.items():
        instrs.setdefault(alias, instrs[name])
    return instrs, comps


def _short_source(op_name: str) -> str:
    """'jit(train_step)/jvp(AMSTGCN)/block1/Dropout_0/jit(_bernoulli)/...' -> the module path
    and the last primitive, e.g. 'jvp block1/Dropout_0 .. add'."""
    parts = op_name.split("/")
    phase = ("bwd" if any(p.startswith("transpose(") for p in parts)
             else "fwd" if any(p.startswith("jvp(") for p in parts) else "step")
    mods = [p for p in parts[2:] if re.match(r"^(block\d+|attn_|gcn|tcn_|residual|data_bn|head|"
                                               r"Dropout|theta|phi|g$|out_)", p)]
    return f"{phase} {'/'.join(mods)} .. {parts[-1]}"


def describe(op: str, instrs, comps) -> str:
    key = op.lstrip("%")
    if key not in instrs:
        return ""
    opcode, shape, calls, extra, source = instrs[key]
    text = f"{opcode} {extra} -> {shape} [{source}]"
    if calls and calls in comps:
        ops = comps[calls]
        interesting = {k: c for k, c in ops.items() if k not in ("parameter", "constant",
                                                                  "get-tuple-element", "tuple")}
        text += " | " + " ".join(f"{k}x{c}" for k, c in sorted(
            interesting.items(), key=lambda kv: -kv[1])[:8])
    return text


def category(op: str, desc: str) -> str:
    d = desc.lower()
    if "cudnn$conv" in d or op.startswith("convolution") or "conv" in op and "custom" in d:
        return "conv"
    if "fmha" in d or "flash" in d or "dot_product_attention" in d:
        return "attention (fused)"
    fused = d.split(" | ")[1] if " | " in d else ""
    if ("gemm" in d or "cublas" in d or op.startswith(("dot", "gemm", "cublas"))
            or re.search(r"\b(dot|convolution)x\d", fused)):
        return "gemm"
    if "/dropout" in d or "rng" in d or "threefry" in d:
        return "dropout (rng, mask)"
    if " | " in d and "reduce" in d.split(" | ")[1]:
        return "fusion with reduction"
    if "transpose" in d.split(" | ")[0] or (" | " in d and d.split(" | ")[1].startswith(
            ("transposex", "copyx"))):
        return "transpose/copy"
    if d.startswith("fusion") or "fusion" in op:
        return "elementwise fusion"
    return "other"


def kernel_category(kernel: str, desc: str) -> str:
    k = kernel.lower()
    if "sdpa" in k or "flash" in k or "fmha" in k:
        return "attention (fused)"
    if "xmma" in k or "implicit_gemm" in k or "conv" in k:
        return "conv"
    if desc:
        return category(kernel, desc)
    if "nvjet" in k or "gemm" in k or "cutlass" in k or "cublas" in k:
        return "gemm"
    return "other"


def host_timeline(events, asynchronous=lambda op: False, settle_ns: int = 50_000):
    """Concurrency of XLA:CPU's traced thunks and the idle time after each.

    `events`: (start_ns, end_ns, op name) of every thunk, all threads. Returns (`running`,
    `idle_after`): `running[k]` = ns during which exactly k thunks were traced as running (k
    = 2 means both cores of this VM had one), `idle_after[op]` = ns of the gaps with none
    traced that are `op`'s: the last `asynchronous(op)` thunk to start since the previous gap
    of at least `settle_ns`, else the thunk that finished last before the gap. (Between two
    thunks the executor idles for a few microseconds, while an asynchronous dot goes on.)

    Why: XLA:CPU's Eigen dots (batched and complex GEMMs, and the products Eigen takes
    instead of YNNPACK) can complete asynchronously: their trace event ends when the
    contraction is enqueued, and the work goes on untraced while independent thunks run and
    until the dot's consumers start. In the ST-GCN NTU step block 7's complex GEMMs showed
    3-6 ms traced and 96-103 ms with nothing traced after them; alone the forward product
    takes 99-112 ms (benchmarks/README.md, "Round 21"). The per-op tables add each gap to
    its op."""
    points = sorted([(s, 1, i) for i, (s, _, _) in enumerate(events)]
                    + [(e, -1, i) for i, (_, e, _) in enumerate(events)])
    running, idle_after = collections.Counter(), collections.Counter()
    active, last_t, last_done, last_async = 0, None, None, None
    for t, delta, i in points:
        if last_t is not None:
            running[active] += t - last_t
            owner = last_async if last_async is not None else last_done
            if active == 0 and owner is not None:
                idle_after[events[owner][2]] += t - last_t
        if delta > 0 and active == 0 and last_t is not None and t - last_t >= settle_ns:
            last_async = None  # after a real gap: that async work has been waited for
        active += delta
        if delta > 0 and asynchronous(events[i][2]):
            last_async = i
        if delta < 0:
            last_done = i
        last_t = t
    return running, idle_after


def profile_variant(variant, steps: int, top: int, outdir: Path | None):
    import jax
    from jax.profiler import ProfileData

    tmp = tempfile.mkdtemp(prefix="step_profile_")
    variant["run"](1)
    with jax.profiler.trace(tmp):
        t0 = time.perf_counter()
        variant["run"](steps)
        wall = time.perf_counter() - t0
    files = sorted(Path(tmp).rglob("*.xplane.pb"))
    if not files:
        return {"error": "no xplane.pb written"}
    data = ProfileData.from_file(str(files[-1]))
    by_line, by_op, by_kernel = collections.Counter(), collections.Counter(), collections.Counter()
    instrs, comps = hlo_index(variant["hlo"])
    on_host = not any(p.name.startswith("/device:") for p in data.planes)
    host_events = []
    for plane in data.planes:
        if on_host and plane.name.startswith("/host:CPU"):
            # XLA:CPU with --xla_cpu_enable_xprof_traceme: one event per HLO thunk, on the
            # Eigen worker threads; everything else there is scheduling.
            for line in plane.lines:
                for e in line.events:
                    if e.name in instrs:
                        by_kernel[e.name] += e.duration_ns
                        host_events.append((e.start_ns, e.start_ns + e.duration_ns, e.name))
            continue
        if not plane.name.startswith("/device:"):
            continue
        for line in plane.lines:
            events = list(line.events)
            by_line[f"{plane.name} | {line.name}"] += sum(e.duration_ns for e in events)
            if line.name == "XLA Ops":
                for e in events:
                    by_op[e.name] += e.duration_ns
            elif line.name.startswith("Stream"):
                for e in events:
                    by_kernel[e.name[:120]] += e.duration_ns
    total_ops = sum(by_op.values()) or 1
    per_step_ms = {k: v / steps / 1e6 for k, v in by_line.items()}

    def eigen_dot(op):  # XLA:CPU's "dot" thunks run on Eigen; YNNPACK's are fusions
        return instrs[op][0] == "dot"

    running, idle_after = (host_timeline(host_events, eigen_dot) if host_events else ({}, {}))
    cats = collections.Counter()
    rows = []
    for op, ns in by_op.most_common():
        desc = describe(op, instrs, comps)
        cats[category(op, desc)] += ns
        rows.append((op, ns, desc))
    kernel_rows = []
    # On the host, each op's time includes the idle time after it (`host_timeline`).
    with_idle = collections.Counter({k: ns + idle_after.get(k, 0) for k, ns in by_kernel.items()})
    for k, ns in with_idle.most_common():
        hlo_name = re.sub(r"_(\d+)$", r".\1", k)  # kernel 'loop_pad_fusion_47' = HLO '.47'
        desc = describe(hlo_name if hlo_name in instrs else k, instrs, comps)
        kernel_rows.append((k, ns, desc))
        if not by_op:  # no "XLA Ops" line in this trace: categorise the kernels instead
            cats[kernel_category(k, desc)] += ns
    total_ops = total_ops if by_op else (sum(with_idle.values()) or 1)
    lines = [f"== profile {variant['name']}: {steps} steps, wall {wall / steps * 1e3:.2f} ms/step",
             "lines (ms/step): " + "; ".join(f"{k}: {v:.2f}" for k, v in per_step_ms.items())]
    if on_host:
        lines.append("host timeline (ms/step): " + ", ".join(
            f"{k} thunks running {ns / steps / 1e6:.1f}" for k, ns in sorted(running.items()))
            + "; idle after Eigen dots "
            f"{sum(ns for k, ns in idle_after.items() if eigen_dot(k)) / steps / 1e6:.1f}")
    lines.append("categories (ms/step, share of XLA-op time):")
    lines += [f"  {c:24s} {ns / steps / 1e6:8.2f}  {100 * ns / total_ops:5.1f}%"
              for c, ns in cats.most_common()]
    lines.append(f"top {top} XLA ops (ms/step, share):")
    lines += [f"  {ns / steps / 1e6:7.3f} {100 * ns / total_ops:5.1f}%  {op}: {desc[:220]}"
              for op, ns, desc in rows[:top]]
    lines.append(f"kernels (ms/step; {sum(with_idle.values()) / steps / 1e6:.2f} in all):")
    if on_host:
        # Measured: an op's time here includes any time it shared the cores with another
        # (a GEMM showed 191 ms in the step and ~100 ms alone); A/B the step, not the op.
        lines.append("  (XLA:CPU runs independent thunks concurrently: these times overlap and "
                     "rank ops, but an op's own cost needs an isolated or whole-step A/B; each "
                     "op's time includes the idle time after it, shown as '+ idle')")
    idle_ms = {k: ns / steps / 1e6 for k, ns in idle_after.items()}
    lines += [f"  {ns / steps / 1e6:7.3f}  {k[:90]}"
              + (f" (+ idle {idle_ms[k]:.1f})" if idle_ms.get(k, 0) >= 0.1 else "")
              + (f"  <- {desc[:200]}" if desc else "")
              for k, ns, desc in kernel_rows]
    report = "\n".join(lines)
    print("\n".join(lines[:48]), flush=True)
    if outdir:
        (outdir / f"profile_{variant['name']}.txt").write_text(report + "\n")
    return {"wall_ms_per_step": wall / steps * 1e3,
            "categories_ms_per_step": {c: ns / steps / 1e6 for c, ns in cats.items()},
            "host_thunks_running_ms_per_step": {k: ns / steps / 1e6 for k, ns in running.items()},
            "lines_ms_per_step": per_step_ms,
            "top_ops": [{"op": op, "ms_per_step": ns / steps / 1e6, "what": desc[:300]}
                        for op, ns, desc in rows[:top]]}


def main(argv=None):
    args = parse_args(argv)
    if args.device == "cpu" and args.profile:
        # Per-op trace events on XLA:CPU (off by default; they cost a little time).
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_cpu_enable_xprof_traceme=true").strip()
    harness.configure_process(argparse.Namespace(device=args.device, threads=None,
                                                 triton_gemm=False, malloc=args.malloc))
    import jax

    t_start = time.perf_counter()
    outdir = Path(args.out) if args.out else None
    if outdir:
        outdir.mkdir(parents=True, exist_ok=True)
    specs = variant_specs(args.variant, args.common)
    variants, results = [], {"device": str(jax.devices()[0].device_kind),
                             "jax": jax.__version__, "xla_flags": os.environ.get("XLA_FLAGS", ""),
                             "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
                             "source": harness.source_revision(), "variants": {}}
    for name, cfg in specs:
        if time.perf_counter() - t_start > args.budget_s:
            print(f"== skip {name}: budget spent", flush=True)
            continue
        try:
            var = build_variant(name, cfg)
        except Exception as e:  # noqa: BLE001  (one bad variant must not cost the others)
            print(f"== {name} failed: {e!r}"[:2000], flush=True)
            results["variants"][name] = {"config": cfg, "error": repr(e)[:2000]}
            continue
        print(f"== built {name}: compile {var['info']['compile_s']:.1f} s, "
              f"loss {var['info']['loss']:.4f}", flush=True)
        variants.append(var)
        results["variants"][name] = var["info"]
    times = {v["name"]: [] for v in variants}
    for _ in range(args.iters):
        for var in variants:
            t0 = time.perf_counter()
            var["run"](args.chunk)
            times[var["name"]].append((time.perf_counter() - t0) / args.chunk)
    for var in variants:
        info, sec = var["info"], sorted(times[var["name"]])
        med = sec[len(sec) // 2]
        info["step_s_median"], info["step_s_min"] = med, sec[0]
        info["clips_per_s"] = info["config"]["batch"] / med
        gflop = info[f"model_gflop_{info['config']['mode']}_per_clip"]
        info["model_tflop_per_s"] = gflop * info["clips_per_s"] / 1e3
        print(f"{var['name']:28s} {info['clips_per_s']:9.1f} clips/s  step {med * 1e3:8.2f} ms "
              f"(min {sec[0] * 1e3:.2f})  {info['model_tflop_per_s']:6.1f} TFLOP/s  "
              f"compile {info['compile_s']:.1f} s", flush=True)
    for name in filter(None, args.profile.split(",")):
        var = next((v for v in variants if v["name"] == name), None)
        if var is None:
            continue
        try:
            results["variants"][name]["profile"] = profile_variant(var, 3, args.top, outdir)
        except Exception as e:  # noqa: BLE001  (the timings above are still reported)
            print(f"== profile {name} failed: {e!r}", flush=True)
    results["wall_s"] = time.perf_counter() - t_start
    line = json.dumps(results, default=str)
    if outdir:
        (outdir / "results.json").write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
