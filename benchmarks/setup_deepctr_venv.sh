#!/usr/bin/env bash
# Create benchmarks/.venv-deepctr: an isolated environment holding DeepCTR-Torch
# 0.3.0 next to the same PyTorch release the project uses.
#
# torch is pinned and installed first, so that nothing afterwards can resolve an
# unpinned torch (which would fetch a large CUDA build). deepctr-torch is then
# installed with --no-deps for the same reason, and its runtime requirements are
# added explicitly. Running the script again only fills in what is missing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${DEEPCTR_VENV:-$HERE/.venv-deepctr}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"
DEEPCTR_VERSION="0.3.0"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check --no-input)

installed_version() {
    "$PY" - "$1" <<'PYEOF'
import sys
from importlib import metadata

try:
    print(metadata.version(sys.argv[1]))
except metadata.PackageNotFoundError:
    print("")
PYEOF
}

torch_now="$(installed_version torch)"
if [ "${torch_now%%+*}" != "$TORCH_VERSION" ]; then
    "${PIP[@]}" install "torch==$TORCH_VERSION"
fi

if [ "$(installed_version deepctr-torch)" != "$DEEPCTR_VERSION" ]; then
    "${PIP[@]}" install --no-deps "deepctr-torch==$DEEPCTR_VERSION"
fi

# Runtime requirements of deepctr-torch, with torch held at the pinned release.
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==$(installed_version torch)" >"$constraints"
"${PIP[@]}" install -q -c "$constraints" scikit-learn tqdm requests pandas numpy

# Import check, through the benchmark's own import (no version-check thread).
"$PY" - "$HERE" <<'PYEOF'
import sys

sys.path.insert(0, sys.argv[1])
import torch
from deepctr_fibinet import import_deepctr

print(f"torch {torch.__version__}, deepctr-torch {import_deepctr().__version__} ready")
PYEOF
