"""benchmarks/memory_profile.py: the live-range sweep, and the tool on a small model end to end
(XLA's dumps can only be switched on before the backend starts, so that part runs in a
subprocess)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import memory_profile

ROOT = Path(__file__).resolve().parents[1]

HLO = """HloModule jit_f, is_scheduled=true

%fused (p: f32[4]) -> f32[4] {
  %p = f32[4]{0} parameter(0)
  ROOT %inner = f32[4]{0} negate(%p)
}

ENTRY %main (x: f32[4]) -> f32[] {
  %x = f32[4]{0} parameter(0)
  %a = f32[4]{0} exponential(%x), metadata={op_name="jit(f)/jvp(M)/block3/exp"}
  %b = f32[4]{0} fusion(%a), kind=kLoop, calls=%fused
  %c = f32[4]{0} add(%b, %x), metadata={op_name="jit(f)/transpose(jvp(M))/block3/add"}
  ROOT %d = f32[] reduce(%a, %c), metadata={op_name="jit(f)/reduce_sum"}
}
"""

ASSIGNMENT = """allocation 0: size 16, parameter 0, shape |f32[4]| at ShapeIndex {}:
 value: <0 x @0> (size=16,offset=0): f32[4]{0}
allocation 1: size 48, preallocated-temp:
 value: <1 a @0> (size=16,offset=0): f32[4]{0}
 value: <2 b @0> (size=16,offset=16): f32[4]{0}
 value: <3 c @0> (size=16,offset=32): f32[4]{0}
 value: <4 inner @0> (size=16,offset=16): f32[4]{0}
"""

VALUES = """Used values:
<1 a @0>
 positions:
  a
 uses:
  b, operand 0
  d, operand 0
 from instruction: %a = f32[4]{0} exponential(%x)
<2 b @0>
 positions:
  b
 uses:
  c, operand 0
 from instruction: %b = f32[4]{0} fusion(%a)
<3 c @0>
 positions:
  c
 uses:
  d, operand 1
 from instruction: %c = f32[4]{0} add(%b, %x)
"""


def test_sweep_reads_the_schedule_values_and_uses_and_finds_the_peak():
    order = memory_profile.entry_schedule(HLO)
    assert [name for name, _ in order] == ["x", "a", "b", "c", "d"]
    values = memory_profile.temp_values(ASSIGNMENT)
    assert [v[1] for v in values] == ["a", "b", "c", "inner"] and values[0][2] == 16
    uses = memory_profile.value_uses(VALUES)
    assert uses[1] == ["a", "b", "d"] and uses[3] == ["c", "d"]
    ranges = memory_profile.live_ranges(order, values, uses)
    # `inner` is defined inside a fused computation: not an ENTRY value, not counted.
    assert sorted((r[3], r[0], r[1]) for r in ranges) == [("a", 1, 4), ("b", 2, 3), ("c", 3, 4)]
    assert memory_profile.peak(ranges, len(order)) == (48, 3)  # a, b and c live at %c
    assert memory_profile.source_group("jit(f)/transpose(jvp(M))/block3/add") == "bwd block* .. add"
    assert memory_profile.source_group("jit(f)/jvp(M)/block7/tcn_conv/jit(fft)/fft") == (
        "fwd block*/tcn_conv .. fft")
    assert memory_profile.source_group("") == "(no source)"


def test_no_temp_buffer_gives_no_values():
    assert memory_profile.temp_values("allocation 0: size 16, parameter 0:\n") == []


@pytest.mark.slow  # a benchmark tool's full run; its helpers are tested in the default suite
def test_tool_on_a_small_model_train_step_and_eval_forward(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "memory_profile.py"), "--top", "5",
         "--common", "batch=1,frames=12,persons=1,dtype=float32",
         "--variant", "train", "--variant", "infer:mode=infer", "--dump-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=280, cwd=ROOT, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    train, infer = res["variants"]["train"], res["variants"]["infer"]
    for info in (train, infer):
        assert 0 < info["peak_live_mib"] <= info["xla_temp_mib"] * (1 + 1e-6)
        mib = [g["mib"] for g in info["groups_at_peak"]]
        assert mib == sorted(mib, reverse=True)
        assert sum(mib) == pytest.approx(info["peak_live_mib"], rel=1e-9)
        assert all(b["live"][0] <= info["peak_at"] <= b["live"][1]
                   for b in info["largest_at_peak"])
    # Training holds the forward's residuals at its peak; the eval forward holds far less.
    assert train["peak_live_mib"] > 2 * infer["peak_live_mib"]
    assert any(g["source"].startswith("fwd ") for g in train["groups_at_peak"])
    assert (tmp_path / "train").is_dir() and (tmp_path / "infer").is_dir()
