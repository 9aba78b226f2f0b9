#!/usr/bin/env bash
# Everything GPU-related in one command, for the day an NVIDIA GPU is lent (no internet needed).
#
#   bash scripts/gpu_check.sh [--only STEP ...] [--skip STEP ...] [--require-gpu auto|yes|no] [--budget S]
#
# Environment: PYTHON (default python3 on PATH), OUT (default ./gpu-check), XPMLP_DATA (default ./.data
# when it exists), GPU_CHECK_BUDGET (seconds, default 540), GPU_CHECK_REQUIRE_GPU (auto|yes|no).
# Wheels in .whl/ (pip download --no-deps -d .whl array-api-compat array-api-strict pooch platformdirs)
# are installed when their package is missing; xpmlp itself is used from this checkout via PYTHONPATH.
# Writes $OUT/gpu-check.json after every step, logs/ and the checks' own JSON, then packs all of $OUT into
# $OUT/gpu-check-results.tar.gz (a lent machine returns few files); exits 1 if a step failed.
# On a machine without a usable GPU the GPU steps are skipped with their reason and it exits 0.
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd) || exit 2
OUT=${OUT:-$REPO/gpu-check}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || exit 2  # absolute, relative to where it was started
cd "$REPO" || exit 2
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || { echo "error: no Python '$PY' on PATH; set PYTHON=/path/to/python" >&2; exit 2; }
export OUT MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${XPMLP_DATA:-}" ] && [ -d "$REPO/.data" ]; then
    export XPMLP_DATA="$REPO/.data"
fi

# The wheels whose package this Python lacks: pip without an index, else unpacked onto PYTHONPATH
# (pip may be missing or refuse a system Python; setuptools may be missing, hence no pip install -e .).
GPU_CHECK_WHEELS=""
site=""
if ls .whl/*.whl >/dev/null 2>&1; then
    mkdir -p "$OUT/logs"
    missing=$("$PY" scripts/gpu_check.py missing-wheels .whl) || missing=""
    names=$(for w in $missing; do basename "$w"; done | paste -sd ' ' -)
    if [ -z "$missing" ]; then
        GPU_CHECK_WHEELS="nothing to install: every wheel in .whl/ is installed already"
    elif "$PY" -m pip install --disable-pip-version-check --no-index --no-deps $missing >"$OUT/logs/pip.log" 2>&1; then
        GPU_CHECK_WHEELS="pip installed: $names"
    elif site=$(mktemp -d "${TMPDIR:-/tmp}/xpmlp-gpu-check-site.XXXXXX") &&
            "$PY" scripts/gpu_check.py unpack-wheels "$site" $missing; then
        export PYTHONPATH="$PYTHONPATH:$site"
        GPU_CHECK_WHEELS="pip could not install them (logs/pip.log); unpacked into $site: $names"
    else
        GPU_CHECK_WHEELS="failed: neither pip (logs/pip.log) nor unpacking could install $names"
    fi
fi
export GPU_CHECK_WHEELS

"$PY" scripts/gpu_check.py run --out "$OUT" "$@"
rc=$?
[ -n "$site" ] && rm -rf "$site"
exit $rc
