#!/usr/bin/env bash
# What the window costs a comparison: the same config run by `shears compare`
# and by the app (`shears gui --run --quit-after-run` under Xvfb, software
# OpenGL), in turn, N times each; prints wall and CPU seconds of every run,
# the medians and the window/terminal ratio of the medians.
#
#   app/benches/window_vs_cli.sh [N]      (default 3; release build first)
#
# Needs Xvfb and GNU time (/usr/bin/time). SHEARS_BIN picks the binary
# (default target/release/shears); CONFIG the comparison
# (default app/benches/window-vs-cli.toml).
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-3}"
bin="${SHEARS_BIN:-target/release/shears}"
cfg="${CONFIG:-app/benches/window-vs-cli.toml}"
work="$(mktemp -d)"
export XDG_DATA_HOME="$work/xdg-data" XDG_CONFIG_HOME="$work/xdg-config"
# One X server for every window run, so its start-up is not counted.
display=":$((90 + RANDOM % 100))"
Xvfb "$display" -screen 0 1280x860x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null; rm -rf "$work"' EXIT
sleep 1

timed() { # label, command...
  local label="$1"; shift
  /usr/bin/time -f "%e %U %S" -o "$work/t" "$@" >"$work/log" 2>&1 || {
    cat "$work/log" >&2; echo "window_vs_cli: $label failed" >&2; exit 1; }
  read -r wall user sys <"$work/t"
  echo "$label $wall $(echo "$user + $sys" | bc)" | tee -a "$work/all"
}

echo "run wall_s cpu_s"
for i in $(seq "$n"); do
  timed cli "$bin" compare --config "$cfg" --out "$work/cli-$i" --quiet
  DISPLAY="$display" timed window \
    "$bin" gui --fresh --config "$cfg" --out "$work/gui-$i" --run --quit-after-run
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for what in 2 3; do
  name=$([ "$what" = 2 ] && echo wall || echo cpu)
  c=$(awk '$1=="cli"{print $'"$what"'}' "$work/all" | median)
  w=$(awk '$1=="window"{print $'"$what"'}' "$work/all" | median)
  echo "median $name: cli ${c}s, window ${w}s, window/cli $(echo "scale=3; $w / $c" | bc)"
done
