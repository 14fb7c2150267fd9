"""2s-AGCN PyTorch state_dict <-> Flax variables of `amstgcn_jax.agcn.AGCN`.

Mirrors the checkpoints written by lshiwjx/2s-AGCN @ 953c14fc `main.py:431-436` (an OrderedDict
of `model.agcn.Model.state_dict()` with everything up to the last `module.` dropped). One mapping
table (`_modules`) and one hook per module kind; loading is strict: every missing or unused key
is reported by name. `num_batches_tracked` is ignored on load (files without it are accepted) and
written as 0 on export. The graph `A` is not in these checkpoints; `AGCN` rebuilds it.

    sd = torch_pickle.load_state_dict("ntu_joint-49-12345.pt")   # no torch needed
    config = infer_config(sd)              # {"num_classes": 60, "layout": "ntu-rgb+d", ...}
    variables = torch_to_flax(sd)          # {"params": ..., "batch_stats": ...}
    logits_NL, out = AGCN(**config).apply(variables, x_NMTVC, train=False)
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from amstgcn_jax import convert
from amstgcn_jax.agcn import AGCN

# Joint count -> layout of the upstream graph classes (graph.ntu_rgb_d.Graph, graph.kinetics.Graph).
LAYOUT_BY_NUM_JOINTS = {25: "ntu-rgb+d", 18: "openpose"}

_BN_FIELDS = (  # torch name, flax collection, flax name
    ("weight", "params", "scale"),
    ("bias", "params", "bias"),
    ("running_mean", "batch_stats", "mean"),
    ("running_var", "batch_stats", "var"),
)


class ConversionError(ValueError):
    """A state_dict that does not fit the 2s-AGCN model; the message names every bad key."""


def clean_state_dict(sd: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`convert.clean_state_dict` (upstream `main.py:257-259` strips `module.` the same way), with
    its error raised as a `ConversionError`."""
    try:
        return convert.clean_state_dict(sd)
    except ValueError as e:
        raise ConversionError(str(e)) from e


def _modules(params: Mapping):
    """(torch prefix, kind, flax module path) in upstream `state_dict()` order, for the modules
    present in `params`."""
    yield "data_bn", "bn", ("data_bn",)
    num_blocks = sum(1 for name in params if name.startswith("block"))
    for i in range(num_blocks):
        block, l = f"block{i}", f"l{i + 1}"  # noqa: E741 (upstream's module names l1..l10)
        yield f"{l}.gcn1.PA", "param", (block, "gcn", "PA")
        for x in "abd":
            yield f"{l}.gcn1.conv_{x}", "subset_conv", (block, "gcn", f"conv_{x}")
        if "down_conv" in params.get(block, {}).get("gcn", {}):
            yield f"{l}.gcn1.down.0", "conv", (block, "gcn", "down_conv")
            yield f"{l}.gcn1.down.1", "bn", (block, "gcn", "down_bn")
        yield f"{l}.gcn1.bn", "bn", (block, "gcn", "bn")
        yield f"{l}.tcn1.conv", "conv", (block, "tcn_conv")
        yield f"{l}.tcn1.bn", "bn", (block, "tcn_bn")
        if "residual_conv" in params.get(block, {}):
            yield f"{l}.residual.conv", "conv", (block, "residual_conv")
            yield f"{l}.residual.bn", "bn", (block, "residual_bn")
    yield "fc", "dense", ("head",)


def _get(tree, path, what):
    node = tree
    for name in path:
        if not isinstance(node, Mapping) or name not in node:
            raise ConversionError(f"flax variables lack {what} {'/'.join(path)}")
        node = node[name]
    return node


def _module_to_torch(kind, prefix, params, stats, num_batches_tracked):
    """Hook: one flax module -> its torch entries."""
    if kind == "param":
        return {prefix: np.asarray(params)}
    if kind == "bn":
        out = {f"{prefix}.{t}": np.asarray((params if c == "params" else stats)[f])
               for t, c, f in _BN_FIELDS}
        if num_batches_tracked:
            out[f"{prefix}.num_batches_tracked"] = np.asarray(0, np.int64)
        return out
    if kind == "conv":  # (kT, kV, I, O) -> (O, I, kT, kV)
        return {f"{prefix}.weight": np.asarray(params["kernel"]).transpose(3, 2, 0, 1),
                f"{prefix}.bias": np.asarray(params["bias"])}
    if kind == "dense":
        return {f"{prefix}.weight": np.asarray(params["kernel"]).T,
                f"{prefix}.bias": np.asarray(params["bias"])}
    if kind == "subset_conv":  # (K, I, O) -> K x (O, I, 1, 1)
        kernel_KIO, bias_KO = np.asarray(params["kernel"]), np.asarray(params["bias"])
        out = {}
        for k in range(kernel_KIO.shape[0]):
            out[f"{prefix}.{k}.weight"] = kernel_KIO[k].T[:, :, None, None]
            out[f"{prefix}.{k}.bias"] = bias_KO[k]
        return out
    raise AssertionError(kind)


def _module_from_torch(kind, prefix, sd, template_params):
    """Hook: torch entries -> (params, batch_stats) of one flax module."""
    if kind == "param":
        return sd[prefix], None
    if kind == "bn":
        params = {f: sd[f"{prefix}.{t}"] for t, c, f in _BN_FIELDS if c == "params"}
        stats = {f: sd[f"{prefix}.{t}"] for t, c, f in _BN_FIELDS if c == "batch_stats"}
        return params, stats
    if kind == "conv":
        return {"kernel": sd[f"{prefix}.weight"].transpose(2, 3, 1, 0),
                "bias": sd[f"{prefix}.bias"]}, None
    if kind == "dense":
        return {"kernel": sd[f"{prefix}.weight"].T, "bias": sd[f"{prefix}.bias"]}, None
    if kind == "subset_conv":
        k_count = template_params["kernel"].shape[0]
        kernel = np.stack([sd[f"{prefix}.{k}.weight"][:, :, 0, 0].T for k in range(k_count)])
        bias = np.stack([sd[f"{prefix}.{k}.bias"] for k in range(k_count)])
        return {"kernel": kernel, "bias": bias}, None
    raise AssertionError(kind)


def flax_to_torch(variables: Mapping, *, num_batches_tracked: bool = True) -> dict[str, np.ndarray]:
    """Flax `{"params", "batch_stats"}` of `AGCN` -> an upstream-layout state_dict (numpy).

    Raises `ConversionError` naming every flax parameter that upstream 2s-AGCN has no place for
    (e.g. the AM-STGCN attention blocks).
    """
    params, stats = variables["params"], variables.get("batch_stats", {})
    out, used = {}, set()
    for prefix, kind, path in _modules(params):
        p = _get(params, path, "params")
        s = _get(stats, path, "batch_stats") if kind == "bn" else None
        out.update(_module_to_torch(kind, prefix, p, s, num_batches_tracked))
        used.add(path)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    unmapped = sorted({
        "/".join(k.key for k in key_path)
        for key_path, _ in flat
        if not any(tuple(k.key for k in key_path[: len(p)]) == p for p in used)
    })
    if unmapped:
        raise ConversionError(f"no 2s-AGCN state_dict key for flax params: {unmapped}")
    return out


def infer_config(sd: Mapping[str, np.ndarray], layout=None) -> dict:
    """`AGCN` keyword arguments implied by a state_dict (V -> layout, fc -> classes)."""
    sd = clean_state_dict(sd)
    for key in ("l1.gcn1.PA", "l1.gcn1.conv_a.0.weight", "fc.weight", "data_bn.weight"):
        if key not in sd:
            raise ConversionError(f"not a 2s-AGCN state_dict: missing {key!r} "
                                  f"(first keys: {list(sd)[:8]})")
    num_joints = sd["l1.gcn1.PA"].shape[-1]
    if layout is None:
        if num_joints not in LAYOUT_BY_NUM_JOINTS:
            raise ConversionError(f"{num_joints} joints: no built-in 2s-AGCN graph; pass layout=")
        layout = LAYOUT_BY_NUM_JOINTS[num_joints]
    return {
        "num_classes": int(sd["fc.weight"].shape[0]),
        "layout": layout,
        "in_channels": int(sd["l1.gcn1.conv_a.0.weight"].shape[1]),
    }


def _num_persons(sd, config, num_joints):
    size = sd["data_bn.weight"].shape[0]
    per_person = num_joints * config["in_channels"]
    if size % per_person:
        raise ConversionError(f"data_bn has {size} channels, not a multiple of V*C = {per_person}")
    return size // per_person


def template_variables(config: Mapping, num_persons: int = 2, num_joints: int | None = None):
    """Zero-filled variables of `AGCN(**config)` (shapes only, computed without running it)."""
    model = AGCN(**config)
    if num_joints is None:
        from amstgcn_jax import graph

        num_joints = graph.get_layout(config["layout"]).num_nodes
    x = jnp.zeros((1, num_persons, 8, num_joints, config.get("in_channels", 3)), jnp.float32)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)


def torch_to_flax(sd: Mapping[str, np.ndarray], config: Mapping | None = None) -> dict:
    """Upstream state_dict -> `{"params", "batch_stats"}` for `AGCN(**config)` (strict)."""
    sd = clean_state_dict(sd)
    config = dict(config) if config is not None else infer_config(sd)
    if config.get("attention"):
        raise ConversionError("upstream 2s-AGCN checkpoints hold no attention blocks: convert "
                              "with attention=() and merge into the attention model's variables")
    num_joints = sd["l1.gcn1.PA"].shape[-1] if "l1.gcn1.PA" in sd else None
    template = template_variables(config, _num_persons(sd, config, num_joints), num_joints)
    expected = flax_to_torch(template, num_batches_tracked=False)
    missing = [k for k in expected if k not in sd]
    unused = [k for k in sd if k not in expected]
    bad_shapes = [f"{k}: {sd[k].shape} != expected {expected[k].shape}"
                  for k in expected if k in sd and sd[k].shape != expected[k].shape]
    if missing or unused or bad_shapes:
        raise ConversionError(
            f"state_dict does not fit AGCN({config}): missing {missing}; unused {unused}; "
            f"shape mismatches {bad_shapes}")
    params, stats = {}, {}
    for prefix, kind, path in _modules(template["params"]):
        p, s = _module_from_torch(kind, prefix, sd, _get(template["params"], path, "params"))
        for tree, value in ((params, p), (stats, s)):
            if value is None:
                continue
            node = tree
            for name in path[:-1]:
                node = node.setdefault(name, {})
            node[path[-1]] = jax.tree.map(lambda a: np.asarray(a, np.float32), value)
    return {"params": params, "batch_stats": stats}
