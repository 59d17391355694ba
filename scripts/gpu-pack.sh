#!/usr/bin/env bash
# Prepares what must travel to a GPU machine that has an NVIDIA driver, CUDA 13's libraries as
# Python packages (nvidia-cuda-runtime, nvidia-cublas, nvidia-cudnn-cu13, ...) and no GStreamer,
# for scripts/gpu-check.sh to run there. Run it here, on Debian 12 with the project's set-up done
# (scripts/setup.sh), in the checkout whose working tree the GPU machine gets. It writes
# <repo>/.gpu-pack/ (ignored by git):
#   1/MANIFEST                 what the parts are, their sha256, what the payload holds and needs
#   1/payload.tar.xz.part-NNN  the payload, xz-compressed and cut into parts of at most 15 MiB
# (and 2/, 3/, ... when it is larger than one call of the device tool takes: each folder is one
# call's load, see benches/README-gpu.md). The payload:
#   plugin/libgstyoloanonymize.so, bin/yoloanonymize-cli   this tree's release build
#   ort/     ONNX Runtime 1.31.1's CUDA build from the pinned onnxruntime-gpu wheel (the pin of
#            scripts/setup-gpu.sh): libonnxruntime.so.1.31.1, libonnxruntime_providers_shared.so,
#            libonnxruntime_providers_cuda.so, licences. The CUDA provider keeps only its sm_90a
#            device code (H100/H200), less the kernels of attention, mixture-of-experts and
#            generation operators, which a pose model cannot have (scripts/gpu_fatbin.py;
#            YA_GPU_DROP_UNITS='' keeps those; --no-strip keeps it whole: several calls' load).
#            No CUDA runtime libraries: the GPU machine has them as Python packages.
#   gst/     GStreamer 1.22 from Debian 12's packages (apt-get download, dpkg -x): gst-launch-1.0,
#            gst-inspect-1.0, gst-plugin-scanner, the plugins gpu-check.sh and the CLI use
#            (coreelements, base: app playback rawparse typefindfunctions videoconvertscale
#            videorate videotestsrc; good: isomp4 multifile; bad: videoparsersbad openh264;
#            ugly: x264) and every library they need but the C library's (lib/), the C++ runtime
#            apart (lib-fallback/, used only where the host's is older); licences/ and debs.txt.
#   REQUIRES  the newest GLIBC_/GLIBCXX_ symbol versions all of it needs from the host.
# The models and samples/vtest-short.mp4 travel as tracked files of the working tree.
#
# Usage: scripts/gpu-pack.sh [--no-strip] [--no-build] [--keep-work]
#   --no-build   use target/release as it is (else `cargo build --release` first)
#   --keep-work  keep .gpu-pack/work/ (downloaded wheel and packages, unpacked trees)
# Environment: YOLOANONYMIZE_DEPS_DIR  where a cached onnxruntime-gpu wheel may be (<deps>/wheels)
#              PYTHON                  Python with pip (default python3)
set -euo pipefail

YA_LOG_TAG=gpu-pack
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

strip=1 build=1 keep_work=0
for arg in "$@"; do
    case "$arg" in
    --no-strip) strip=0 ;;
    --no-build) build=0 ;;
    --keep-work) keep_work=1 ;;
    -h | --help)
        sed -n '2,33p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) ya_die "unknown argument: $arg (try --help)" ;;
    esac
done

# What one call of the device tool takes: the working tree and the carried paths together.
CALL_LIMIT=$((64 * 1024 * 1024))
PART_SIZE=$((15 * 1024 * 1024))
# Room kept free below the limit (files that appear in the tree before the call, rounding).
MARGIN=$((1024 * 1024))
CUDA_ARCH=90
# Device code of contrib operators a pose model cannot have (its graph holds only standard ONNX
# operators and no LayerNormalization, so no attention fusion): attention (Attention,
# MultiHeadAttention, GroupQueryAttention, PackedAttention), MoE/QMoE, BeamSearch/Sampling.
DROP_UNITS=${YA_GPU_DROP_UNITS-'^(moe|fused_moe|flash_fwd|fmha)_|^generation_cuda_impl$'}
# Debian 12 plugin files (in /usr/lib/x86_64-linux-gnu/gstreamer-1.0/) that travel.
PLUGINS=(coreelements app playback rawparse typefindfunctions videoconvertscale videorate
    videotestsrc isomp4 multifile videoparsersbad openh264 x264)
GST_ARCH_DIR=/usr/lib/x86_64-linux-gnu
SCANNER=$GST_ARCH_DIR/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner

python=${PYTHON:-python3}
pack=$YA_REPO_ROOT/.gpu-pack
work=$pack/work
elf() { "$python" "$YA_REPO_ROOT/scripts/gpu_elf.py" "$@"; }

[[ "$(uname -m)" == x86_64 ]] || ya_die "the GPU machine is x86_64; build and pack on x86_64 (this is $(uname -m))."
for c in dpkg dpkg-query apt-get zstd xz sha256sum "$python" git; do
    command -v "$c" >/dev/null 2>&1 || ya_die "$c not found (Debian packages: dpkg, apt, zstd, xz-utils, coreutils, python3, git)."
done
# The closure of the GStreamer files is read from this host's packages: GStreamer 1.22 and the
# plugin packages must be installed here (scripts/setup.sh installs them).
[[ -f $SCANNER ]] || ya_die "$SCANNER not found: install GStreamer 1.22 (scripts/setup.sh)."
gst_ver=$(dpkg-query -W -f='${Version}' libgstreamer1.0-0 2>/dev/null || true)
[[ $gst_ver == 1.22.* ]] || ya_die "libgstreamer1.0-0 is '${gst_ver:-not installed}'; the pack is made from Debian 12's GStreamer 1.22."

# ---------------------------------------------------------------------------------------------
ya_log "1/5 release build"
if [[ $build == 1 ]]; then
    ya_require_rust
    (cd "$YA_REPO_ROOT" && cargo build --release)
fi
plugin=$YA_REPO_ROOT/target/release/libgstyoloanonymize.so
cli=$YA_REPO_ROOT/target/release/yoloanonymize-cli
[[ -f $plugin && -f $cli ]] || ya_die "$plugin or $cli missing: run cargo build --release (or drop --no-build)."

rm -rf "$work/payload" "$work/root" "$pack"/[0-9]*
mkdir -p "$work/payload"/{plugin,bin,ort,gst/bin,gst/lib,gst/lib-fallback,gst/plugins,gst/libexec,gst/licences} "$work/debs" "$work/root"
payload=$work/payload
cp "$plugin" "$payload/plugin/"
cp "$cli" "$payload/bin/"

# ---------------------------------------------------------------------------------------------
ya_log "2/5 ONNX Runtime's CUDA build (pinned in scripts/setup-gpu.sh)"
# The pin is written once, in setup-gpu.sh: its onnxruntime-gpu line.
pin=$(sed -n 's/^ *"onnxruntime-gpu \$ORT_VERSION \([^ ]*\) \([0-9a-f]\{64\}\)"$/\1 \2/p' "$YA_REPO_ROOT/scripts/setup-gpu.sh")
read -r ort_wheel ort_sha <<<"${pin//\$ORT_VERSION/$ORT_VERSION}"
[[ -n ${ort_sha:-} ]] || ya_die "cannot read the onnxruntime-gpu pin from scripts/setup-gpu.sh"
wheel=""
for d in "${YOLOANONYMIZE_DEPS_DIR:-$YA_REPO_ROOT/.deps}/wheels" "$work/wheels"; do
    if [[ -f $d/$ort_wheel ]] && [[ "$(sha256sum "$d/$ort_wheel" | cut -d' ' -f1)" == "$ort_sha" ]]; then
        wheel=$d/$ort_wheel
        break
    fi
done
if [[ -z $wheel ]]; then
    mkdir -p "$work/wheels"
    ya_log "Downloading onnxruntime-gpu==$ORT_VERSION from PyPI (256 MB) ..."
    PIP_REQUIRE_VIRTUALENV=false PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1 \
        "$python" -m pip download --no-deps --only-binary=:all: --progress-bar off \
        --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp \
        "onnxruntime-gpu==$ORT_VERSION" -d "$work/wheels" >/dev/null ||
        ya_die "pip could not download onnxruntime-gpu==$ORT_VERSION (is PyPI reachable?)."
    wheel=$work/wheels/$ort_wheel
    got=$(sha256sum "$wheel" | cut -d' ' -f1)
    [[ $got == "$ort_sha" ]] || ya_die "sha256 mismatch for $ort_wheel: expected $ort_sha, got $got."
fi
ya_log "Using $wheel (sha256 $ort_sha)."
"$python" - "$wheel" "$payload/ort" "$ORT_VERSION" <<'PY'
import os, shutil, sys, zipfile
wheel, dest, ver = sys.argv[1:4]
members = {
    f"onnxruntime/capi/libonnxruntime.so.{ver}": f"libonnxruntime.so.{ver}",
    "onnxruntime/capi/libonnxruntime_providers_shared.so": "libonnxruntime_providers_shared.so",
    "onnxruntime/capi/libonnxruntime_providers_cuda.so": "libonnxruntime_providers_cuda.so",
    "onnxruntime/LICENSE": "LICENSE",
    "onnxruntime/ThirdPartyNotices.txt": "ThirdPartyNotices.txt",
}
with zipfile.ZipFile(wheel) as z:
    for m, name in members.items():
        with z.open(m) as src, open(os.path.join(dest, name), "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(os.path.join(dest, name), 0o644 if name.isupper() or name.endswith(".txt") else 0o755)
PY
ln -s "libonnxruntime.so.$ORT_VERSION" "$payload/ort/libonnxruntime.so"
ln -s "libonnxruntime.so.$ORT_VERSION" "$payload/ort/libonnxruntime.so.1"
cuda_sha_orig=$(sha256sum "$payload/ort/libonnxruntime_providers_cuda.so" | cut -d' ' -f1)
if [[ $strip == 1 ]]; then
    # Kept in work/cache/ (with --keep-work) for the next run: stripping takes minutes.
    cached=$work/cache/providers_cuda-$cuda_sha_orig-sm$CUDA_ARCH-$(printf '%s' "$DROP_UNITS" | sha256sum | cut -c1-12).so
    if [[ ! -f $cached ]]; then
        ya_log "Keeping only the sm_${CUDA_ARCH} device code of libonnxruntime_providers_cuda.so (minutes) ..."
        mkdir -p "$work/cache"
        "$python" "$YA_REPO_ROOT/scripts/gpu_fatbin.py" strip "$payload/ort/libonnxruntime_providers_cuda.so" \
            "$cached.tmp" --keep-arch "$CUDA_ARCH" --drop-units "$DROP_UNITS"
        mv "$cached.tmp" "$cached"
    fi
    "$python" "$YA_REPO_ROOT/scripts/gpu_fatbin.py" list "$cached" | sed '1d; s/^/    left: /'
    cp "$cached" "$payload/ort/libonnxruntime_providers_cuda.so"
    chmod 755 "$payload/ort/libonnxruntime_providers_cuda.so"
fi

# ---------------------------------------------------------------------------------------------
ya_log "3/5 GStreamer 1.22 from Debian's packages"
start=(/usr/bin/gst-launch-1.0 /usr/bin/gst-inspect-1.0 "$SCANNER" "$plugin" "$cli")
for p in "${PLUGINS[@]}"; do
    f=$GST_ARCH_DIR/gstreamer-1.0/libgst$p.so
    [[ -f $f ]] || ya_die "$f not found: install the GStreamer plugin packages (scripts/setup.sh)."
    start+=("$f")
done
# The packages that own those files and every library they need (read from this host's dpkg).
# The archive's current version of each is downloaded (security updates included; the closure is
# read again from what was downloaded).
owner() { # path -> package:arch
    local f=$1 pkg
    pkg=$(dpkg -S "$f" 2>/dev/null || dpkg -S "${f/#\/usr\/lib\//\/lib\/}" 2>/dev/null || true)
    pkg=${pkg%%: *}
    [[ -n $pkg ]] || ya_die "no Debian package owns $f"
    printf '%s\n' "$pkg"
}
mapfile -t needed < <(elf closure --root / "${start[@]}")
files=("${start[@]}")
for line in "${needed[@]}"; do
    read -r kind so path <<<"$line"
    case $kind in
    found) files+=("$path") ;;
    host) ;;
    *) ya_die "$so (needed by the GStreamer files) is not installed here" ;;
    esac
done
mapfile -t pkgs < <(for f in "${files[@]}"; do [[ $f == "$plugin" || $f == "$cli" ]] || owner "$f"; done | sort -u)
ya_log "${#pkgs[@]} packages: $(printf '%s ' "${pkgs[@]%%:*}")"
(cd "$work/debs" && apt-get download "${pkgs[@]}" >/dev/null) ||
    ya_die "apt-get download failed (run apt-get update first)."
for deb in "$work/debs"/*.deb; do dpkg -x "$deb" "$work/root"; done
# Copy from the unpacked packages, not from this host: each library under its soname.
g=$payload/gst
cp "$work/root/usr/bin/gst-launch-1.0" "$work/root/usr/bin/gst-inspect-1.0" "$g/bin/"
cp "$work/root${SCANNER}" "$g/libexec/"
for p in "${PLUGINS[@]}"; do cp "$work/root$GST_ARCH_DIR/gstreamer-1.0/libgst$p.so" "$g/plugins/"; done
mapfile -t needed < <(elf closure --root "$work/root" "$g/bin/"* "$g/libexec/"* "$g/plugins/"* "$payload/plugin/"* "$payload/bin/"*)
for line in "${needed[@]}"; do
    read -r kind so path <<<"$line"
    case $kind in
    found)
        case $so in
        libstdc++.so.6 | libgcc_s.so.1) cp "$path" "$g/lib-fallback/$so" ;;
        *) cp "$path" "$g/lib/$so" ;;
        esac
        ;;
    host) ;;
    *) ya_die "$so is needed but in none of the downloaded packages" ;;
    esac
done
chmod -R u+w,go-w "$g"
for p in "${pkgs[@]}"; do
    name=${p%%:*}
    [[ -f "$work/root/usr/share/doc/$name/copyright" ]] && cp "$work/root/usr/share/doc/$name/copyright" "$g/licences/$name.copyright"
done
(cd "$work/debs" && sha256sum ./*.deb | sed 's| \./| |') >"$g/debs.txt"

# What the host must provide.
{
    echo "# newest symbol versions needed from the host's C library and C++ runtime"
    elf requires "$g/bin/"* "$g/libexec/"* "$g/plugins/"* "$g/lib/"* "$payload/plugin/"* "$payload/bin/"* \
        "$payload/ort/libonnxruntime.so.$ORT_VERSION" "$payload/ort/"libonnxruntime_providers_*.so
    echo "# provided by lib-fallback/libstdc++.so.6 (Debian 12)"
    elf provides "$g/lib-fallback/libstdc++.so.6" | grep '^GLIBCXX_' | sort -V | tail -n1 | sed 's/^/fallback /'
} >"$payload/REQUIRES"

# ---------------------------------------------------------------------------------------------
ya_log "4/5 compressing and cutting into parts"
{
    echo "# yoloanonymize GPU payload, made by scripts/gpu-pack.sh"
    echo "commit=$(git -C "$YA_REPO_ROOT" rev-parse HEAD)$(git -C "$YA_REPO_ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo '+changes')"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "onnxruntime_gpu_wheel=$ort_wheel $ort_sha"
    echo "providers_cuda_original_sha256=$cuda_sha_orig"
    echo "providers_cuda_stripped=$([[ $strip == 1 ]] && echo "sm_$CUDA_ARCH only, without $DROP_UNITS" || echo no)"
    echo "gstreamer=$gst_ver (Debian 12)"
    (cd "$payload" && find . -type f ! -name FILES -print0 | sort -z | xargs -0 sha256sum | sed 's/^/file /')
} >"$payload/FILES"
payload_size=$(du -sb "$payload" | cut -f1)
ort_size=$(du -sb "$payload/ort" | cut -f1)
gst_size=$(du -sb "$payload/gst" | cut -f1)
tar_file=$work/payload.tar.xz
tar -C "$payload" --owner=0 --group=0 --numeric-owner --sort=name -cf - . | xz -6 -T0 -c >"$tar_file"
tar_sha=$(sha256sum "$tar_file" | cut -d' ' -f1)
tar_size=$(stat -c %s "$tar_file")

# The working tree that travels with every call: tracked and untracked-not-ignored files.
tree_size=$(cd "$YA_REPO_ROOT" && git ls-files -co --exclude-standard -z | xargs -0 -r stat -L -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
budget=$((CALL_LIMIT - tree_size - MARGIN))
((budget > PART_SIZE)) || ya_die "the working tree ($((tree_size / 1048576)) MiB) leaves no room in a call of the device tool"

(cd "$work" && split -b "$PART_SIZE" -d -a 3 payload.tar.xz payload.tar.xz.part-)
group=1 used=0
declare -a parts=()
for part in "$work"/payload.tar.xz.part-*; do
    size=$(stat -c %s "$part")
    if ((used + size > budget)); then
        group=$((group + 1))
        used=0
    fi
    mkdir -p "$pack/$group"
    mv "$part" "$pack/$group/"
    used=$((used + size))
    parts+=("$group/$(basename "$part") $size $(sha256sum "$pack/$group/$(basename "$part")" | cut -d' ' -f1)")
done
for ((i = 1; i <= group; i++)); do
    {
        echo "# yoloanonymize GPU payload: scripts/gpu-check.sh assembles and checks it"
        echo "archive=payload.tar.xz $tar_size $tar_sha"
        echo "groups=$group"
        printf 'part=%s\n' "${parts[@]}"
        cat "$payload/FILES"
    } >"$pack/$i/MANIFEST"
done
[[ $keep_work == 1 ]] || rm -rf "$work"

# ---------------------------------------------------------------------------------------------
ya_log "5/5 sizes"
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
ya_log "payload: $(mib "$payload_size") (ort/ $(mib "$ort_size"), gst/ $(mib "$gst_size")), $(mib "$tar_size") compressed, in ${#parts[@]} parts"
ya_log "working tree sent with every call: $(mib "$tree_size"); room for carried parts per call: $(mib "$budget")"
for ((i = 1; i <= group; i++)); do
    ya_log "  .gpu-pack/$i: $(mib "$(du -sb "$pack/$i" | cut -f1)")"
done
if ((group == 1)); then
    ya_log "One call of the device tool: command 'YA_GPU_BUDGET=360 bash scripts/gpu-check.sh', carry ['.gpu-pack/1'], timeout_s 420 (benches/README-gpu.md)."
else
    ya_log "$group calls, back to back while the machine is warm: 'bash scripts/gpu-check.sh --stage' carrying .gpu-pack/N for N < $group, then 'YA_GPU_BUDGET=360 bash scripts/gpu-check.sh' carrying .gpu-pack/$group (benches/README-gpu.md)."
fi
