"""benchmarks/gemm_ceiling.py: the GEMM shapes it times are the model's temporal-conv GEMMs."""

from benchmarks import gemm_ceiling, train_step_benchmark


def test_tcn_gemm_cases_add_up_to_the_temporal_conv_flops_of_st_gcn():
    batch = 3
    cases = gemm_ceiling.gemm_cases(batch)
    flops = {name: 2 * m * k * n for name, (m, k, n, _) in cases.items()}
    # Forward, input gradient and weight gradient do the same work, per channel width.
    for c in (64, 128, 256):
        assert flops[f"tcn{c}_fwd"] == flops[f"tcn{c}_dinput"] == flops[f"tcn{c}_dweight"]
    # ST-GCN has 4 / 3 / 3 temporal convs at 64 / 128 / 256 channels; per clip (V=25, M=2,
    # T=300) their FLOPs are the (9, 1) conv term of the harness's analytic count.
    per_clip, t = 0, 300
    for _, cout, stride in train_step_benchmark.BLOCKS:
        t = (t - 1) // stride + 1
        per_clip += 2 * 2 * cout * cout * 9 * t * 25
    model = 4 * flops["tcn64_fwd"] + 3 * flops["tcn128_fwd"] + 3 * flops["tcn256_fwd"]
    assert model == batch * per_clip
    assert cases["tcn64_dweight"][3] == "tn" and cases["tcn64_fwd"][:2] == (25 * 2 * batch * 300,
                                                                            9 * 64)
