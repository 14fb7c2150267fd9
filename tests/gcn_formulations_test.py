"""benchmarks/gcn_formulations.py: times the graph conv's formulations on the block shapes."""

import json

import pytest

from benchmarks import gcn_formulations


def test_block_shapes_are_st_gcn_graph_convs():
    assert gcn_formulations.block_shapes(300) == {
        "3to64_T300": (3, 64, 300), "64_T300": (64, 64, 300), "64to128_T300": (64, 128, 300),
        "128_T150": (128, 128, 150), "128to256_T150": (128, 256, 150),
        "256_T75": (256, 256, 75)}


@pytest.mark.slow  # a benchmark tool's full run; its helpers are tested in the default suite
def test_every_formulation_is_timed_and_agrees(capsys):
    blocks = ["3to64_T6", "64to128_T6", "256_T2"]  # both graph-conv orders
    gcn_formulations.main(["--batch", "1", "--frames", "6", "--iters", "1",
                           "--blocks", ",".join(blocks)])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["blocks"]) == set(blocks)
    for block in result["blocks"].values():
        for impl in ("factored", "sparse"):
            assert block[f"{impl}_fwd_bwd_ms"] > 0 and block["compile_s"][impl] > 0
            assert block["max_rel_diff"][impl] <= 1e-5
