"""Side-by-side JAX vs PyTorch benchmark of the ST-GCN / AM-STGCN train step and inference.

Builds the SAME architecture with the SAME weights twice: our Flax model
(`amstgcn_jax.model.get_model`) and the PyTorch baseline in `benchmarks/torch_stgcn.py`
(upstream st-gcn formulation, upstream state_dict keys), the weights moved with
`amstgcn_jax.convert.flax_to_torch`; with `--backbone agcn`, 2s-AGCN's one-stream model against
`benchmarks/torch_agcn.py` (upstream 2s-AGCN formulation and keys, weights moved with
`amstgcn_jax.agcn_convert.flax_to_torch`). Both run the same shapes, dtype and optimizer
(SGD momentum 0.9 Nesterov, coupled weight decay 1e-4, cross-entropy, BN in train mode,
dropout as configured) on one fixed synthetic batch resident on the device, so the figures are
the model step alone (no input pipeline). Timed rounds alternate A, B, A, B, ...; compile /
first-call time is excluded from throughput and reported separately.

    python benchmarks/train_step_benchmark.py --model am_stgcn --dataset ntu --frames 300 \
        --batch 4 --iters 3

The last line printed is one JSON object with every figure (see benchmarks/README.md).
torch is optional (`--skip-torch`); nothing in `amstgcn_jax` imports this file.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS = {  # layout, joints, classes, default dropout (upstream configs)
    "ntu": ("ntu-rgb+d", 25, 60, 0.5),
    "kinetics": ("openpose", 18, 400, 0.0),
}


def dataset_settings(dataset: str, backbone: str = "stgcn"):
    """`DATASETS[dataset]` for a backbone: 2s-AGCN's default dropout is 0 (upstream has none;
    ST-GCN's is inside its blocks)."""
    layout, v, num_classes, dropout = DATASETS[dataset]
    return layout, v, num_classes, 0.0 if backbone == "agcn" else dropout


BLOCKS = ((3, 64, 1), (64, 64, 1), (64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1),
          (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 256, 1))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", choices=("stgcn", "agcn"), default="stgcn",
                   help="agcn: 2s-AGCN's one-stream model against benchmarks/torch_agcn.py "
                        "(upstream settings: no dropout unless --dropout, data BN over M*V*C)")
    p.add_argument("--model", default="stgcn",
                   help="stgcn | am_stgcn (the AM-STGCN default, convt_l3x3) | any "
                        "amstgcn_jax.model.VARIANTS name or placement string, e.g. convs_l3x3")
    p.add_argument("--attention-impl", choices=("reference", "chunked", "xla", "cudnn"),
                   default=None, help="NonLocalBlock attention_impl (default: the model's auto "
                                      "choice; cudnn = flash, GPU bf16/fp16 only)")
    p.add_argument("--tcn-impl", choices=("auto", "conv", "matmul", "fft"), default="auto",
                   help="TemporalConv impl (auto: fft for fp32 CPU training and for wide "
                        "stride-1 blocks in CPU inference, else conv)")
    p.add_argument("--activation-layout", choices=("auto", "NTVC", "VNTC", "NVTC", "per_block"),
                   default="auto",
                   help="the blocks' activation layout (auto: per block by the graph conv, "
                        "NTVC for Kronecker, VNTC for sparse, for factored VNTC on CPU and NTVC "
                        "on GPU; per_block: factored VNTC too; "
                        "amstgcn_jax.model.block_layouts_for; 2s-AGCN: auto | NTVC | NVTC, "
                        "auto = NVTC in CPU inference without attention)")
    p.add_argument("--gcn-impl", default="auto",
                   help="graph conv: auto | factored | kron | sparse, or one per block joined by "
                        "'+' (amstgcn_jax.model.gcn_impls_for; auto: sparse on CPU, kron up to "
                        "V·C = 4608 and sparse beyond on GPU)")
    p.add_argument("--bn-impl", choices=("auto", "custom", "autodiff"), default="auto",
                   help="the backbone BatchNorms' training backward (auto: written out on CPU, "
                        "autodiff elsewhere; amstgcn_jax.layers.BN_IMPLS)")
    p.add_argument("--block-output", choices=("auto", "stored", "fused"), default="auto",
                   help="whether each block's output is stored once or recomputed by XLA in "
                        "its consumers (auto: stored on CPU; amstgcn_jax.layers.store)")
    p.add_argument("--dataset", choices=sorted(DATASETS), default="ntu")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--persons", type=int, default=2)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--precision", choices=("default", "highest", "tf32"), default="default",
                   help="float32 matmul/conv precision pinned on BOTH sides: highest (true "
                        "fp32) or tf32; default leaves each framework's default (on CPU both "
                        "are full fp32; use tf32/highest for float32 GPU comparisons)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--malloc", choices=("default", "keep"), default="default",
                   help="keep: glibc keeps freed memory for reuse (amstgcn_jax.host_malloc, "
                        "what train.py does on CPU); applies to the whole process, so to "
                        "BOTH frameworks")
    p.add_argument("--dropout", type=float, default=None, help="default: the dataset's config")
    p.add_argument("--iters", type=int, default=3, help="timed rounds (each framework)")
    p.add_argument("--chunk", type=int, default=1, help="steps per timed round")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps after compile")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--baseline", default=None,
                   help="also build this JAX model (e.g. stgcn) and interleave its steps with "
                        "--model's: the attention overhead measured under the same load")
    p.add_argument("--triton-gemm", action="store_true",
                   help="keep XLA:GPU's Triton GEMM fusion (off by default: jax 0.11.2 aborts "
                        "compiling this model in GemmFusion, openxla/xla#47381)")
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--skip-infer", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also append the JSON line to this file")
    return p.parse_args(argv)


def configure_process(args):
    """Environment that must be set before jax/torch are imported."""
    if args.device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
        if args.threads:
            cpus = sorted(os.sched_getaffinity(0))[: args.threads]
            os.sched_setaffinity(0, cpus)
    else:
        os.environ.setdefault("JAX_PLATFORMS", "cuda")
        # Both frameworks share the GPU: no 75% preallocation by XLA.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        flags = os.environ.get("XLA_FLAGS", "")
        if not args.triton_gemm and "xla_gpu_enable_triton_gemm" not in flags:
            # jax 0.11.2 / H100: every config of this model aborted in XLA's GemmFusion pass
            # ("triton_tiling_propagation.cc: Check failed: subdim_size_accumulator ==
            # dim_size (38400 vs. 300)", N*T vs T; openxla/xla#47381). The pass only runs
            # with Triton GEMMs enabled; without it GEMMs go to cuBLAS.
            os.environ["XLA_FLAGS"] = (flags + " --xla_gpu_enable_triton_gemm=false").strip()
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    if args.malloc == "keep":
        from amstgcn_jax import host_malloc

        if not host_malloc.keep_freed_memory():
            raise SystemExit("--malloc keep needs Linux with glibc")


# --------------------------------------------------------------------------------------------
# FLOPs (analytic, PERF.md §1.2 formulas; 1 MAC = 2 FLOP)


TORCH_NONLOCAL_OPTIONS = ("mode", "inner_ratio", "pool_size")


def attention_blocks(placements, strict=True) -> dict[int, list[tuple[str, dict]]]:
    """Normalized model placements (paper layer L = block L) -> {block: [(where, options)]}.

    Keeps the non-local options the PyTorch block implements (attention_impl is a JAX-only
    execution choice); other kinds or options raise when `strict`, else are left out.
    """
    out: dict[int, list[tuple[str, dict]]] = {}
    for kind, where, layer, count, options in placements:
        options = dict(options)
        unsupported = set(options) - set(TORCH_NONLOCAL_OPTIONS) - {"attention_impl"}
        if kind != "nonlocal" or unsupported:
            if strict:
                raise SystemExit(f"the PyTorch baseline implements only the non-local block "
                                 f"with options {TORCH_NONLOCAL_OPTIONS}, not {kind!r} "
                                 f"{sorted(unsupported)}; use --skip-torch")
            continue
        options = {k: v for k, v in options.items() if k in TORCH_NONLOCAL_OPTIONS}
        out.setdefault(layer, []).extend([(where, options)] * count)
    return out


def forward_flops_per_clip(v, t, m, num_classes, attention, k=3, ks=9):
    """Model FLOPs of one forward pass per clip: convs + graph einsum + non-local blocks.

    Non-local: θ/φ/g/out 1x1 convs (φ, g before pooling) plus q·kᵀ and attn·g over the pooled
    keys; softmax, pooling, BN and other elementwise work is not counted (as for the backbone).
    """
    macs = 0
    t_in = t
    for i, (cin, cout, s) in enumerate(BLOCKS):
        t_out = (t_in - 1) // s + 1
        macs += cin * k * cout * t_in * v + k * cout * t_in * v * v + cout * cout * ks * t_out * v
        if i > 0 and (cin != cout or s != 1):
            macs += cin * cout * t_out * v
        macs += _attention_macs(attention.get(i, ()), cout, t_in, t_out, v)
        t_in = t_out
    macs = macs * m + 256 * num_classes
    return 2 * macs


def _attention_macs(entries, c, t_in, t_out, v):
    """MACs of one block's non-local blocks on `c` channels (ConvS at t_in frames, ConvT at
    t_out)."""
    macs = 0
    for where, options in entries:
        mode = options.get("mode", "spatial" if where == "convs" else "spatiotemporal")
        p = int(options.get("pool_size", 2))
        inner = max(1, int(c * float(options.get("inner_ratio", 0.5))))
        tt = t_in if where == "convs" else t_out
        wt, wv = {"spatial": (1, p), "temporal": (p, 1), "spatiotemporal": (p, p)}[mode]
        tk, vk = -(-tt // wt), -(-v // wv)
        # positions attended per query: joints of the frame / frames of the joint / all
        keys = {"spatial": vk, "temporal": tk, "spatiotemporal": tk * vk}[mode]
        macs += 4 * c * inner * tt * v + 2 * tt * v * keys * inner
    return macs


def agcn_forward_flops_per_clip(v, t, m, num_classes, attention, k=3, ks=9):
    """Model FLOPs of one 2s-AGCN (one stream) forward pass per clip, counted as
    `forward_flops_per_clip` counts ST-GCN's: per block the conv_a/conv_b embeddings (C/4
    channels per subset), the C_k logits, the aggregation with A + B + C (per clip), conv_d,
    the `down` 1x1 conv where widths change, the (9, 1) conv and the strided residual conv,
    plus the non-local blocks; softmax, BN and elementwise work are not counted."""
    from amstgcn_jax.agcn import AGCN_BLOCKS, EMBED_RATIO

    macs, t_in, cin = 0, t, 3
    for i, (cout, s, residual) in enumerate(AGCN_BLOCKS):
        t_out = (t_in - 1) // s + 1
        embed = cout // EMBED_RATIO
        macs += 2 * k * cin * embed * t_in * v  # conv_a, conv_b
        macs += k * v * v * embed * t_in  # theta^T phi
        macs += k * cin * v * v * t_in  # x (A_k + B_k + C_k)
        macs += k * cin * cout * t_in * v  # conv_d
        macs += (cin != cout) * cin * cout * t_in * v  # down
        macs += cout * cout * ks * t_out * v  # tcn
        macs += (residual and (cin != cout or s != 1)) * cin * cout * t_out * v
        macs += _attention_macs(attention.get(i, ()), cout, t_in, t_out, v)
        t_in, cin = t_out, cout
    return 2 * (macs * m + 256 * num_classes)


def forward_flops_counter(backbone: str):
    """The analytic forward FLOP count per clip of a backbone ("stgcn" | "agcn")."""
    return agcn_forward_flops_per_clip if backbone == "agcn" else forward_flops_per_clip


# --------------------------------------------------------------------------------------------
# Host memory: peak RSS of one step, measured by resetting VmHWM (Linux /proc/self/clear_refs).


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def measure_rss_peak(fn):
    """Runs fn() once; returns (peak RSS during it minus RSS before it, process RSS peak), MiB.

    The peak is reset right before fn() (Linux `clear_refs` 5), after a GC, a pause for
    asynchronous frees of the previous step and `malloc_trim`, so the delta is the step's
    own working memory on top of the resident state (None where the reset is unavailable).
    """
    gc.collect()
    time.sleep(1.0)
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    before = _status_kb("VmRSS")
    fn()
    peak = _status_kb("VmHWM")
    delta = (peak - before) / 1024 if reset else None
    return delta, peak / 1024


def timed_rounds(fns: dict, iters: int, pause_s: float = 0.0):
    """Alternates the callables (A, B, A, B, ...); each returns after its work has finished.
    `pause_s` idles before each timed call (so other libraries' worker threads stop spinning)."""
    times = {name: [] for name in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            if pause_s:
                time.sleep(pause_s)
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def summarize(seconds, clips_per_call):
    med = statistics.median(seconds)
    return {"median_s": med, "min_s": min(seconds), "max_s": max(seconds), "n": len(seconds),
            "clips_per_s": clips_per_call / med, "clips_per_s_best": clips_per_call / min(seconds)}


# --------------------------------------------------------------------------------------------
# JAX side


def build_jax(args, cfg):
    import functools

    import jax
    import jax.numpy as jnp

    from amstgcn_jax import model as model_lib

    if args.precision != "default":
        jax.config.update("jax_default_matmul_precision",
                          "tensorfloat32" if args.precision == "tf32" else "highest")
    model_kwargs = jax_model_kwargs(args, cfg)
    model = model_lib.get_model(**model_kwargs)
    rng = jax.random.PRNGKey(args.seed)
    x_NMTVC = jnp.asarray(cfg["x_NCTVM"].transpose(0, 4, 2, 3, 1))
    label_N = jnp.asarray(cfg["label_N"])
    t0 = time.perf_counter()
    variables = jax.jit(functools.partial(model.init, train=False))(
        {"params": rng, "dropout": rng}, x_NMTVC[:1])
    variables = jax.tree.map(lambda a: a.block_until_ready(), dict(variables))
    init_s = time.perf_counter() - t0
    variables = randomize_variables(variables, args.seed)

    step_fn, state = make_train_step(model, variables, args.lr)
    batch = {"x": x_NMTVC, "label": label_N}
    res = {"init_s": init_s, "model_kwargs": {k: str(v) for k, v in model_kwargs.items()}}

    def compile_timed(fn, *fargs, donate=()):
        t0 = time.perf_counter()
        lowered = jax.jit(fn, donate_argnums=donate).lower(*fargs)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        return compiled, {"lower_s": t1 - t0, "compile_s": t2 - t1,
                          "cost": _cost(compiled, args.batch), "memory": _mem(compiled)}

    def infer(variables, x):
        logits, _ = model.apply(variables, x, train=False)
        return logits.astype(jnp.float32)

    infer_c, res["infer_compile"] = compile_timed(infer, variables, x_NMTVC)
    train_c, res["train_compile"] = compile_timed(step_fn, state, batch, rng, donate=(0,))
    holder = {"state": state, "logits": None}

    def run_infer(n=1):
        for _ in range(n):
            holder["logits"] = infer_c(variables, x_NMTVC)
        holder["logits"].block_until_ready()

    run_train = step_runner(train_c, holder, batch, rng)
    res["device"] = str(jax.devices()[0].device_kind)
    return {"res": res, "run_infer": run_infer, "run_train": run_train, "holder": holder,
            "variables": variables, "placements": model_kwargs["attention"]}


def step_runner(compiled, holder: dict, batch, rng):
    """`run(n)`: n train steps from `holder["state"]` (donated), waited for; keeps the new state
    and the last loss in `holder`."""
    import jax

    def run(n=1):
        st = holder["state"]
        for _ in range(n):
            st, metrics = compiled(st, batch, rng)
        jax.block_until_ready((st, metrics))
        holder["state"], holder["loss"] = st, metrics["loss"]

    return run


def randomize_variables(variables, seed):
    """PyTorch-default-like random weights (and non-trivial BN statistics) for every leaf.

    The model's init is upstream's `weights_init` (N(0, 0.02) kernels, zero biases), under which
    activations shrink layer by layer towards float32 subnormals, and the non-local blocks start
    as the identity (zero BN scale): a poor place to time (subnormal arithmetic is slow on CPU)
    and useless for the JAX-vs-PyTorch logits check. Kernels ~ U(±1/sqrt(fan_in)), biases
    ~ U(±0.1), BN scale ~ U(0.5, 1.5), BN bias / running mean ~ 0.1·N(0,1), running var
    ~ U(0.5, 2), edge importance ~ 1 + 0.1·N(0,1).
    """
    import jax
    import numpy as np

    rs = np.random.default_rng(seed + 1)

    def draw(path, leaf):
        names = [getattr(k, "key", str(k)) for k in path]
        shape, name = leaf.shape, names[-1]
        if name == "kernel":
            b = 1.0 / np.sqrt(max(1, int(np.prod(shape[:-1]))))
            value = rs.uniform(-b, b, shape)
        elif name == "bias" and names[0] == "params" and "bn" not in "/".join(names):
            value = rs.uniform(-0.1, 0.1, shape)
        elif name == "scale":
            value = rs.uniform(0.5, 1.5, shape)
        elif name in ("bias", "mean"):
            value = 0.1 * rs.standard_normal(shape)
        elif name == "var":
            value = rs.uniform(0.5, 2.0, shape)
        elif name.startswith("edge_importance"):
            value = 1.0 + 0.1 * rs.standard_normal(shape)
        elif name == "PA":  # 2s-AGCN's learned graph offsets B_k (upstream init 1e-6)
            value = 0.01 * rs.standard_normal(shape)
        else:
            raise ValueError(f"randomize_variables: unexpected leaf {'/'.join(names)}")
        return jax.numpy.asarray(value, leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, variables)


def jax_model_kwargs(args, cfg):
    """`config.model` for the benchmark: upstream ST-GCN (or, with `args.backbone="agcn"`,
    2s-AGCN) settings + the chosen variant."""
    from amstgcn_jax import model as model_lib

    if getattr(args, "backbone", "stgcn") == "agcn":
        # 2s-AGCN's one-stream model (upstream settings: data BN over M*V*C; `dropout` is
        # before its classifier); its formulation knobs are the ST-GCN ones below minus the
        # graph conv's (activation layouts: auto | NTVC | NVTC)
        kw = dict(backbone="agcn", num_classes=cfg["num_classes"], layout=cfg["layout"],
                  in_channels=3, dropout=cfg["dropout"], data_bn="MVC",
                  dtype=args.dtype, tcn_impl=args.tcn_impl,
                  activation_layout=getattr(args, "activation_layout", "auto"),
                  bn_impl=getattr(args, "bn_impl", "auto"),
                  block_output=getattr(args, "block_output", "auto"))
    else:
        kw = dict(backbone="stgcn", num_classes=cfg["num_classes"], layout=cfg["layout"],
                  strategy="spatial", in_channels=3, dropout=cfg["dropout"],
                  edge_importance=True, data_bn="VC", dtype=args.dtype, tcn_impl=args.tcn_impl,
                  gcn_impl=_gcn_impl_arg(getattr(args, "gcn_impl", "auto")),
                  activation_layout=getattr(args, "activation_layout", "auto"),
                  bn_impl=getattr(args, "bn_impl", "auto"),
                  block_output=getattr(args, "block_output", "auto"))
    if args.model in model_lib.VARIANTS:
        placements = model_lib.VARIANTS[args.model]["attention"]
    else:
        placements = model_lib.parse_placements(args.model)
    placements = model_lib.normalize_attention(placements)
    if args.attention_impl:
        placements = tuple(
            (kind, where, layer, count,
             tuple(sorted((dict(opts) | {"attention_impl": args.attention_impl}).items()))
             if kind == "nonlocal" else opts)
            for kind, where, layer, count, opts in placements)
    kw["attention"] = placements
    return kw


def _gcn_impl_arg(text: str):
    return tuple(text.split("+")) if "+" in text else text


def make_train_step(model, variables, lr):
    """The project's train step (amstgcn_jax.train_step) with the ST-GCN optimizer."""
    import functools

    from amstgcn_jax import optim, train_state, train_step

    lr_fn = optim.make_learning_rate_fn(learning_rate=lr, steps_per_epoch=1_000_000)
    tx = optim.make_optimizer(learning_rate_fn=lr_fn, momentum=0.9, nesterov=True,
                              weight_decay=1e-4)
    state = train_state.TrainState.create(apply_fn=model.apply, params=variables["params"],
                                          tx=tx, batch_stats=variables.get("batch_stats", {}))
    return functools.partial(train_step.train_step, learning_rate_fn=lr_fn), state


def _cost(compiled, batch):
    try:
        cost = compiled.cost_analysis()
        if isinstance(cost, (list, tuple)):
            cost = cost[0]
        flops = float(cost.get("flops", -1.0))
        return {"xla_gflop_per_clip": flops / batch / 1e9 if flops > 0 else None,
                "xla_gbytes_accessed_per_clip": float(cost.get("bytes accessed", -1)) / batch / 1e9}
    except Exception as e:  # cost analysis is best effort (backend dependent)
        return {"error": repr(e)}


def _mem(compiled):
    try:
        m = compiled.memory_analysis()
        total = (m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
                 - m.alias_size_in_bytes)
        return {"temp_mib": m.temp_size_in_bytes / 2**20, "total_mib": total / 2**20}
    except Exception as e:
        return {"error": repr(e)}


# --------------------------------------------------------------------------------------------
# PyTorch side


def build_torch(args, cfg, state_np, attention):
    import contextlib
    import functools

    import torch
    from torch.nn import functional as F

    from benchmarks import torch_stgcn

    dev = torch.device("cuda" if args.device == "gpu" else "cpu")
    torch.set_flush_denormal(True)  # as XLA does (FTZ/DAZ); no subnormal slow path
    if args.device == "cpu":
        torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    else:
        if args.precision != "default":
            tf32 = args.precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True
    if getattr(args, "backbone", "stgcn") == "agcn":
        from amstgcn_jax import graph
        from benchmarks import torch_agcn

        # 2s-AGCN's graph is not in its state_dict: the baseline builds it, as upstream does
        adj_KVV = graph.build_adjacency(graph.get_layout(cfg["layout"]), strategy="agcn")
        model = torch_agcn.AGCN(adj_KVV, num_classes=cfg["num_classes"],
                                num_person=args.persons)
    else:
        model = torch_stgcn.STGCN(state_np["A"], num_classes=cfg["num_classes"],
                                  dropout=cfg["dropout"], attention=attention)
    torch_stgcn.load_numpy_state_dict(model, state_np, strict=True)
    model.to(dev)
    x = torch.from_numpy(cfg["x_NCTVM"]).to(dev)
    y = torch.from_numpy(cfg["label_N"]).long().to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                          weight_decay=1e-4)
    if args.dtype == "bfloat16":
        autocast = functools.partial(torch.autocast, dev.type, dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    holder = {}

    def run_infer(n=1):
        model.eval()
        with torch.inference_mode(), autocast():
            for _ in range(n):
                holder["logits"] = model(x)
        sync()

    def run_train(n=1):
        model.train()
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            with autocast():
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            loss.backward()
            opt.step()
        sync()
        holder["loss"] = loss.detach()

    res = {"device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
           "num_threads": torch.get_num_threads()}
    return {"res": res, "run_infer": run_infer, "run_train": run_train, "holder": holder,
            "torch": torch}


# --------------------------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    configure_process(args)
    import jax
    import numpy as np

    layout, v, num_classes, dropout = dataset_settings(args.dataset, args.backbone)
    agcn = args.backbone == "agcn"
    rs = np.random.default_rng(args.seed)
    cfg = {
        "layout": layout, "num_classes": num_classes,
        "dropout": dropout if args.dropout is None else args.dropout,
        "x_NCTVM": rs.standard_normal((args.batch, 3, args.frames, v, args.persons)).astype(
            np.float32),
        "label_N": rs.integers(0, num_classes, args.batch).astype(np.int32),
    }
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    placements = jax_model_kwargs(args, cfg)["attention"]
    cfg["attention_placements"] = placements
    torch_attention = {}
    if not args.skip_torch:
        if agcn and placements:
            raise SystemExit("the PyTorch 2s-AGCN baseline has no attention blocks; use "
                             "--skip-torch (or --model stgcn)")
        torch_attention = attention_blocks(placements)
    jx = build_jax(args, cfg)
    jb = None
    if args.baseline:
        jb = build_jax(argparse.Namespace(**(vars(args) | {"model": args.baseline,
                                                            "attention_impl": None})), cfg)
    out = {"config": {k: getattr(args, k) for k in (
        "backbone", "model", "attention_impl", "tcn_impl", "gcn_impl", "activation_layout",
        "bn_impl", "block_output", "dataset", "frames", "batch", "persons", "dtype",
        "precision", "device", "threads", "malloc", "iters", "chunk", "warmup", "lr",
        "baseline")}
        | {"joints": v, "dropout": cfg["dropout"], "placements": repr(placements),
           "xla_flags": os.environ.get("XLA_FLAGS", "")},
        "jax": jx["res"]}

    tc = None
    if not args.skip_torch:
        from amstgcn_jax import agcn_convert, convert

        if agcn:
            state_np = agcn_convert.flax_to_torch(jax.device_get(jx["variables"]))
        else:
            state_np = convert.flax_to_torch(jax.device_get(jx["variables"]),
                                             {"layout": layout, "strategy": "spatial"})
        try:
            tc = build_torch(args, cfg, state_np, torch_attention)
            out["torch"] = tc["res"]
        except Exception as e:  # keep the JAX figures (e.g. torch missing or out of memory)
            out["torch_error"] = repr(e)[:500]
            print(f"torch side failed, continuing with JAX only: {e!r}", file=sys.stderr)

    fw = {"jax": jx} | ({"jax_baseline": jb} if jb else {}) | ({"torch": tc} if tc else {})
    if jb:
        out["jax_baseline"] = jb["res"]
    phases = ([] if args.skip_infer else ["infer"]) + ["train"]
    n_chunk = max(args.chunk, 1)
    for phase in phases:
        for name, f in list(fw.items()):  # first call(s): excluded from the throughput
            try:
                t0 = time.perf_counter()
                f[f"run_{phase}"](1)
                f["res"][f"{phase}_first_call_s"] = time.perf_counter() - t0
                if phase == "train":
                    f["res"]["first_step_loss"] = float(f["holder"]["loss"])
                if args.warmup > 1:
                    f[f"run_{phase}"](args.warmup - 1)
            except Exception as e:
                if name != "torch":
                    raise
                out["torch_error"] = f"{phase}: {e!r}"[:500]
                print(f"torch {phase} failed, continuing with JAX only: {e!r}", file=sys.stderr)
                del fw[name]  # out["torch"] keeps what was measured before the failure
                tc = None
                if args.device == "gpu":
                    f["torch"].cuda.empty_cache()
        if phase == "infer" and tc is not None:
            lj = np.asarray(jx["holder"]["logits"], np.float32)
            lt = tc["holder"]["logits"].float().cpu().numpy()
            out["logits_max_abs_diff"] = float(np.max(np.abs(lj - lt)))
            out["logits_max_abs"] = float(np.max(np.abs(lt)))
        runs = {n: (lambda f=f, phase=phase: f[f"run_{phase}"](n_chunk)) for n, f in fw.items()}
        times = timed_rounds(runs, args.iters)
        for name, f in fw.items():
            f["res"][phase] = summarize([s / n_chunk for s in times[name]], args.batch)

    def fwd_flops(placements):
        return forward_flops_counter(args.backbone)(
            v, args.frames, args.persons, num_classes, attention_blocks(placements, strict=False))

    out["model_gflop_fwd_per_clip"] = fwd_flops(placements) / 1e9
    out["model_gflop_train_per_clip"] = 3 * fwd_flops(placements) / 1e9
    for name, f in fw.items():
        r = f["res"]
        flops_fwd = fwd_flops(f.get("placements", placements))
        r["model_gflop_fwd_per_clip"] = flops_fwd / 1e9
        r["train"]["gflop_per_s"] = r["train"]["clips_per_s"] * 3 * flops_fwd / 1e9
        if "infer" in r:
            r["infer"]["gflop_per_s"] = r["infer"]["clips_per_s"] * flops_fwd / 1e9
        r["final_loss"] = float(f["holder"]["loss"])
    _memory(args, jx, tc)
    if jb:
        out["overhead_vs_baseline"] = {
            p: jb["res"][p]["clips_per_s"] / jx["res"][p]["clips_per_s"] - 1 for p in phases}
    if "torch" in out:
        out["ratio_jax_over_torch"] = {
            p: jx["res"][p]["clips_per_s"] / out["torch"][p]["clips_per_s"] for p in phases
            if p in out["torch"]}
    out["versions"] = _versions(tc)
    out["host"] = {"cpu": _cpu_name(), "cores_visible": len(os.sched_getaffinity(0)),
                   "loadavg_start": load0, "loadavg_end": os.getloadavg(),
                   "python": platform.python_version(),
                   # glibc's allocator tunables change both frameworks' step (README "glibc malloc")
                   "glibc_tunables": os.environ.get("GLIBC_TUNABLES")}
    out["wall_s"] = time.perf_counter() - t_start
    _print_table(out, phases)
    emit_json(out, args.out, sort_keys=True, default=str)
    return out


def layer_benchmark_parser(description: str, impls: str) -> argparse.ArgumentParser:
    """The options shared by the per-block layer benchmarks (tcn_ and gcn_formulations.py)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--batch", type=int, default=4, help="clips (NTU: 2 persons, 25 joints)")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--impls", default=impls)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--malloc", choices=("default", "keep"), default="default")
    p.add_argument("--iters", type=int, default=5, help="interleaved timed rounds")
    p.add_argument("--out", default=None, help="also append the JSON line to this file")
    return p


def start_layer_benchmark(args) -> None:
    """CPU process set-up for a layer benchmark: before jax is imported."""
    configure_process(argparse.Namespace(device="cpu", threads=args.threads, triton_gemm=False,
                                         malloc=args.malloc))


def emit_layer_benchmark(args, jax_version: str, blocks: dict) -> None:
    """A layer benchmark's last line: host, versions, shape and the per-block results."""
    emit_json({"host": {"cpu": _cpu_name(), "threads": args.threads, "malloc": args.malloc,
                        "glibc_tunables": os.environ.get("GLIBC_TUNABLES")},
               "versions": {"jax": jax_version}, "batch": args.batch, "frames": args.frames,
               "blocks": blocks}, args.out)


def emit_json(record: dict, out_path: str | None, **dumps_kwargs) -> None:
    """Prints `record` as the last line (one JSON object) and appends it to `out_path` if set,
    with the checkout it came from (`source`, `source_revision()`) unless it names one."""
    record = {"source": source_revision()} | record
    line = json.dumps(record, **dumps_kwargs)
    if out_path:
        with open(out_path, "a") as f:
            f.write(line + "\n")
    print(line, flush=True)


def _memory(args, jx, tc):
    if args.device == "gpu":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        jx["res"]["peak_device_mib"] = stats.get("peak_bytes_in_use", -1) / 2**20
        if tc is not None:
            torch = tc["torch"]
            tc["res"]["peak_device_mib"] = torch.cuda.max_memory_allocated() / 2**20
        return
    for f in [jx] + ([tc] if tc else []):
        delta, peak = measure_rss_peak(lambda f=f: f["run_train"](1))
        f["res"]["train_step_peak_rss_delta_mib"] = delta
        f["res"]["process_peak_rss_mib"] = peak


def _versions(tc):
    import flax
    import jax
    import jaxlib

    v = {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__}
    try:
        v["jax_backend"] = jax.devices()[0].client.platform_version
    except Exception:  # informational only
        pass
    if tc is not None:
        torch = tc["torch"]
        v["torch"] = torch.__version__
        if torch.cuda.is_available():
            v["torch_cuda"] = torch.version.cuda
            v["torch_cudnn"] = torch.backends.cudnn.version()
    return v


def source_revision() -> dict:
    """The checkout the benchmark ran from: commit and whether tracked files differ from it.

    Results quote the commit they were measured at; a dirty tree means the figures belong to
    uncommitted code. `benchmarks/results/` does not count: appending a result must not mark
    the next run dirty. Both are None outside a git checkout (or without git).
    """
    root = Path(__file__).resolve().parent.parent

    def git(*cmd):
        try:
            return subprocess.run(["git", *cmd], cwd=root, capture_output=True, text=True,
                                   timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                ":(exclude)benchmarks/results")
    return {"commit": commit, "dirty": None if commit is None or dirty is None else bool(dirty)}


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _print_table(out, phases):
    c = out["config"]
    print(f"# {c['model']} {c['dataset']} T={c['frames']} V={c['joints']} "
          f"M={c['persons']} batch={c['batch']} {c['dtype']} on {out['jax']['device']}")
    print(f"# model GFLOP/clip: fwd {out['model_gflop_fwd_per_clip']:.2f}, "
          f"train (3x) {out['model_gflop_train_per_clip']:.2f}")
    for name in ("jax", "jax_baseline", "torch"):
        if name not in out:
            continue
        r = out[name]
        for p in phases:
            if p not in r:
                continue
            s = r[p]
            gflop_s = s.get("gflop_per_s", float("nan"))
            print(f"{name:6s} {p:6s} {s['clips_per_s']:9.2f} clips/s (median {s['median_s']:.4f} s"
                  f"/step, min {s['min_s']:.4f}) {gflop_s:8.1f} GFLOP/s  "
                  f"first call {r[p + '_first_call_s']:.2f} s")
    for p in phases:
        comp = out["jax"].get(p + "_compile")
        if comp:
            print(f"jax    {p:6s} lower {comp['lower_s']:.2f} s + compile "
                  f"{comp['compile_s']:.2f} s")
    if "ratio_jax_over_torch" in out:
        print("ratio JAX/torch: " + ", ".join(
            f"{p} {r:.2f}x" for p, r in out["ratio_jax_over_torch"].items()))
    if "overhead_vs_baseline" in out:
        print(f"{c['model']} step time vs {c['baseline']} (same process, interleaved): "
              + ", ".join(f"{p} {100 * r:+.1f}%" for p, r in out["overhead_vs_baseline"].items()))
    if "logits_max_abs_diff" in out:
        print(f"logits max |JAX - torch| at identical weights: {out['logits_max_abs_diff']:.2e}")


if __name__ == "__main__":
    main()
