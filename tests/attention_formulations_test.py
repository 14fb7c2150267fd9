"""benchmarks/attention_formulations.py: times the attention formulations on AM-STGCN's shape."""

import json

import pytest

from benchmarks import attention_formulations


def test_attention_shape_is_the_layer3_convt_block():
    # NTU T=300, batch 4: 8 sequences of 300·25 positions against 150·13 pooled keys
    assert attention_formulations.attention_shape("ntu", 300, 4) == (8, 7500, 1950)
    # Kinetics T=150: 2,700 positions against 75·9 keys (ceil mode keeps the odd joint)
    assert attention_formulations.attention_shape("kinetics", 150, 4) == (8, 2700, 675)


def test_every_formulation_is_timed_and_agrees_with_the_reference(capsys):
    attention_formulations.main(["--batch", "1", "--frames", "6", "--iters", "1",
                                 "--impls", "reference,xla,chunked8,chunked14"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (block,) = result["blocks"].values()
    for impl in ("reference", "xla", "chunked8", "chunked14"):
        assert block[f"{impl}_fwd_ms"] > 0 and block[f"{impl}_fwd_bwd_ms"] > 0
        assert block["max_rel_diff_vs_reference"][impl] <= 1e-5


def test_unknown_formulation_is_refused():
    with pytest.raises(SystemExit, match="unknown formulation"):
        attention_formulations.attend_fn("chunky")
