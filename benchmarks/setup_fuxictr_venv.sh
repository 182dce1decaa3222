#!/usr/bin/env bash
# Create benchmarks/.venv-fuxictr (or $FUXICTR_VENV): an isolated environment
# holding FuxiCTR 2.3.10 next to the same PyTorch release the project uses.
#
# FuxiCTR is a benchmark-only peer and never a dependency of the package. Its
# wheel does not depend on torch, so torch is pinned and installed first (a
# later unpinned resolution could otherwise fetch a large CUDA build); FuxiCTR
# is then installed with its declared requirements (Ray among them, which its
# build_dataset / parquet path imports; benchmarks/fuxictr_fibinet.py does not
# use that path) under a constraint holding torch at the pinned release.
# Running the script again only fills in what is missing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${FUXICTR_VENV:-$HERE/.venv-fuxictr}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"
FUXICTR_VERSION="2.3.10"

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

constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==$(installed_version torch)" >"$constraints"
if [ "$(installed_version fuxictr)" != "$FUXICTR_VERSION" ]; then
    "${PIP[@]}" install -c "$constraints" "fuxictr==$FUXICTR_VERSION"
fi

# Import check, through the benchmark's own model (layers from the wheel).
"$PY" - "$HERE" <<'PYEOF'
import sys

sys.path.insert(0, sys.argv[1])
import fuxictr
import torch
from fuxictr_fibinet import FiBiNET  # noqa: F401

print(f"torch {torch.__version__}, fuxictr {fuxictr.__version__} ready")
PYEOF
