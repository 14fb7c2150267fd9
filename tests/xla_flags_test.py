"""The entry points' XLA flag defaults never override what the user set."""

import os

from amstgcn_jax import xla_flags


def test_adds_workaround_and_keeps_user_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    xla_flags.apply_gpu_workarounds()
    assert os.environ["XLA_FLAGS"].split() == [
        "--xla_force_host_platform_device_count=8", "--xla_gpu_enable_triton_gemm=false"]


def test_user_choice_wins(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_enable_triton_gemm=true")
    xla_flags.apply_gpu_workarounds()
    assert os.environ["XLA_FLAGS"] == "--xla_gpu_enable_triton_gemm=true"
