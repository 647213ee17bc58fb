#!/usr/bin/env bash
# The whole GPU check in one command (issue 27), for one lent GPU machine: at most ~6 minutes on an H100.
#
#   benchmarks/gpu_prepare.sh               # here, first: wheels into .whl/, reference material into .gpu/
#   benchmarks/gpu_check.sh                 # there (the device tool, carrying .whl and .gpu): CUDA, full sizes
#   benchmarks/gpu_check.sh --dry-run       # here: --device cpu, small sizes, proves the script end to end
#
# Steps, in order, each in its own time box (and all inside GPU_CHECK_BUDGET seconds), each recorded whether
# it passed, failed, timed out or was skipped, the script going on past a failure:
#   env           nvidia-smi; python, torch, CUDA, device name and memory
#   deps          the project's dependencies the image lacks, installed offline from .whl/ into a target dir
#   tests_cuda    the tests marked `cuda`
#   tests_engine  tests/test_engine.py's CUDA cases (fixtures in fp32, half precision) on the device
#   parity        the official fixtures, --device cuda --precision fp32, max |diff| <= 1e-5
#   speed_256     benchmarks/speed.py: official, fp32, bf16, fp16 at 256x256 -> 1024x1024, --gemm-share
#   speed_1024    the same at 1024x1024 -> 4096x4096
#   bigjob        `liif upscale --device cuda` 4000x3000 -> 8000x6000, automatic tile: time, peak GPU memory
#                 against the tile's forecast, whether an out-of-memory retry happened
#   oomcap        the out-of-memory retry under a 1 GiB cap (set_per_process_memory_fraction): tile halved,
#                 output equal to the uncapped one
# Writes gpu_check.log (everything), gpu_check_steps.jsonl (each step's record as it ends) and gpu_check.json
# (per step: status, seconds, results) into $OUT when set, else into .gpu-out/; prints the JSON and a table
# last. Exit status 0 only if every step passed or was skipped. GPU_CHECK_ONLY=parity,bigjob runs only those
# steps (a rerun of what failed); GPU_CHECK_BUDGET=SECONDS changes the overall budget.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DRY=${GPU_CHECK_DRY:-0}
[[ "${1:-}" == "--dry-run" ]] && DRY=1
if [[ "$DRY" == 1 ]]; then
    MODE=dry-run DEVICE=cpu BUDGET=${GPU_CHECK_BUDGET:-900}
else
    MODE=gpu DEVICE=${GPU_CHECK_DEVICE:-cuda} BUDGET=${GPU_CHECK_BUDGET:-345}
fi
OUTDIR=${OUT:-$ROOT/.gpu-out}
mkdir -p "$OUTDIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/liif-gpu-check.XXXXXX")
LOG=$OUTDIR/gpu_check.log
STEPS=$OUTDIR/gpu_check_steps.jsonl
: >"$LOG"
: >"$STEPS"
START=$(date +%s)
DEADLINE=$((START + BUDGET))
RESERVE=15 # seconds kept for the summary

# The GPU image's python3 holds torch; here the project's venv does.
if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON
elif [[ "$DRY" == 1 && -x "$ROOT/.venv/bin/python" ]]; then PY=$ROOT/.venv/bin/python
else PY=python3
fi
SITE=$WORK/site
mkdir -p "$SITE"
export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export LIIF_SHARED=${LIIF_SHARED:-$ROOT/.gpu/shared} HF_HUB_OFFLINE=1
WEIGHTS=$LIIF_SHARED/weights/edsr-baseline-liif.pth

log() { echo "$*" | tee -a "$LOG"; }

# step NAME CAP_SECONDS COMMAND...: runs COMMAND in a time box of CAP seconds or what is left of the budget,
# whichever is less; records {name, status, rc, seconds, timed_out, time_box} in $STEPS.
step() {
    local name=$1 cap=$2
    shift 2
    if [[ -n "${GPU_CHECK_ONLY:-}" && ",$GPU_CHECK_ONLY," != *",$name,"* ]]; then
        echo "{\"name\": \"$name\", \"status\": \"not selected\", \"rc\": null, \"seconds\": 0}" >>"$STEPS"
        return
    fi
    local left=$((DEADLINE - $(date +%s) - RESERVE))
    local box=$((cap < left ? cap : left))
    if ((box < 5)); then
        log "=== $name: skipped, the budget of ${BUDGET}s is spent"
        echo "{\"name\": \"$name\", \"status\": \"not run: budget spent\", \"rc\": null, \"seconds\": 0}" >>"$STEPS"
        return
    fi
    log "=== $name (time box ${box}s): $*"
    local t0 ms rc
    t0=$(date +%s%N)
    set -o pipefail
    timeout --kill-after=5 "$box" bash -c '"$@"' "$name" "$@" 2>&1 | tee -a "$LOG" # bash: steps may be functions
    rc=${PIPESTATUS[0]}
    set +o pipefail
    ms=$((($(date +%s%N) - t0) / 1000000))
    local status=done timed_out=false
    if ((rc == 124 || rc == 137)); then status="timed out" timed_out=true; fi
    log "=== $name: rc $rc"
    printf '{"name": "%s", "status": "%s", "rc": %d, "seconds": %s, "timed_out": %s, "time_box": %d}\n' \
        "$name" "$status" "$rc" "$((ms / 1000)).$(printf %03d $((ms % 1000)))" "$timed_out" "$box" >>"$STEPS"
}

run_tests() { # NAME FILES...: pytest with a JUnit record the summary reads (exit 5, nothing selected, is a failure)
    local name=$1
    shift
    "$PY" -m pytest -q -p no:cacheprovider --junitxml="$WORK/$name.xml" "$@"
}

env_step() {
    if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not on this machine"; fi
    "$PY" benchmarks/gpu_check.py env --json "$WORK/env.json" --device "$DEVICE"
}
export -f env_step run_tests
export PY WORK DEVICE
log "gpu_check: mode $MODE, device $DEVICE, budget ${BUDGET}s, log $LOG, work $WORK, python $PY"
log "started $(date -u +%Y-%m-%dT%H:%M:%SZ) in $ROOT (git $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"

step env 60 env_step
DEPS_FLAGS=()
[[ "$DRY" == 1 ]] && DEPS_FLAGS=(--all-wheels) # nothing is missing here: install them all, to prove they do
step deps 60 "$PY" benchmarks/gpu_check.py deps --json "$WORK/deps.json" --wheels "$ROOT/.whl" --target "$SITE" \
    "${DEPS_FLAGS[@]}"

mapfile -t CUDA_FILES < <(grep -l "pytest.mark.cuda" tests/test_*.py)
if [[ "$DRY" == 1 ]]; then
    step tests_cuda 120 run_tests tests_cuda "${CUDA_FILES[@]}" -m cuda # skipped here: the plumbing runs
    step tests_engine 240 run_tests tests_engine tests/test_engine.py -k "cpu and woman_down"
    step parity 240 "$PY" benchmarks/gpu_check.py parity --json "$WORK/parity.json" --device cpu \
        --precision fp32 --tolerance 1e-5 --cases woman_down_40w_70h,butterfly_237w_163h
    SPEED=(--model "$WEIGHTS" --device cpu --paths official,fp32,bf16 --gemm-share --no-memory --repeats 1)
    step speed_256 240 "$PY" benchmarks/speed.py "${SPEED[@]}" --input 16x16 --scale 4 --json "$WORK/speed_256.json"
    step speed_1024 120 "$PY" benchmarks/speed.py "${SPEED[@]}" --paths official,fp32 --input 8x8 --scale 4 \
        --json "$WORK/speed_1024.json"
    step bigjob 180 "$PY" benchmarks/gpu_check.py bigjob --json "$WORK/bigjob.json" --work "$WORK" --device cpu \
        --input 120x90 --size 240x180
    step oomcap 180 "$PY" benchmarks/gpu_check.py oomcap --json "$WORK/oomcap.json" --device cpu --input 40x32 \
        --tile 64
else
    step tests_cuda 150 run_tests tests_cuda "${CUDA_FILES[@]}" -m cuda
    step tests_engine 120 run_tests tests_engine tests/test_engine.py -k cuda
    step parity 60 "$PY" benchmarks/gpu_check.py parity --json "$WORK/parity.json" --device "$DEVICE" \
        --precision fp32 --tolerance 1e-5
    SPEED=(--model "$WEIGHTS" --device "$DEVICE" --paths official,fp32,bf16,fp16 --gemm-share --scale 4)
    step speed_256 90 "$PY" benchmarks/speed.py "${SPEED[@]}" --input 256x256 --repeats 5 \
        --json "$WORK/speed_256.json"
    step speed_1024 150 "$PY" benchmarks/speed.py "${SPEED[@]}" --input 1024x1024 --repeats 3 \
        --json "$WORK/speed_1024.json"
    step bigjob 120 "$PY" benchmarks/gpu_check.py bigjob --json "$WORK/bigjob.json" --work "$WORK" \
        --device "$DEVICE" --input 4000x3000 --size 8000x6000
    step oomcap 60 "$PY" benchmarks/gpu_check.py oomcap --json "$WORK/oomcap.json" --device "$DEVICE" \
        --input 1500x1500 --tile 2048 --cap-mib 1024
fi

"$PY" benchmarks/gpu_check.py summary --json "$OUTDIR/gpu_check.json" --steps "$STEPS" --work "$WORK" \
    --mode "$MODE" --device "$DEVICE" --started "$(date -u -d "@$START" +%Y-%m-%dT%H:%M:%SZ)" --budget "$BUDGET" \
    >"$WORK/table.txt" 2>&1
cat "$OUTDIR/gpu_check.json" # the device tool's reply keeps the output's end: the JSON, then the table
tee -a "$LOG" <"$WORK/table.txt"
log "gpu_check: $(($(date +%s) - START))s in all; log $LOG; summary $OUTDIR/gpu_check.json"
rm -rf "$WORK"
"$PY" -c "import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))['passed'] else 1)" "$OUTDIR/gpu_check.json"
