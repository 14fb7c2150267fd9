#!/usr/bin/env bash
# Wheels of the packages train.py and the input pipeline need that the lent GPU machines' image
# ('cuda', Python 3.12) lacks: TFDS, grain, array_record, ml_collections and their own needs.
# Without them gpu_benchmark.sh's last two steps (train.py end to end, the host pipeline) fail.
#
#   bash benchmarks/gpu_wheels.sh [DIR]      # default DIR: .whl (added to .git/info/exclude)
#
# Then, in the device call (carry [".whl"]):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit; ...
# Versions are pyproject.toml's pins and, for their dependencies, those this project's
# environment resolved (tests/gpu_wheels_test.py checks the pins agree). About 11 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.whl}
PY=${PYTHON:-python3}
PY_VERSION=${PY_VERSION:-3.12}
mkdir -p "$DIR"
if [[ "$DIR" == .whl && -d .git ]] && ! grep -qx '/.whl/' .git/info/exclude 2>/dev/null; then
  mkdir -p .git/info && echo '/.whl/' >> .git/info/exclude
fi
WHEELS=(
  tensorflow-datasets==4.9.10 grain==0.2.18 array-record==0.8.6 ml-collections==1.1.0
  tensorboardx==2.6.5 importlib-resources==7.1.0
  dm-tree==0.1.10 docstring-parser==0.18.0 googleapis-common-protos==1.76.0
  immutabledict==4.3.1 portpicker==1.6.0 simple-parsing==0.1.9 tensorflow-metadata==1.21.0
  termcolor==3.3.0 toml==0.10.2
)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$DIR" "${WHEELS[@]}"
# promise (a TFDS need) is published only as a source archive; its wheel is pure Python.
"$PY" -m pip wheel -q --no-deps -w "$DIR" promise==2.3
ls "$DIR"
