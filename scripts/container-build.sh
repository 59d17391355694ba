#!/usr/bin/env bash
# Builds the CPU container image with podman and checks it on the sample clip, end to end:
#   1. installs podman, runc, debootstrap (and uidmap, fuse-overlayfs, slirp4netns) when missing
#   2. writes out/container/containers.conf (default_ulimits = [], runtime runc) and points podman
#      at it with CONTAINERS_CONF; the system's own containers.conf is not touched
#   3. makes the Debian 12 base image localhost/debian12-base:latest with debootstrap (minbase,
#      from the Debian mirror this machine's apt uses), unless that image exists already
#   4. podman build --target cpu -t localhost/yoloanonymize:cpu (--network=host) of Dockerfile
#   5. runs samples/vtest-short.mp4 through the image into out/container/vtest-short-anonymized.mp4
#      (samples/ and out/ mounted as volumes) and checks that it decodes to as many frames as the
#      input (100); exits non-zero otherwise
# Everything it writes is under out/container/ (git-ignored) or in podman's storage.
#
# Usage: scripts/container-build.sh [--gpu] [--no-run] [--rebuild-base] [--no-cache]
#   --gpu           also build Dockerfile's gpu target as localhost/yoloanonymize:gpu (large downloads;
#                   the image is built, not run: that needs an NVIDIA GPU and driver)
#   --no-run        build only, skip step 5
#   --rebuild-base  make the base image again even if it exists
#   --no-cache      build every step again (podman build --no-cache)
# Environment: DEBIAN_MIRROR (default: the first bookworm mirror in /etc/apt/sources.list*),
#              DEBIAN_SECURITY_MIRROR, IMAGE (default localhost/yoloanonymize),
#              BASE_IMAGE (default localhost/debian12-base:latest),
#              CA_BUNDLE (default /etc/ssl/certs/ca-certificates.crt: given to the build as the
#              secret `cacert`, for networks whose TLS is intercepted)
set -euo pipefail

YA_LOG_TAG=container-build
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

build_gpu=0 run_sample=1 rebuild_base=0 cache_opts=()
for arg in "$@"; do
    case "$arg" in
    --gpu) build_gpu=1 ;;
    --no-run) run_sample=0 ;;
    --rebuild-base) rebuild_base=1 ;;
    --no-cache) cache_opts=(--no-cache) ;;
    -h | --help)
        awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) ya_die "unknown argument: $arg (try --help)" ;;
    esac
done

image=${IMAGE:-localhost/yoloanonymize}
base_image=${BASE_IMAGE:-localhost/debian12-base:latest}
work=$YA_REPO_ROOT/out/container
mkdir -p "$work"

# --- 1. Tools -----------------------------------------------------------------------------------
need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# Not needed by root's podman, but rootless podman (a normal user) cannot work without them.
command -v newuidmap >/dev/null 2>&1 || need+=(uidmap)
command -v fuse-overlayfs >/dev/null 2>&1 || need+=(fuse-overlayfs)
command -v slirp4netns >/dev/null 2>&1 || need+=(slirp4netns)
if ((${#need[@]})); then
    ya_log "Installing: ${need[*]}"
    command -v apt-get >/dev/null 2>&1 || ya_die "apt-get not found; install these yourself: ${need[*]}"
    if [[ $(id -u) == 0 ]]; then as_root=(); else as_root=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update || ya_die "apt-get update failed"
    "${as_root[@]}" apt-get install -y --no-install-recommends "${need[@]}" ||
        ya_die "apt-get install ${need[*]} failed"
fi
ya_log "$(podman --version); runc $(runc --version | awk 'NR==1{print $3}')"

# --- 2. containers.conf -------------------------------------------------------------------------
# default_ulimits = []: podman's default (nofile=1048576) is refused by kernels/sandboxes whose
# hard limit is lower ("error setting rlimit"); runc: the runtime installed above (crun is not).
export CONTAINERS_CONF=$work/containers.conf
cat >"$CONTAINERS_CONF" <<'EOF'
# Written by scripts/container-build.sh; used through CONTAINERS_CONF.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
podman_opts=(--runtime runc)

# --- 3. Base image ------------------------------------------------------------------------------
# The URI of the first apt source of this machine that serves $1 (deb822 .sources, then
# one-line .list format).
apt_mirror_for() {
    local suite=$1 f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        uri=$(awk -v s="$suite" '
            /^[[:space:]]*$/ { if (u != "" && hit) { print u; exit } u = ""; hit = 0; next }
            /^URIs:/ { u = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
            END { if (u != "" && hit) print u }' "$f" | head -n1)
        [[ -n "$uri" ]] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        uri=$(awk -v s="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == s) { print $i; exit } }' "$f")
        [[ -n "$uri" ]] && { echo "$uri"; return; }
    done
}

if ((rebuild_base == 0)) && podman image exists "$base_image"; then
    ya_log "Base image $base_image exists; not rebuilding it (--rebuild-base to force)."
else
    mirror=${DEBIAN_MIRROR:-$(apt_mirror_for bookworm)}
    mirror=${mirror:-http://deb.debian.org/debian}
    security=${DEBIAN_SECURITY_MIRROR:-$(apt_mirror_for bookworm-security)}
    security=${security:-http://deb.debian.org/debian-security}
    rootfs=$(mktemp -d "$work/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    ya_log "debootstrap --variant=minbase bookworm from $mirror ..."
    t0=$(date +%s)
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
        tail -n 30 "$work/debootstrap.log" >&2
        ya_die "debootstrap failed (full log: $work/debootstrap.log)"
    }
    # The same apt sources as the official debian:bookworm image (main, updates, security).
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # As in the official images: no recommends pulled in by accident, no .deb kept after install.
    printf 'APT::Install-Recommends "false";\n' >"$rootfs/etc/apt/apt.conf.d/99no-recommends"
    printf 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n' \
        >"$rootfs/etc/apt/apt.conf.d/docker-clean"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" --numeric-owner -c . |
        podman import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$base_image" >/dev/null ||
        ya_die "podman import of the debootstrap tree failed"
    rm -rf "$rootfs"
    trap - EXIT
    ya_log "Made $base_image in $(($(date +%s) - t0)) s."
fi

# --- 4. Build -----------------------------------------------------------------------------------
# This machine's CA bundle, as the build secret `cacert` (see Dockerfile): the downloads in the
# build (rustup, crates.io, PyPI over https) then work behind a TLS-intercepting proxy too. It is
# only mounted while those steps run; no layer keeps it.
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
secret_opts=()
[[ -s "$ca_bundle" ]] && secret_opts=(--secret "id=cacert,src=$ca_bundle")
build_image() { # TARGET (cpu or gpu, a stage of Dockerfile; also the image's tag)
    local t0 log=$work/build-$1.log
    ya_log "podman build --target $1 -t $image:$1 (log: $log) ..."
    t0=$(date +%s)
    podman build "${podman_opts[@]}" --network=host --build-arg BASE_IMAGE="$base_image" "${secret_opts[@]}" "${cache_opts[@]}" \
        -f "$YA_REPO_ROOT/Dockerfile" --target "$1" -t "$image:$1" "$YA_REPO_ROOT" >"$log" 2>&1 || {
        tail -n 40 "$log" >&2
        ya_die "podman build --target $1 failed (full log: $log)"
    }
    ya_log "Built $image:$1 in $(($(date +%s) - t0)) s; $(podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$image:$1")"
}
build_image cpu
((build_gpu == 0)) || build_image gpu

# --- 5. Run the sample clip through the image -----------------------------------------------------
((run_sample == 1)) || { ya_log "--no-run: done."; exit 0; }
input=samples/vtest-short.mp4
output=out/container/vtest-short-anonymized.mp4
[[ -f "$YA_REPO_ROOT/$input" ]] || ya_die "$input is missing"
rm -f "$YA_REPO_ROOT/$output"
run_in_image() { # podman run with the repository's samples/ (read-only) and out/ mounted
    podman run "${podman_opts[@]}" --rm --network=host \
        -v "$YA_REPO_ROOT/samples:/data/samples:ro" -v "$YA_REPO_ROOT/out:/data/out" "$@"
}
ya_log "Anonymizing $input -> $output in $image:cpu ..."
t0=$(date +%s%N)
run_in_image "$image:cpu" "$input" "$output" | tee "$work/run-cpu.log" ||
    ya_die "the container run failed (see above)"
run_ms=$((($(date +%s%N) - t0) / 1000000))
run_s=$((run_ms / 1000)).$((run_ms % 1000 / 100))
[[ -s "$YA_REPO_ROOT/$output" ]] || ya_die "the container run did not write $output"

# As scripts/quickstart.sh's count_frames, with the image's own GStreamer: each frame scaled to
# 4x1 GRAY8 is exactly 4 bytes.
count_frames() {
    local bytes
    bytes=$(run_in_image --entrypoint gst-launch-1.0 "$image:cpu" -q filesrc location="$1" ! decodebin \
        ! videoconvert ! videoscale ! video/x-raw,format=GRAY8,width=4,height=1 ! fdsink fd=1 | wc -c) ||
        ya_die "could not decode $1"
    ((bytes % 4 == 0)) || ya_die "frame counting of $1 gave $bytes bytes, not a multiple of 4"
    echo $((bytes / 4))
}
in_frames=$(count_frames "$input")
out_frames=$(count_frames "$output")
((in_frames > 0)) || ya_die "$input decodes to no frames"
((out_frames == in_frames)) ||
    ya_die "$output decodes to $out_frames frames, the input to $in_frames"
ya_log "OK: $output has $out_frames frames (input $in_frames); the run took ${run_s} s; image $(podman images --format '{{.Size}}' "$image:cpu")."
