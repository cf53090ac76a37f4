#!/usr/bin/env bash
# GPU checks and timings, for a CUDA machine; run from the repository root:
#   OUT=gpu_out bash benchmarks/gpu_check.sh
# 1. core speed/memory ratios for both configs; 2. the CLI end to end on the GPU (AMP on):
# make-dataset, train, kill + --resume, clean, evaluate; 3. the quality benchmark with a
# larger training budget than the CPU allows, until the time left runs out.
set -u -o pipefail  # a failing step prints FAIL even when piped to tail
O=${OUT:-gpu_out}
mkdir -p "$O"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
[ -x "$PY" ] && PY=$(realpath "$PY")  # the core step runs from benchmarks/
JCAS="$PY -m jcas_napari.cli"
T0=$(date +%s)
BUDGET=${BUDGET:-420}
DEV=${DEVICE:-cuda}  # DEVICE=cpu smoke-tests this script where there is no GPU
step() { echo "== $* ($(( $(date +%s) - T0 )) s)"; }

step "imports"  # the benchmarks below stop here, not after minutes, if a module is missing
(cd benchmarks && $PY bench_core.py --check-imports) || exit 2
$PY benchmarks/bench_quality.py --check-imports || echo "FAIL imports: the quality step will stop"

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"

step "core ratios"
(cd benchmarks && timeout 150 $PY bench_core.py --configs small deeplab-r101 --repeats 10 \
  --device $DEV) 2>&1 | tee "$O/core.md"

step "CLI on the GPU"
D=/tmp/jcas_gpu_ds R=/tmp/jcas_gpu_run C=/tmp/jcas_gpu_clean
rm -rf $D $R $C
timeout 60 $JCAS make-dataset $D --sequences 4 --frames 12 --noise mix --seed 3 || echo FAIL make
# Python itself goes to the background (not under `timeout`: kill -9 would hit the wrapper
# and leave the training running).
$JCAS train $D --out $R --device $DEV --epochs-warmup 4 --epochs-jcas 30 &
PID=$!
sleep 15; kill -9 $PID 2>/dev/null; wait $PID; echo "killed train, rc $?"
$PY -c "import torch; print('last.pt epoch', torch.load('$R/checkpoints/last.pt', weights_only=True)['epoch'])"
ls $R/checkpoints
timeout 120 $JCAS train $D --out $R --device $DEV --epochs-warmup 4 --epochs-jcas 30 --resume \
  2>&1 | tail -3 || echo FAIL resume
timeout 60 $JCAS clean $D --model $R/checkpoints/best.pt --out $C --device $DEV 2>&1 | tail -3 || echo FAIL clean
echo "cleaned vs truth:"; timeout 60 $JCAS evaluate $C/masks $D/masks_clean > "$O/eval_clean.json" || echo FAIL evaluate
timeout 60 $JCAS evaluate $D/masks $D/masks_clean > "$O/eval_noisy.json"
$PY -c "import json,sys; [print(f, json.load(open(f))[\"dataset\"]) for f in sys.argv[1:]]" "$O/eval_noisy.json" "$O/eval_clean.json"

step "quality benchmark"
LEFT=$(( BUDGET - ($(date +%s) - T0) ))
[ "$LEFT" -gt 30 ] || { echo "no time left for the quality benchmark"; exit 0; }
timeout $LEFT $PY benchmarks/bench_quality.py --presets asymmetric50 mix ellipse symmetric50 \
  markov --seeds 0 --epochs 20 40 --device $DEV --out "$O/quality_gpu.json" 2>&1 | tee "$O/quality.md"
step "done"
