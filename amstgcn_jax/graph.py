"""Skeleton graphs as data: joint layouts, bone pairs and the ST-GCN adjacency builders.

Mirrors yysijie/st-gcn @ 221c0e152054b8da593774c0d483e59befdb9061 `net/utils/graph.py`
(`get_edge`, `get_hop_distance`, `normalize_digraph`, `Graph.get_adjacency`) exactly, including
its max_hop-truncated hop distance: joints farther than `max_hop` from the centre are at distance
inf, and `inf == inf` sends every edge between two such joints to the "root" slice (see
../shared/parity/NOTES.md §2.4). The adjacency stored as buffer `A` in every upstream checkpoint
is the oracle for this module (tests/graph_test.py).

The `agcn` strategy mirrors lshi/2s-AGCN `graph/tools.py:get_spatial_graph` (and CTR-GCN's copy):
`(I, normalize(inward), normalize(outward))`, each subset column-normalised on its own.

Edges are stored as *inward* pairs `(i, j)`: joint `i` to its neighbour `j`, one step nearer the
body centre, as the upstream edge lists are written. Indices are 0-based.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

Pair = tuple[int, int]


@dataclasses.dataclass(frozen=True)
class Layout:
    """A skeleton: `num_nodes` joints, inward `edges`, a `center` joint and where they come from.

    `bone_pairs` are `(child, parent)` pairs for the bone modality (bone[child] = x[child] −
    x[parent]); `None` means "derive from the edges" (see `bone_pairs`).
    """

    num_nodes: int
    edges: tuple[Pair, ...]
    center: int
    source: str = "user-defined"
    bone_pairs: tuple[Pair, ...] | None = None
    name: str = "custom"

    def __post_init__(self):
        v = self.num_nodes
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"layout {self.name!r}: num_nodes must be a positive int, got {v!r}")
        edges = tuple((int(i), int(j)) for i, j in self.edges)
        object.__setattr__(self, "edges", edges)
        for i, j in edges:
            if not (0 <= i < v and 0 <= j < v):
                raise ValueError(f"layout {self.name!r}: edge {(i, j)} outside 0..{v - 1}")
            if i == j:
                raise ValueError(f"layout {self.name!r}: self-edge {(i, j)} "
                                 f"(self-links are implicit)")
        undirected = [frozenset(e) for e in edges]
        if len(set(undirected)) != len(undirected):
            raise ValueError(f"layout {self.name!r}: duplicate edges in {edges}")
        if not 0 <= int(self.center) < v:
            raise ValueError(f"layout {self.name!r}: center {self.center} outside 0..{v - 1}")
        object.__setattr__(self, "center", int(self.center))
        if self.bone_pairs is not None:
            pairs = tuple((int(c), int(p)) for c, p in self.bone_pairs)
            for c, p in pairs:
                if not (0 <= c < v and 0 <= p < v):
                    raise ValueError(f"layout {self.name!r}: bone pair {(c, p)} outside 0..{v - 1}")
            object.__setattr__(self, "bone_pairs", pairs)


def _one_based(pairs: Sequence[Pair]) -> tuple[Pair, ...]:
    return tuple((i - 1, j - 1) for i, j in pairs)


# NTU RGB+D (Kinect v2, 25 joints), 1-based as written in st-gcn `graph.py:52-58` and in
# 2s-AGCN/CTR-GCN `graph/ntu_rgb_d.py` (identical lists). The hand joints 22-25 chain as
# 22->23->8 and 24->25->12.
_NTU_EDGES_1B = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
)
# pyskl `pyskl/utils/graph.py` (kennymckormick/pyskl @ 4d290ec7, layout 'nturgb+d'; mmaction2
# `mmaction/models/utils/graph.py` has the same list): hand tip AND thumb both attach to the hand.
_NTU_PYSKL_EDGES_1B = _NTU_EDGES_1B[:20] + ((22, 8), (23, 8), (24, 12), (25, 12))
# 2s-AGCN `data_gen/gen_bone_data.py` 'ntu/xsub' pairs (1-based, (child, parent)); CTR-GCN
# `feeders/bone_pairs.py` and pyskl `JointToBone('nturgb+d')` (0-based) use the same 25 pairs,
# including the zero bone (21, 21) of the root.
_NTU_BONES_1B = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 23), (21, 21), (23, 8), (24, 25), (25, 12),
)
# NW-UCLA (Kinect v1, 20 joints), CTR-GCN (Uason-Chen/CTR-GCN @ e1eef2d5) `graph/ucla.py`.
# CTR-GCN defines no centre; the edges are rooted at joint 3 (shoulder centre) and its feeder's
# bone list pairs (3, 3), so the centre is 3 (1-based) = 2 (0-based), our choice.
_UCLA_EDGES_1B = (
    (1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10),
    (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
)
# CTR-GCN `feeders/feeder_ucla.py` `self.bone` (1-based).
_UCLA_BONES_1B = (
    (1, 2), (2, 3), (3, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10),
    (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
)

LAYOUTS: dict[str, Layout] = {
    "openpose": Layout(
        name="openpose",
        num_nodes=18,
        edges=((4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5),
               (8, 2), (5, 1), (2, 1), (0, 1), (15, 0), (14, 0), (17, 15), (16, 14)),
        center=1,
        source="yysijie/st-gcn@221c0e15 net/utils/graph.py:42-50; bones: lshi/2s-AGCN "
               "data_gen/gen_bone_data.py 'kinetics' (= pyskl JointToBone 'openpose')",
        bone_pairs=((0, 0), (1, 0), (2, 1), (3, 2), (4, 3), (5, 1), (6, 5), (7, 6), (8, 2),
                    (9, 8), (10, 9), (11, 5), (12, 11), (13, 12), (14, 0), (15, 0), (16, 14),
                    (17, 15)),
    ),
    "ntu-rgb+d": Layout(
        name="ntu-rgb+d",
        num_nodes=25,
        edges=_one_based(_NTU_EDGES_1B),
        center=20,
        source="yysijie/st-gcn@221c0e15 net/utils/graph.py:51-61 (= 2s-AGCN/CTR-GCN "
               "graph/ntu_rgb_d.py); bones: 2s-AGCN data_gen/gen_bone_data.py 'ntu/xsub'",
        bone_pairs=_one_based(_NTU_BONES_1B),
    ),
    "ntu-pyskl": Layout(
        name="ntu-pyskl",
        num_nodes=25,
        edges=_one_based(_NTU_PYSKL_EDGES_1B),
        center=20,
        source="kennymckormick/pyskl@4d290ec7 pyskl/utils/graph.py layout 'nturgb+d' (= mmaction2 "
               "mmaction/models/utils/graph.py); bones: pyskl JointToBone 'nturgb+d'",
        bone_pairs=_one_based(_NTU_BONES_1B),
    ),
    "coco": Layout(
        name="coco",
        num_nodes=17,
        edges=((15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5),
               (10, 8), (8, 6), (5, 0), (6, 0), (1, 0), (3, 1), (2, 0), (4, 2)),
        center=0,
        source="kennymckormick/pyskl@4d290ec7 pyskl/utils/graph.py layout 'coco'; bones: pyskl "
               "JointToBone 'coco'",
        bone_pairs=((0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (5, 0), (6, 0), (7, 5), (8, 6),
                    (9, 7), (10, 8), (11, 0), (12, 0), (13, 11), (14, 12), (15, 13), (16, 14)),
    ),
    "nw-ucla": Layout(
        name="nw-ucla",
        num_nodes=20,
        edges=_one_based(_UCLA_EDGES_1B),
        center=2,
        source="Uason-Chen/CTR-GCN@e1eef2d5 graph/ucla.py (centre 2 is our choice: the edge "
               "root); bones: CTR-GCN feeders/feeder_ucla.py self.bone",
        bone_pairs=_one_based(_UCLA_BONES_1B),
    ),
}

# Spellings used by other code bases and configs.
ALIASES = {"ntu_rgbd": "ntu-rgb+d", "ntu-rgbd": "ntu-rgb+d", "kinetics": "openpose",
           "ntu_pyskl": "ntu-pyskl", "ucla": "nw-ucla", "nw_ucla": "nw-ucla"}

STRATEGIES = ("uniform", "distance", "spatial", "agcn")


def get_layout(spec: str | Layout | Mapping | Sequence) -> Layout:
    """A layout by name, an existing `Layout`, or a custom one from `(num_nodes, edges, center)`.

    A mapping may also give `source`, `bone_pairs` and `name`.
    """
    if isinstance(spec, Layout):
        return spec
    if isinstance(spec, str):
        key = ALIASES.get(spec, spec)
        if key not in LAYOUTS:
            raise ValueError(f"unknown layout {spec!r}; known: {sorted(LAYOUTS)} "
                             f"(or pass (num_nodes, edges, center))")
        return LAYOUTS[key]
    if isinstance(spec, Mapping):
        return Layout(**dict(spec))
    if isinstance(spec, Sequence) and len(spec) == 3:
        num_nodes, edges, center = spec
        return Layout(num_nodes=int(num_nodes), edges=tuple(edges), center=int(center))
    raise TypeError(f"cannot build a layout from {spec!r}")


def hop_distance(layout: Layout, max_hop: int = 1) -> np.ndarray:
    """Hop distances truncated at `max_hop` (farther pairs are inf), as upstream computes them."""
    v = layout.num_nodes
    adj = np.eye(v)
    for i, j in layout.edges:
        adj[i, j] = adj[j, i] = 1
    hop_dis = np.full((v, v), np.inf)
    reach = [np.linalg.matrix_power(adj, d) > 0 for d in range(max_hop + 1)]
    for d in range(max_hop, -1, -1):
        hop_dis[reach[d]] = d
    return hop_dis


def normalize_digraph(a: np.ndarray) -> np.ndarray:
    """`A · D⁻¹` with `D` the column sums (zero columns stay zero): each column sums to 1."""
    col = a.sum(0)
    inv = np.zeros_like(col)
    np.divide(1.0, col, out=inv, where=col > 0)
    return a @ np.diag(inv)


def _edge_matrix(pairs, v: int) -> np.ndarray:
    m = np.zeros((v, v))
    for i, j in pairs:
        m[j, i] = 1
    return m


def build_adjacency(layout: str | Layout, strategy: str = "spatial", max_hop: int = 1,
                    dilation: int = 1) -> np.ndarray:
    """The `(K, V, V)` float32 adjacency; `A[k, v, w]` weights source joint v -> target joint w."""
    layout = get_layout(layout)
    v = layout.num_nodes
    if strategy == "agcn":
        a = np.stack([np.eye(v), normalize_digraph(_edge_matrix(layout.edges, v)),
                      normalize_digraph(_edge_matrix([(j, i) for i, j in layout.edges], v))])
        return a.astype(np.float32)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {STRATEGIES}")
    if max_hop < 1 or dilation < 1:
        raise ValueError(f"max_hop and dilation must be >= 1, got {max_hop}, {dilation}")
    hop_dis = hop_distance(layout, max_hop)
    valid_hop = range(0, max_hop + 1, dilation)
    adjacency = np.zeros((v, v))
    for hop in valid_hop:
        adjacency[hop_dis == hop] = 1
    norm = normalize_digraph(adjacency)

    if strategy == "uniform":
        return norm[None].astype(np.float32)
    if strategy == "distance":
        a = np.zeros((len(valid_hop), v, v))
        for k, hop in enumerate(valid_hop):
            a[k][hop_dis == hop] = norm[hop_dis == hop]
        return a.astype(np.float32)

    c = layout.center
    subsets = []
    for hop in valid_hop:
        root, close, further = np.zeros((v, v)), np.zeros((v, v)), np.zeros((v, v))
        for i in range(v):
            for j in range(v):
                if hop_dis[j, i] != hop:
                    continue
                # inf == inf is True here: the upstream quirk this module must reproduce.
                if hop_dis[j, c] == hop_dis[i, c]:
                    root[j, i] = norm[j, i]
                elif hop_dis[j, c] > hop_dis[i, c]:
                    close[j, i] = norm[j, i]
                else:
                    further[j, i] = norm[j, i]
        if hop == 0:
            subsets.append(root)
        else:
            subsets.extend([root + close, further])
    return np.stack(subsets).astype(np.float32)


def num_subsets(strategy: str = "spatial", max_hop: int = 1, dilation: int = 1) -> int:
    """K for a strategy without building the graph."""
    n_hops = len(range(0, max_hop + 1, dilation))
    return {"uniform": 1, "distance": n_hops, "spatial": 2 * n_hops - 1, "agcn": 3}[strategy]


def bone_pairs(layout: str | Layout) -> tuple[Pair, ...]:
    """`(child, parent)` pairs, one per joint, for bone features `x[child] - x[parent]`.

    Built-in layouts use the published lists (see `Layout.source`); a custom layout without
    explicit pairs uses its inward edges plus the zero bone `(center, center)`.
    """
    layout = get_layout(layout)
    if layout.bone_pairs is not None:
        return layout.bone_pairs
    return ((layout.center, layout.center),) + layout.edges


def bone_index(pairs: str | Layout | Sequence[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """`(children, parents)` index arrays of `pairs` (or of a layout's `bone_pairs`), for one
    gather `bone[..., children] = x[..., children] - x[..., parents]` instead of a Python loop
    over the pairs. A child listed twice keeps its last parent, as assigning pair by pair does
    (numpy does not promise which value a repeated index gets)."""
    if isinstance(pairs, (str, Layout)):
        pairs = bone_pairs(pairs)
    parent_of = {int(c): int(p) for c, p in pairs}  # later pairs overwrite earlier ones
    children = np.fromiter(parent_of.keys(), np.intp, len(parent_of))
    return children, np.fromiter(parent_of.values(), np.intp, len(parent_of))
