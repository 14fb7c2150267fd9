"""Skeleton layouts and adjacency builders vs the upstream `A` buffers."""

import itertools
import os
from pathlib import Path

import numpy as np
import pytest

from amstgcn_jax import graph

_FIXTURE_LAYOUTS = {"stgcn_kinetics_seed0": "openpose", "stgcn_ntu_seed0": "ntu-rgb+d"}
_AGCN_FIXTURE_LAYOUTS = {"agcn_kinetics_seed0": "openpose", "agcn_ntu_seed0": "ntu-rgb+d"}
_LAYOUT_FOR_V = {18: "openpose", 25: "ntu-rgb+d"}


def _connected(layout):
    adj = {i: set() for i in range(layout.num_nodes)}
    for i, j in layout.edges:
        adj[i].add(j)
        adj[j].add(i)
    seen, todo = {0}, [0]
    while todo:
        for n in adj[todo.pop()] - seen:
            seen.add(n)
            todo.append(n)
    return len(seen) == layout.num_nodes


@pytest.mark.parametrize("name", sorted(_FIXTURE_LAYOUTS))
def test_spatial_adjacency_equals_upstream_buffer(shared_dir, name):
    a_ref = np.load(shared_dir / "parity" / f"{name}.npz")["A"]
    a = graph.build_adjacency(_FIXTURE_LAYOUTS[name], "spatial")
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, a_ref)


def test_every_parity_npz_adjacency_is_reproduced(shared_dir):
    # Any fixture directory made the same way (other seeds) carries its own `A`.
    parity_dir = Path(os.environ.get("AMSTGCN_PARITY_DIR", shared_dir / "parity"))
    files = sorted(parity_dir.glob("*.npz"))
    assert files, f"no .npz fixtures in {parity_dir}"
    for f in files:
        a_ref = np.load(f)["A"]
        layout = _LAYOUT_FOR_V[a_ref.shape[-1]]
        np.testing.assert_array_equal(graph.build_adjacency(layout, "spatial"), a_ref,
                                      err_msg=f.name)


@pytest.mark.parametrize("name", sorted(_AGCN_FIXTURE_LAYOUTS))
def test_agcn_adjacency_equals_upstream(shared_dir, name):
    path = shared_dir / "parity-agcn" / f"{name}.npz"
    if not path.exists():
        pytest.skip(f"{path} absent")
    a = graph.build_adjacency(_AGCN_FIXTURE_LAYOUTS[name], "agcn")
    np.testing.assert_array_equal(a, np.load(path)["A"])


@pytest.mark.parametrize("layout,counts", [("openpose", (18, 25, 9)), ("ntu-rgb+d", (25, 40, 8))])
def test_spatial_nonzero_counts_match_notes(layout, counts):
    a = graph.build_adjacency(layout, "spatial")
    assert tuple(int((a[k] != 0).sum()) for k in range(3)) == counts


def test_truncated_distance_quirk_centrifugal_subset():
    # NOTES §2.4: A[2] only holds edges whose source is the centre or one of its neighbours.
    a = graph.build_adjacency("ntu-rgb+d", "spatial")
    src, dst = np.nonzero(a[2])
    assert sorted(zip(src.tolist(), dst.tolist())) == sorted(
        [(20, 1), (20, 2), (20, 4), (20, 8), (1, 0), (2, 3), (4, 5), (8, 9)])
    a = graph.build_adjacency("openpose", "spatial")
    src, dst = np.nonzero(a[2])
    assert sorted(zip(src.tolist(), dst.tolist())) == sorted(
        [(1, 0), (1, 2), (1, 5), (0, 14), (0, 15), (2, 3), (2, 8), (5, 6), (5, 11)])


@pytest.mark.parametrize("name", sorted(graph.LAYOUTS))
def test_layouts_are_trees_connected_zero_based(name):
    layout = graph.LAYOUTS[name]
    assert len(layout.edges) == layout.num_nodes - 1
    assert _connected(layout)
    assert min(min(e) for e in layout.edges) == 0
    assert max(max(e) for e in layout.edges) == layout.num_nodes - 1
    assert layout.source


_HOPS = ((1, 1), (2, 1), (2, 2), (3, 1))


@pytest.mark.parametrize("name,strategy,max_hop,dilation", [
    (n, s, h, d) for n, s, (h, d) in itertools.product(
        sorted(graph.LAYOUTS), ("uniform", "distance", "spatial"), _HOPS)])
def test_columns_sum_to_one_and_subset_count(name, strategy, max_hop, dilation):
    a = graph.build_adjacency(name, strategy, max_hop=max_hop, dilation=dilation)
    v = graph.LAYOUTS[name].num_nodes
    assert a.shape == (graph.num_subsets(strategy, max_hop, dilation), v, v)
    np.testing.assert_allclose(a.sum((0, 1)), np.ones(v), rtol=1e-6)
    # Subsets partition the neighbourhood: no (source, target) pair appears twice.
    assert ((a != 0).sum(0) <= 1).all()


def test_agcn_strategy_structure():
    a = graph.build_adjacency("ntu-rgb+d", "agcn")
    np.testing.assert_array_equal(a[0], np.eye(25, dtype=np.float32))
    assert int((a[1] != 0).sum()) == 24
    col1 = a[1].sum(0)
    assert np.isin(col1, (0.0, 1.0)).all() and col1[20] == 0  # the root has no inward neighbour


def test_ntu_variants_differ_only_in_hand_edges():
    st = set(graph.LAYOUTS["ntu-rgb+d"].edges)
    py = set(graph.LAYOUTS["ntu-pyskl"].edges)
    assert st - py == {(21, 22), (23, 24)}
    assert py - st == {(21, 7), (23, 11)}


def test_max_hop_two_uses_true_distance_within_two_hops():
    hop = graph.hop_distance(graph.LAYOUTS["ntu-rgb+d"], max_hop=2)
    assert hop[0, 20] == 2 and hop[3, 20] == 2 and np.isinf(hop[3, 0])


@pytest.mark.parametrize("name", sorted(graph.LAYOUTS))
def test_bone_pairs_one_per_joint(name):
    pairs = graph.bone_pairs(name)
    v = graph.LAYOUTS[name].num_nodes
    assert sorted(c for c, _ in pairs) == list(range(v))
    assert sum(c == p for c, p in pairs) == 1  # exactly one zero bone (the root)


def test_ntu_bone_pairs_are_2s_agcn():
    pairs = dict(graph.bone_pairs("ntu-rgb+d"))
    assert pairs[20] == 20 and pairs[21] == 22 and pairs[22] == 7 and pairs[0] == 1


def test_custom_layout_from_tuple_and_errors():
    layout = graph.get_layout((3, [(0, 1), (2, 1)], 1))
    a = graph.build_adjacency(layout, "spatial")
    assert a.shape == (3, 3, 3)
    np.testing.assert_allclose(a.sum((0, 1)), np.ones(3))
    assert graph.bone_pairs(layout) == ((1, 1), (0, 1), (2, 1))
    assert graph.get_layout({"num_nodes": 2, "edges": [(0, 1)], "center": 0}).num_nodes == 2
    with pytest.raises(ValueError, match="outside"):
        graph.get_layout((3, [(0, 3)], 1))
    with pytest.raises(ValueError, match="unknown layout"):
        graph.get_layout("nope")
    with pytest.raises(ValueError, match="unknown strategy"):
        graph.build_adjacency("coco", "bogus")
    assert graph.get_layout("ntu_rgbd") is graph.LAYOUTS["ntu-rgb+d"]
