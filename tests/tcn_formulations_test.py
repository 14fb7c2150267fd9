"""benchmarks/tcn_formulations.py: times every formulation on the ST-GCN block shapes."""

import json

import pytest

from benchmarks import tcn_formulations


def test_block_shapes_are_st_gcn_temporal_convs():
    assert tcn_formulations.block_shapes(300) == {
        "64ch_T300": (64, 300, 1), "128ch_T300_s2": (128, 300, 2), "128ch_T150": (128, 150, 1),
        "256ch_T150_s2": (256, 150, 2), "256ch_T75": (256, 75, 1)}
    # odd lengths follow the strided conv's (T - 1) // 2 + 1 output frames
    assert tcn_formulations.block_shapes(13)["256ch_T4"] == (256, 4, 1)


@pytest.mark.slow  # a benchmark tool's full run; its helpers are tested in the default suite
def test_every_formulation_is_timed_and_agrees_with_the_matmul(capsys):
    tcn_formulations.main(["--batch", "1", "--frames", "10", "--iters", "1"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["blocks"]) == set(tcn_formulations.block_shapes(10))
    for block in result["blocks"].values():
        for impl in ("matmul", "conv", "fft"):
            assert block[f"{impl}_fwd_ms"] > 0 and block[f"{impl}_fwd_bwd_ms"] > 0
            assert block["max_rel_diff_vs_matmul"][impl] <= 1e-5
