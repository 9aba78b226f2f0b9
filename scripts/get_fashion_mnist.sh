#!/bin/sh
# Make Fashion-MNIST available to xpmlp: use a copy that is already there; on Debian/Ubuntu
# as root install the `dataset-fashion-mnist` package; otherwise let xpmlp download it from
# the official mirror (SHA-256 checked) into the user cache.
set -eu
PY=${1:-python3}
if "$PY" -c "from xpmlp.data import load_dataset; load_dataset('fashion-mnist', download=False)" >/dev/null 2>&1; then
    echo "Fashion-MNIST: found"
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "Fashion-MNIST: installing Debian's dataset-fashion-mnist package"
    if ! apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; then
        apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null
    fi
    exit 0
fi
echo "Fashion-MNIST: downloading (checked against its SHA-256)"
"$PY" -c "from xpmlp.data import load_dataset; load_dataset('fashion-mnist', download=True)"
