"""PyTorch ST-GCN state_dict ↔ Flax variables of `amstgcn_jax.model.AMSTGCN`, and a CLI.

Mirrors the checkpoints of yysijie/st-gcn @ 221c0e152054b8da593774c0d483e59befdb9061 (an
OrderedDict of `net.st_gcn.Model.state_dict()` written by `torchlight/io.py:IO.save_model`;
keys in ../shared/parity/KEYS.md). One mapping table (`_MODULES`: Flax module name → torch module
name, `_LEAVES`: leaf → torch suffix + hook kind) and one hook per kind:
- `pointwise`: 1×1 Conv2d `(O, I, 1, 1)` ↔ kernel `(I, O)` (gcn, residual, fcn head);
- `conv`: Conv2d `(O, I, kT, kV)` ↔ HWIO kernel `(kT, kV, I, O)` (temporal conv);
- `identity`: biases, BatchNorm fields, edge importance.
Attention modules (`block{i}/attn_convs{j}/…`) map to `st_gcn_networks.{i}.attn_convs.{j}.…`
(the layout of benchmarks/torch_stgcn.py), their sub-module names unchanged.

Loading is strict: keys lose everything up to the last `module.` (DataParallel), and
`num_batches_tracked` is ignored; the buffer `A` is verified against `graph.build_adjacency` and
never loaded; every other key must be consumed exactly once with the right shape, else a
`ValueError` lists every missing and unused key by name.

    sd = torch_pickle.load_state_dict("st_gcn.ntu-xsub.pt")      # no torch needed
    variables, config = torch_to_flax(sd)   # config: {"num_classes": 60, "layout": ...}
    logits_NL, out = get_model(**config).apply(variables, x_NMTVC, train=False)

CLI: `python -m amstgcn_jax.convert in.pt out_dir` writes
- `out_dir/variables/`: an orbax `StandardCheckpointer` save of `{"params", "batch_stats"}`
  (numpy float32 leaves, restore with `load_converted(out_dir)`);
- `out_dir/model_config.json`: the inferred `config.model` (`get_model(**config)` rebuilds it).
2s-AGCN checkpoints (keys `l1.…`) are delegated to `amstgcn_jax.agcn_convert`
(`convert_state_dict`, `load_pytorch_checkpoint` and the CLI accept both).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from amstgcn_jax import graph
from amstgcn_jax.model import STGCN_BLOCKS, get_model, normalize_attention

_MODULES = (  # (flax module-name regex, torch module name template)
    (r"data_bn", "data_bn"),
    (r"block(\d+)", "st_gcn_networks.{0}"),
    (r"gcn", "gcn.conv"),
    (r"tcn_bn0", "tcn.0"),
    (r"tcn_conv", "tcn.2"),
    (r"tcn_bn1", "tcn.3"),
    (r"residual_conv", "residual.0"),
    (r"residual_bn", "residual.1"),
    (r"attn_(convs|convt)(\d+)", "attn_{0}.{1}"),
    (r"out_conv", "out"),  # NonLocalBlock output conv/BN (torch: `out`, `bn`)
    (r"out_bn", "bn"),
    (r"head", "fcn"),
    (r"edge_importance(\d+)", "edge_importance.{0}"),
)
_LEAVES = {  # (collection, flax leaf) -> (torch suffix, hook kind); kernels pick by rank
    ("params", "kernel"): ("weight", "kernel"),
    ("params", "bias"): ("bias", "identity"),
    ("params", "scale"): ("weight", "identity"),
    ("batch_stats", "mean"): ("running_mean", "identity"),
    ("batch_stats", "var"): ("running_var", "identity"),
}


def _to_torch(kind: str, value: np.ndarray, torch_ndim: int | None = None) -> np.ndarray:
    if kind == "kernel" and value.ndim == 2:  # (I, O) -> 1x1 conv (O, I, 1, 1), or Linear (O, I)
        w = value.T
        return w if torch_ndim == 2 else w[:, :, None, None]
    if kind == "kernel" and value.ndim == 4:  # HWIO -> OIHW
        return value.transpose(3, 2, 0, 1)
    return value


def _from_torch(kind: str, value: np.ndarray, flax_shape: tuple) -> np.ndarray:
    if kind == "kernel" and len(flax_shape) == 2:
        if value.ndim == 4:
            if value.shape[2:] != (1, 1):
                raise ValueError(f"expected a 1x1 conv weight, got shape {value.shape}")
            value = value[:, :, 0, 0]
        return value.T
    if kind == "kernel" and len(flax_shape) == 4:
        return value.transpose(2, 3, 1, 0)
    return value


def torch_key(collection: str, path: tuple[str, ...]) -> tuple[str, str]:
    """(torch key, hook kind) for one Flax leaf `variables[collection][path…]`."""
    names = []
    for part in path[:-1] if len(path) > 1 else path:
        for pattern, template in _MODULES:
            m = re.fullmatch(pattern, part)
            if m:
                names.append(template.format(*m.groups()))
                break
        else:
            names.append(part)  # attention internals keep their names
    if len(path) == 1:  # a bare param at model level: edge_importance{i}
        return ".".join(names), "identity"
    suffix, kind = _LEAVES.get((collection, path[-1]), (path[-1], "identity"))
    return ".".join(names + [suffix]), kind


def _flat(tree: Mapping, prefix=()) -> dict[tuple[str, ...], object]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


def _nest(flat: Mapping[tuple[str, ...], object]) -> dict:
    tree: dict = {}
    for path, v in flat.items():
        node = tree
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = v
    return tree


def clean_state_dict(sd: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drops everything up to the last `module.` of each key and all `num_batches_tracked`."""
    out = {}
    for key, value in sd.items():
        key = key.split("module.")[-1]
        if key.endswith("num_batches_tracked"):
            continue
        if key in out:
            raise ValueError(f"state_dict: key {key!r} appears twice after stripping 'module.'")
        out[key] = np.asarray(value)
    return out


def _layouts_with(num_nodes: int) -> list[str]:
    return [name for name, lay in graph.LAYOUTS.items() if lay.num_nodes == num_nodes]


def infer_config(sd: Mapping[str, np.ndarray], **overrides) -> dict:
    """`config.model` for a (cleaned) ST-GCN state_dict; `overrides` win over inference."""
    sd = clean_state_dict(sd)
    if "st_gcn_networks.0.gcn.conv.weight" not in sd or "fcn.weight" not in sd:
        raise ValueError("not an ST-GCN state_dict: missing 'st_gcn_networks.0.gcn.conv.weight' "
                         f"or 'fcn.weight' (keys start {sorted(sd)[:5]})")
    w0 = sd["st_gcn_networks.0.gcn.conv.weight"]
    in_channels = int(w0.shape[1])
    idx = sorted({int(m[1]) for k in sd if (m := re.match(r"st_gcn_networks\.(\d+)\.", k))})
    blocks, c_prev = [], in_channels
    for i in idx:
        c = int(sd[f"st_gcn_networks.{i}.tcn.2.weight"].shape[0])
        has_res_conv = f"st_gcn_networks.{i}.residual.0.weight" in sd
        residual = has_res_conv or c == c_prev and i != 0
        stride = 2 if has_res_conv and c > c_prev else 1
        blocks.append((c, stride, bool(residual)))
        c_prev = c
    num_subsets = int(w0.shape[0]) // blocks[0][0]
    strategy = {1: "uniform", 2: "distance", 3: "spatial"}.get(num_subsets)
    if "A" in sd:
        num_nodes = int(sd["A"].shape[-1])
    elif "edge_importance.0" in sd:
        num_nodes = int(sd["edge_importance.0"].shape[-1])
    else:
        num_nodes = int(sd["data_bn.weight"].shape[0]) // in_channels
    config = dict(backbone="stgcn", num_classes=int(sd["fcn.weight"].shape[0]),
                  in_channels=in_channels, edge_importance="edge_importance.0" in sd)
    config.update(overrides)
    if "A" in sd:
        config.update({k: v for k, v in _match_graph(sd["A"], num_subsets, config).items()
                       if k not in overrides})
    config.setdefault("strategy", strategy)
    if "layout" not in config:
        candidates = _layouts_with(num_nodes)
        if not candidates:
            raise ValueError(f"no built-in layout has {num_nodes} joints; pass layout=...")
        config["layout"] = candidates[0]
    if "data_bn.weight" in sd:
        persons = int(sd["data_bn.weight"].shape[0]) // (num_nodes * in_channels)
        config.setdefault("data_bn", "VC" if persons == 1 else "MVC")
    else:
        config.setdefault("data_bn", "none")
    if tuple(blocks) != STGCN_BLOCKS:
        config.setdefault("blocks", tuple(blocks))
    if "attention" not in config:
        config["attention"] = _infer_attention(sd)
    config["attention"] = normalize_attention(config["attention"])
    if config["attention"]:
        config.setdefault("layer_indexing", "code")
    return config


def _match_graph(a_ref: np.ndarray, k: int, config: Mapping) -> dict:
    """The first (layout, strategy, max_hop, dilation) whose adjacency equals `a_ref`, or {}."""
    layouts = [config["layout"]] if "layout" in config else _layouts_with(a_ref.shape[-1])
    strategies = [config["strategy"]] if config.get("strategy") else list(graph.STRATEGIES)
    for layout in layouts:
        for strategy in strategies:
            for max_hop in range(1, 4):
                for dilation in range(1, max_hop + 1):
                    if graph.num_subsets(strategy, max_hop, dilation) != k:
                        continue
                    a = graph.build_adjacency(layout, strategy, max_hop, dilation)
                    if a.shape == a_ref.shape and np.allclose(a, a_ref, rtol=0, atol=1e-7):
                        found = dict(layout=layout, strategy=strategy)
                        if (max_hop, dilation) != (1, 1):
                            found.update(max_hop=max_hop, dilation=dilation)
                        return found
                    if strategy == "agcn":
                        break  # max_hop/dilation do not change the agcn graph
    return {}


def _infer_attention(sd) -> tuple:
    found: dict[tuple[int, str], set] = {}
    for k in sd:
        m = re.match(r"st_gcn_networks\.(\d+)\.attn_(convs|convt)\.(\d+)\.(\w+)", k)
        if m:
            found.setdefault((int(m[1]), m[2]), set()).add((int(m[3]), m[4]))
    placements = []
    for (i, where), subs in sorted(found.items()):
        if {s for _, s in subs} & {"theta", "phi", "g"}:
            kind = "nonlocal"
        else:
            raise ValueError(f"cannot infer the attention kind of st_gcn_networks.{i}.attn_{where} "
                             f"(sub-modules {sorted({s for _, s in subs})}); pass attention=...")
        placements.append((kind, where, i, 1 + max(j for j, _ in subs)))
    return tuple(placements)


def template_variables(config: Mapping, num_persons: int = 2) -> dict:
    """Shapes of the Flax variables for `config` (no compute)."""
    model = get_model(**config)
    lay = graph.get_layout(config.get("layout", "ntu-rgb+d"))
    x = jnp.zeros((1, num_persons, 9, lay.num_nodes, config.get("in_channels", 3)), jnp.float32)
    return jax.eval_shape(lambda: model.init({"params": jax.random.key(0),
                                              "dropout": jax.random.key(0)}, x, train=False))


def _verify_adjacency(a_ref: np.ndarray, config: Mapping) -> None:
    ours = graph.build_adjacency(config["layout"], config.get("strategy", "spatial"),
                                 config.get("max_hop", 1), config.get("dilation", 1))
    if ours.shape != a_ref.shape or not np.allclose(ours, a_ref, rtol=0, atol=1e-7):
        diff = (np.abs(ours - a_ref).max() if ours.shape == a_ref.shape
                else f"shape {a_ref.shape} vs ours {ours.shape}")
        raise ValueError(f"the checkpoint's graph buffer 'A' differs from our adjacency for layout "
                         f"{config['layout']!r} strategy {config.get('strategy')!r} (max diff "
                         f"{diff}); pass the matching layout/strategy")


def torch_to_flax(sd: Mapping[str, np.ndarray], config: Mapping | None = None,
                  num_persons: int = 2) -> tuple[dict, dict]:
    """`({"params", "batch_stats"}, config)` from an ST-GCN state_dict (strict, see module doc)."""
    sd = clean_state_dict(sd)
    config = infer_config(sd, **(dict(config) if config else {}))
    if "A" in sd:
        _verify_adjacency(sd.pop("A"), config)
    if config.get("data_bn") == "MVC" and "data_bn.weight" in sd:
        per_person = graph.get_layout(config["layout"]).num_nodes * config["in_channels"]
        num_persons = max(1, int(sd["data_bn.weight"].shape[0]) // per_person)
    template = _flat(template_variables(config, num_persons))
    flat, missing, wrong = {}, [], []
    used = set()
    for (collection, *path), leaf in template.items():
        key, kind = torch_key(collection, tuple(path))
        if key not in sd:
            missing.append(key)
            continue
        value = _from_torch(kind, sd[key], leaf.shape)
        if value.shape != leaf.shape:
            wrong.append(f"{key}: {sd[key].shape} -> {value.shape}, expected {leaf.shape}")
            continue
        used.add(key)
        flat[(collection, *path)] = np.asarray(value, np.float32)
    unused = sorted(set(sd) - used)
    if missing or unused or wrong:
        raise ValueError("state_dict does not match the model "
                         f"{ {k: v for k, v in config.items() if k != 'blocks'} }:\n"
                         f"  missing keys: {missing}\n  unused keys: {unused}\n"
                         f"  shape mismatches: {wrong}")
    return _nest(flat), config


def flax_to_torch(variables: Mapping, config: Mapping | None = None, *,
                  num_batches_tracked: bool = False) -> dict[str, np.ndarray]:
    """The upstream state_dict (key order as upstream where it matters little); with `config`,
    the graph buffer `A` is included first."""
    sd = {}
    if config is not None:
        sd["A"] = graph.build_adjacency(config["layout"], config.get("strategy", "spatial"),
                                        config.get("max_hop", 1), config.get("dilation", 1))
    for collection in ("params", "batch_stats"):
        for path, value in _flat(variables.get(collection, {})).items():
            key, kind = torch_key(collection, path)
            sd[key] = np.asarray(_to_torch(kind, np.asarray(value)), np.float32)
    if num_batches_tracked:
        for key in [k for k in sd if k.endswith(".running_mean")]:
            sd[key[: -len("running_mean")] + "num_batches_tracked"] = np.zeros((), np.int64)
    return sd


def convert_state_dict(sd: Mapping[str, np.ndarray], config: Mapping | None = None
                       ) -> tuple[dict, dict]:
    """`(variables, config)` for an ST-GCN or (keys `l1.…`) 2s-AGCN state_dict."""
    sd = clean_state_dict(sd)
    if any(k.startswith("l1.") for k in sd):
        from amstgcn_jax import agcn_convert

        overrides = {k: v for k, v in dict(config or {}).items() if k != "backbone"}
        agcn_config = agcn_convert.infer_config(sd, layout=overrides.pop("layout", None))
        agcn_config.update(overrides)
        variables = agcn_convert.torch_to_flax(sd, agcn_config)
        return variables, dict(agcn_config, backbone="agcn")
    return torch_to_flax(sd, config)


def load_pytorch_checkpoint(path, config: Mapping | None = None) -> tuple[dict, dict]:
    """Reads a `.pt` (zip or legacy) without torch; returns `(variables, config)`."""
    from amstgcn_jax import torch_pickle

    sd = torch_pickle.load_state_dict(path)
    try:
        return convert_state_dict(sd, config)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def _json_ready(value):
    if isinstance(value, (tuple, list)):
        return [_json_ready(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _json_ready(v) for k, v in value.items()}
    return value


def save_converted(variables: Mapping, config: Mapping, out_dir) -> Path:
    import orbax.checkpoint as ocp

    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(out_dir / "variables", jax.tree.map(np.asarray, dict(variables)))
    (out_dir / "model_config.json").write_text(json.dumps(_json_ready(dict(config)), indent=2))
    return out_dir


def load_converted(out_dir) -> tuple[dict, dict]:
    """`(variables, config)` from a directory written by `save_converted` / the CLI."""
    import orbax.checkpoint as ocp

    out_dir = Path(out_dir).absolute()
    config = json.loads((out_dir / "model_config.json").read_text())
    if config.get("backbone", "stgcn") == "stgcn":
        abstract = template_variables(_from_json(config))
    else:
        abstract = None
    with ocp.StandardCheckpointer() as ckptr:
        variables = ckptr.restore(out_dir / "variables", abstract)
    return variables, config


def _from_json(config: Mapping) -> dict:
    config = dict(config)
    if "blocks" in config:
        config["blocks"] = tuple(tuple(b) for b in config["blocks"])
    return config


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="PyTorch .pt state_dict (zip or legacy format)")
    parser.add_argument("out_dir", help="output directory (variables/ + model_config.json)")
    parser.add_argument("--layout", help="graph layout name (default: inferred from A / V)")
    args = parser.parse_args(argv)
    overrides = {"layout": args.layout} if args.layout else {}
    try:
        variables, config = load_pytorch_checkpoint(args.checkpoint, overrides)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    out = save_converted(variables, config, args.out_dir)
    print(f"wrote {out}/variables and {out}/model_config.json: {config}")


if __name__ == "__main__":
    main()
