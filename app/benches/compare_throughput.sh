#!/usr/bin/env bash
# Shears vs PyTorch (CPU) training and evaluation throughput, in one run, on
# this machine.
#
#   app/benches/compare_throughput.sh [--iters N] [--models lenet5,resnet20] [--threads N]
#
# Environment:
#   PYTHON        python with torch installed (default /tmp/torchvenv/bin/python)
#   BATCHES       batch sizes, comma or space separated (default 128)
#   ITERS_<MODEL> timed iterations for one model, e.g. ITERS_RESNET20=5 (a `-` in
#                 the name as `_`: ITERS_EFFICIENTNET_B0)
#                 (default: --iters, else 20; evaluation runs 4x as many)
#   MODES         train, eval or both (default "train eval")
#
# Runs `cargo bench -p shears --bench throughput` and
# app/benches/throughput_pytorch.py with the same arguments for each mode,
# model and batch, then prints a markdown table. --threads only goes to PyTorch (use
# RAYON_NUM_THREADS for Candle).
set -euo pipefail

cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-/tmp/torchvenv/bin/python}"
BATCHES="${BATCHES:-128}"
MODES="${MODES:-train eval}"
ITERS=20
MODELS="lenet5,resnet20"
THREADS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --iters) ITERS="$2"; shift 2 ;;
        --models) MODELS="$2"; shift 2 ;;
        --threads) THREADS=(--threads "$2"); shift 2 ;;
        --batch) BATCHES="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "error: unknown argument $1" >&2; exit 2 ;;
    esac
done

if ! [ -x "$PYTHON" ] && ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: python not found at PYTHON=$PYTHON" >&2
    echo "install PyTorch with: python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch" >&2
    echo "(or set PYTHON to a python that has torch)" >&2
    exit 1
fi
if ! TORCH_VERSION="$("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null)"; then
    echo "error: PyTorch is not installed for $PYTHON" >&2
    echo "install it with: python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch" >&2
    echo "(or set PYTHON to a python that has torch)" >&2
    exit 1
fi

field() { # field KEY JSON_LINE -> value
    sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$2"
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=()
TIMES=()
for mode in ${MODES//,/ }; do
for batch in ${BATCHES//,/ }; do
    for model in ${MODELS//,/ }; do
        var="ITERS_$(tr '[:lower:]-' '[:upper:]_' <<<"$model")"
        iters="${!var:-$ITERS}"
        flag=()
        if [ "$mode" = eval ]; then
            iters=$((iters * 4))
            flag=(--eval)
        fi
        args=(--batch "$batch" --iters "$iters" --models "$model" "${flag[@]}")

        t0=$(now)
        candle=$(cargo bench -q -p shears --bench throughput -- "${args[@]}" | grep '^{' | tail -1)
        t1=$(now)
        torch_line=$("$PYTHON" app/benches/throughput_pytorch.py "${args[@]}" "${THREADS[@]}" | grep '^{' | tail -1)
        t2=$(now)
        echo "$candle" >&2
        echo "$torch_line" >&2

        c=$(field images_per_s "$candle")
        p=$(field images_per_s "$torch_line")
        threads=$(field threads "$torch_line")
        ratio=$(awk -v c="$c" -v p="$p" 'BEGIN { printf "%.2f", c / p }')
        ROWS+=("| $mode | $model | $batch | $c | $p | $ratio |")
        TIMES+=("- $mode $model batch $batch, $iters iters: Shears $(elapsed "$t0" "$t1") s, PyTorch $(elapsed "$t1" "$t2") s (wall, incl. start-up and warm-up)")
    done
done
done

cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo
echo "Machine: $(nproc) CPUs (nproc), ${cpu:-unknown CPU}; torch $TORCH_VERSION ($threads threads); Shears RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-default}"
echo "Load average (1/5/15 min) at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg)."
echo "(Other CPU-heavy processes, e.g. a cargo build, skew both columns; PyTorch's OpenMP threads suffer most.)"
echo
echo "| mode | model | batch | Shears img/s | PyTorch img/s | ratio Shears/PyTorch |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
printf '%s\n' "${TIMES[@]}"
