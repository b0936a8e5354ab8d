#!/usr/bin/env bash
# One run on a machine with an NVIDIA GPU, everything written to one folder:
#
#   bash bench/accelerator_check.sh OUT_DIR            # needs jax with a CUDA plugin
#   FASTGD_ALLOW_CPU=1 bash bench/accelerator_check.sh OUT_DIR   # dry run on a CPU
#
# It runs the repository in place (PYTHONPATH, nothing installed or downloaded), so the
# machine needs Python with numpy, numba, jax (+ CUDA plugin), optax, scikit-learn,
# pytest, pytest-benchmark, matplotlib and tqdm. Steps, each under its own time limit
# (about 11 minutes in all):
#   1. environment: versions, devices (OUT/info.txt, OUT/nvidia-smi.txt);
#   2. the jax tests on the GPU (OUT/tests.txt);
#   3. a full-batch gradient on at least 2 GB of X on the GPU against the GPU's measured
#      memory bandwidth (OUT/gradient.json);
#   4. `fastgd compare` with the GPU's rows at GPU-sized problems: the mini-batch and
#      full-batch problems of every model family, fastgd's backends against the optax
#      loop on each jax platform, with the time-to-a-model curves (OUT/compare/);
#   5. `fastgd compare` of the per-sample problems (squared, hinge, logistic, sparse
#      logistic) at a size per-sample SGD finishes in seconds, against scikit-learn
#      (OUT/compare-sgd/).
# A step that fails is recorded in OUT/summary.txt and the next one still runs.
set -u
OUT=${1:?usage: bash bench/accelerator_check.sh OUT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export NUMBA_CACHE_DIR="$OUT/cache/numba" FASTGD_JAX_CACHE_DIR="$OUT/cache/jax"
export XLA_PYTHON_CLIENT_PREALLOCATE=false
PY=${PYTHON:-python3}
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

step() {  # step NAME LIMIT_SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    echo "$name: exit $rc after $((SECONDS - start)) s (limit $limit s)" | tee -a "$SUMMARY"
}

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi" > "$OUT/nvidia-smi.txt"
step info 60 "$PY" -m fastgd info > "$OUT/info.txt" 2>&1
if ! "$PY" -c "import jax, sys; sys.exit(0 if jax.devices('gpu') else 1)" 2>/dev/null; then
    if [ -z "${FASTGD_ALLOW_CPU:-}" ]; then
        echo "jax sees no GPU: see $OUT/info.txt (FASTGD_ALLOW_CPU=1 for a dry run)" \
            | tee -a "$SUMMARY"
        exit 1
    fi
    echo "dry run: no GPU, the jax steps run on the CPU" | tee -a "$SUMMARY"
fi

# 2. The jax backend's tests and the cross-backend parity, on jax's default device (the GPU).
step tests 240 "$PY" -m pytest -q -p no:cacheprovider -x \
    tests/test_jax_backend.py tests/test_parity.py tests/test_kernels.py tests/test_contract.py \
    -k "jax" > "$OUT/tests.txt" 2>&1

# 3. One full-batch gradient on 2 GiB of float64 X, against the device's bandwidth.
step gradient 120 "$PY" bench/accelerator_gradient.py "$OUT/gradient.json" \
    > "$OUT/gradient.txt" 2>&1

# 4. The comparison, with GPU rows, at sizes where a GPU has enough work (per-sample SGD,
#    latency-bound and minutes long on numpy at these sizes, is step 5's, smaller).
step compare 300 "$PY" -m fastgd compare --sizes 65536,1048576 \
    --problems adam,gd,hinge-adam,logistic-gd,softmax-adam,softmax-gd --peers optax \
    --dtype float32 --no-progress --markdown --out "$OUT/compare" > "$OUT/compare.txt" 2>&1

# 5. The per-sample problems (and the sparse family) against scikit-learn, in float64.
step compare-sgd 150 "$PY" -m fastgd compare --sizes 16384 \
    --problems sgd,hinge-sgd,logistic-sgd,sparse --peers sklearn --dtype float64 \
    --no-progress --markdown --out "$OUT/compare-sgd" > "$OUT/compare-sgd.txt" 2>&1

cat "$SUMMARY"
