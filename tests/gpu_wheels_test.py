"""benchmarks/gpu_wheels.sh carries the versions this project pins and tests with, so a GPU run
reads data with the same TFDS / grain / array_record as the CPU suite."""

import importlib.metadata
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _script_pins() -> dict[str, str]:
    text = (ROOT / "benchmarks" / "gpu_wheels.sh").read_text()
    block = re.search(r"WHEELS=\((.*?)\)", text, re.DOTALL).group(1)
    pins = dict(item.split("==") for item in block.split())
    return {_norm(k): v for k, v in pins.items()}


def test_wheels_match_pyproject_pins_and_the_tested_environment():
    pins = _script_pins()
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pyproject = {_norm(k): v for k, v in (d.split("==") for d in deps if "==" in d)}
    for name in ("tensorflow-datasets", "grain", "array-record", "ml-collections",
                 "importlib-resources"):
        assert pins[name] == pyproject[name], name
    for name, version in pins.items():
        assert importlib.metadata.version(name) == version, name
