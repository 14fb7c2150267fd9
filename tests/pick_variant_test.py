"""benchmarks/pick_variant.py: the harness flags of the fastest comparable sweep variant."""

import json

import pytest

from benchmarks import pick_variant


def _variant(clips, **config):
    base = {"model": "stgcn", "dataset": "ntu", "batch": 128, "dropout": None,
            "activation_layout": "auto", "gcn_impl": "auto", "tcn_impl": "auto",
            "attention_impl": None}
    return {"config": base | config, "clips_per_s": clips}


RESULTS = {"variants": {
    "ntu_auto": _variant(1000.0),
    "ntu_sparse": _variant(1100.0, activation_layout="VNTC", gcn_impl="sparse"),
    "ntu_b256": _variant(1500.0, batch=256),             # another benchmark: not a candidate
    "ntu_nodrop": _variant(1400.0, dropout=0.0),         # likewise
    "ntu_broken": {"config": {}, "error": "RuntimeError()"},  # failed to build: skipped
    "kin_auto": _variant(3000.0, dataset="kinetics"),
}}


def test_fastest_comparable_variant_and_its_flags():
    name, flags, gain = pick_variant.pick(RESULTS, "ntu_")
    assert name == "ntu_sparse"
    assert flags == ["--activation-layout", "VNTC", "--gcn-impl", "sparse"]
    assert gain == pytest.approx(1.1)


def test_defaults_give_no_flags_and_missing_prefix_is_an_error():
    assert pick_variant.pick(RESULTS, "kin_") == ("kin_auto", [], 1.0)
    with pytest.raises(SystemExit, match="no timed variant"):
        pick_variant.pick(RESULTS, "agcn_")


def test_a_batchnorm_backward_variant_is_a_candidate_and_old_sweeps_still_parse():
    results = {"variants": {
        "ntu_auto": _variant(1000.0),
        "ntu_bn_custom": _variant(1050.0, bn_impl="custom"),
        "ntu_am_bn_custom": _variant(2000.0, model="am_stgcn", bn_impl="custom"),  # other model
    }}
    assert pick_variant.pick(results, "ntu_")[:2] == ("ntu_bn_custom", ["--bn-impl", "custom"])
    # sweeps recorded before bn_impl existed have no such key: it reads as the default
    assert pick_variant.pick(RESULTS, "ntu_")[1] == [
        "--activation-layout", "VNTC", "--gcn-impl", "sparse"]


def test_main_reads_the_last_json_line(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text("log line\n" + json.dumps(RESULTS) + "\n")
    pick_variant.main([str(path), "ntu_"])
    out = capsys.readouterr()
    assert out.out.strip() == "--activation-layout VNTC --gcn-impl sparse"
    assert "picked ntu_sparse" in out.err
