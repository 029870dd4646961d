#!/usr/bin/env bash
# Starts the real `shears` window under Xvfb (software OpenGL), runs the tiny
# comparison of tests/fixtures/tiny.toml from the Run button's code path, lets
# the app screenshot its own window when the comparison has finished and save
# its three charts as PNG (the Save PNG path), and checks that the pictures are
# not blank and the results were saved.
#
#   app/scripts/gui-smoke.sh [OUT_DIR]        (default: target/gui-smoke)
#
# Needs: xvfb-run (xvfb, xauth), ImageMagick's `identify`, Mesa's OpenGL
# (libgl1-mesa-dri) and libxkbcommon-x11-0; .ci/run installs them.
# SHEARS_BIN picks the binary (default: build and use target/debug/shears).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-target/gui-smoke}"
rm -rf "$out"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
bin="${SHEARS_BIN:-}"
if [ -z "$bin" ]; then
  cargo build -q -p shears
  bin="${CARGO_TARGET_DIR:-target}/debug/shears"
fi

# Keep the user's saved settings out of it.
export XDG_DATA_HOME="$out/xdg-data" XDG_CONFIG_HOME="$out/xdg-config"
timeout 900 xvfb-run -a -s "-screen 0 1280x900x24" \
  "$bin" gui --fresh --config tests/fixtures/tiny.toml --out "$out/results" \
  --run --screenshot "$out/window.png" --export-charts "$out/charts" --quit-after-run 2>&1 \
  | tee "$out/log.txt"

fail() { echo "gui-smoke: FAILED: $*" >&2; exit 1; }
[ -s "$out/window.png" ] || fail "no screenshot at $out/window.png"
size="$(identify -format '%wx%h' "$out/window.png")"
colors="$(identify -format '%k' "$out/window.png")"
echo "gui-smoke: screenshot $size, $colors distinct colours"
[ "$colors" -ge 64 ] || fail "the screenshot looks blank ($colors colours)"
for chart in accuracy-vs-sparsity per-layer-sparsity accuracy-vs-compute; do
  png="$out/charts/$chart.png"
  [ -s "$png" ] || fail "chart $chart was not saved"
  c="$(identify -format '%k' "$png")"
  echo "gui-smoke: $chart.png $(identify -format '%wx%h' "$png"), $c colours"
  [ "$c" -ge 16 ] || fail "chart $chart looks blank ($c colours)"
done
# The app gives each comparison a folder of its own under --out.
results="$(find "$out/results" -name results.json | head -1)"
[ -n "$results" ] || fail "no results.json under $out/results"
# The comparison's own status is the last one in the file.
tail -4 "$results" | grep -q '"status": "complete"' \
  || fail "$results: the comparison did not complete"
echo "gui-smoke: ok ($out/window.png, results in $(dirname "$results"))"
