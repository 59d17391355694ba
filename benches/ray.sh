#!/usr/bin/env bash
# The Ray runner's overhead: the same N files (default 8 copies of samples/vtest-short.mp4, 100
# frames each) through a plain shell loop over yoloanonymize-cli and through yoloanonymize-ray
# with a local Ray instance (started and stopped by the command, as a user would run it), one
# file at a time and then 2 at a time:
#   loop, 1 at a time:   for f in in/*; do yoloanonymize-cli "$f" out/... -q; done   (--threads 0)
#   ray, 1 at a time:    yoloanonymize-ray in --output out --cpus-per-file $(nproc)  (--threads $(nproc))
#   loop, 2 at a time:   xargs -P 2 yoloanonymize-cli ... --threads $(nproc)/2
#   ray, 2 at a time:    yoloanonymize-ray ... --cpus-per-file $(nproc)/2            (--threads $(nproc)/2)
# Wall time is the whole command's (Ray's start-up and shutdown included for the runner); also
# timed on its own: Ray's start and stop with nothing to run. Runs are interleaved (loop, ray,
# loop, ray, ...) and the median of --runs is printed, as a Markdown table, with the overhead of
# the runner against the loop. Every output of every run is checked to decode to 100 frames
# (the runner checks its own; the loop's are counted here).
#
# Usage: benches/ray.sh [--files N] [--runs R] [--flags "CLI FLAGS"] [--input FILE]
#   --files N     copies of the input (default 8)
#   --runs R      runs of every configuration (default 1)
#   --flags       extra yoloanonymize-cli flags for both, e.g. "--device cpu" (default none)
# Needs target/release/yoloanonymize-cli (cargo build --release) and the Ray virtualenv
# (made by scripts/setup-ray.sh when missing). Works in out/bench-ray.XXXXXX, removed at the end.
set -euo pipefail

YA_LOG_TAG=bench-ray
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

files=8 runs=1 flags='' input=$YA_REPO_ROOT/samples/vtest-short.mp4
while [[ $# -gt 0 ]]; do
    case "$1" in
    --files) files=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --flags) flags=$2; shift 2 ;;
    --input) input=$2; shift 2 ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) ya_die "unknown option $1 (try --help)" ;;
    esac
done
[[ -f "$input" ]] || ya_die "input not found: $input"
cli=$YA_REPO_ROOT/target/release/yoloanonymize-cli
[[ -x "$cli" ]] || ya_die "$cli not found: run cargo build --release"
venv=$(bash "$YA_REPO_ROOT/scripts/setup-ray.sh" --quiet)
export YOLOANONYMIZE_CLI=$cli RAY_USAGE_STATS_ENABLED=0
read -r -a extra <<<"$flags"

cores=$(nproc)
half=$((cores / 2 > 0 ? cores / 2 : 1))
mkdir -p "$YA_REPO_ROOT/out"
work=$(mktemp -d "$YA_REPO_ROOT/out/bench-ray.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/in"
for ((i = 0; i < files; i++)); do cp "$input" "$work/in/$(printf 'v%02d.mp4' "$i")"; done
count_frames() {
    gst-launch-1.0 -q filesrc location="$1" ! decodebin ! videoconvert ! videoscale \
        ! video/x-raw,format=GRAY8,width=4,height=1 ! fdsink fd=1 | wc -c | awk '{ print $1 / 4 }'
}
per_file=$(count_frames "$input")
total_frames=$((per_file * files))
ya_log "$files x $(basename "$input") ($per_file frames each), $cores cores, flags: ${flags:-none}; $runs run(s) each"

now() { date +%s.%N; }
# check_loop DIR: every output of a loop run decodes to per_file frames.
check_loop() {
    local f n
    for f in "$1"/*.mp4; do
        n=$(count_frames "$f")
        [[ "$n" == "$per_file" ]] || ya_die "$f decodes to $n frames, not $per_file"
    done
    [[ $(find "$1" -name '*.mp4' | wc -l) == "$files" ]] || ya_die "$1 lacks outputs"
}
loop1() {
    local f
    for f in "$work/in"/*.mp4; do "$cli" "$f" "$1/$(basename "$f")" -q "${extra[@]}"; done
}
loop2() {
    printf '%s\n' "$work/in"/*.mp4 | xargs -P 2 -I{} bash -c '"$0" "$1" "$2/$(basename "$1")" -q --threads "$3" "${@:4}"' \
        "$cli" {} "$1" "$half" "${extra[@]}"
}
ray_run() { # DIR CPUS-PER-FILE
    "$venv/bin/yoloanonymize-ray" "$work/in" --output "$1" --cpus-per-file "$2" --num-cpus "$cores" \
        --quiet "${extra[@]}"
}
ray_alone() {
    "$venv/bin/python" -c 'import logging, ray; ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING); ray.shutdown()'
}

declare -A times
for ((r = 1; r <= runs; r++)); do
    for cfg in loop1 ray1 loop2 ray2 alone; do
        out=$work/$cfg-$r
        mkdir -p "$out"
        t0=$(now)
        case $cfg in
        loop1) loop1 "$out" ;;
        loop2) loop2 "$out" ;;
        ray1) ray_run "$out" "$cores" || ya_die "yoloanonymize-ray failed (1 at a time)" ;;
        ray2) ray_run "$out" "$half" || ya_die "yoloanonymize-ray failed (2 at a time)" ;;
        alone) ray_alone 2>/dev/null ;;
        esac
        t1=$(now)
        case $cfg in loop*) check_loop "$out" ;; ray*) ;; esac
        dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        times[$cfg]+="$dt "
        ya_log "run $r $cfg: $dt s"
        rm -rf "$out"
    done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
row() { # LABEL AT-A-TIME CFG BASE-CFG
    local t base
    t=$(median "${times[$3]}")
    base=$(median "${times[$4]}")
    printf '| %s | %s | %.1f | %.1f | %s |\n' "$1" "$2" "$t" "$(awk -v f="$total_frames" -v t="$t" 'BEGIN { print f / t }')" \
        "$(if [[ $3 == "$4" ]]; then echo "-"; else echo "$t $base" | awk '{ printf "%+.1f %%", ($1 / $2 - 1) * 100 }'; fi)"
}
echo
echo "$files files x $per_file frames ($total_frames frames), $cores cores, flags: ${flags:-none}, median of $runs run(s), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| run | files at a time | wall s | frames/s | runner overhead |"
echo "|---|---|---|---|---|"
row "shell loop over yoloanonymize-cli" 1 loop1 loop1
row "yoloanonymize-ray, local Ray" 1 ray1 loop1
row "shell loop, xargs -P 2" 2 loop2 loop2
row "yoloanonymize-ray, local Ray" 2 ray2 loop2
printf '| Ray start and stop alone (no task) | - | %.1f | - | - |\n' "$(median "${times[alone]}")"
