# yoloanonymize images: Debian 12, GStreamer 1.22, ONNX Runtime, the plugin, the bundled models
# and yoloanonymize-cli. One build stage, two images, chosen with --target:
#   cpu (the default: the last stage)  ONNX Runtime's OpenVINO build (with its CPU provider)
#   gpu                                ONNX Runtime's CUDA build and the CUDA 13 / cuDNN 9
#                                      libraries it loads, for NVIDIA GPUs
#
#   scripts/container-build.sh [--gpu]             # podman: makes the base image, builds, tests
#   docker build --target cpu -t yoloanonymize:cpu --build-arg BASE_IMAGE=debian:bookworm-slim .
#   docker build --target gpu -t yoloanonymize:gpu --build-arg BASE_IMAGE=debian:bookworm-slim .
#   docker run --rm -v "$PWD:/data" yoloanonymize:cpu in.mp4 out.mp4 --targets face
#   docker run --rm --entrypoint gst-launch-1.0 -v "$PWD:/data" yoloanonymize:cpu \
#       filesrc location=in.mp4 ! decodebin ! yoloanonymize ! x264enc ! mp4mux ! filesink location=out.mp4
#   docker run --rm --gpus all -v "$PWD:/data" yoloanonymize:gpu in.mp4 out.mp4 --device cuda
#   podman run --rm --device nvidia.com/gpu=all -v "$PWD:/data" yoloanonymize:gpu in.mp4 out.mp4 --device cuda
#
# It needs BuildKit (docker >= 23 has it by default) or podman/buildah: both build only the stages
# the target needs, so --target cpu downloads none of the GPU wheels. (The RUN --mount=type=secret
# steps need BuildKit as well.)
#
# BASE_IMAGE is any Debian 12 (bookworm) image. The default is a local one, made with debootstrap
# by scripts/container-build.sh, so that nothing has to come from a container registry; with
# registry access `debian:bookworm-slim` does the same job.
#
# Where Rust comes from: Cargo.toml needs Rust >= 1.92 and Debian 12's rustc is 1.63, so the build
# stage installs the official toolchain with rustup-init from static.rust-lang.org, pinned (rustup
# version and sha256, toolchain version). That is what a user's machine does (scripts/setup.sh
# says to use rustup), and it was verified with scripts/container-build.sh. Behind a firewall,
# point RUSTUP_UPDATE_ROOT and RUSTUP_DIST_SERVER at a rustup mirror. Crates come from crates.io
# (Cargo.lock, --locked); ONNX Runtime from its PyPI wheels, sha256 checked (scripts/fetch-ort.sh
# for cpu, scripts/setup-gpu.sh for gpu). Nothing prebuilt is taken from the build context: the
# image builds the same on any machine.
#
# Behind a TLS-intercepting proxy, give the build your CA bundle as the secret `cacert`; the steps
# that download use it, and it is not stored in any layer:
#   podman build --secret id=cacert,src=/etc/ssl/certs/ca-certificates.crt ...
#   docker build --secret id=cacert,src=/etc/ssl/certs/ca-certificates.crt ...
# (scripts/container-build.sh passes the machine's bundle this way.)
#
# Layout (that of `meson install --prefix=/usr/local`, see meson.build, plus the CLI and pipelines):
#   /usr/local/bin/yoloanonymize-cli                              ENTRYPOINT
#   /usr/local/lib/x86_64-linux-gnu/gstreamer-1.0/libgstyoloanonymize.so   (GST_PLUGIN_PATH)
#   /usr/local/lib/x86_64-linux-gnu/yoloanonymize/libonnxruntime.so*       (ORT_DYLIB_PATH; gpu:
#                                                                 the CUDA libraries beside it)
#   /usr/local/share/yoloanonymize/models/yolo11n-pose-dynamic.onnx        (the model default; gpu:
#                                                                 also its float16 variant)
#   /usr/local/share/yoloanonymize/pipelines/                               pipelines/*.pipeline
# Both paths are also baked into the element at compile time (YOLOANONYMIZE_ORT_LIB,
# YOLOANONYMIZE_MODEL_DIR): `model=` is not needed, and ORT_DYLIB_PATH, set all the same, only
# makes the choice explicit.
# The model weights are AGPL-3.0 (models/README.md), unlike the code (MPL-2.0); the NVIDIA
# libraries of the gpu image come under NVIDIA's licences, copied from the wheels into
# /usr/local/share/doc/gst-plugin-yoloanonymize/.
#
# gpu: NOT VERIFIED. It was written on a machine without a GPU, and was neither built to the end
# nor run there (its wheels are about 1.6 GB). Its build stage is the cpu image's, which was built
# and run; the wheels' pins are scripts/setup-gpu.sh's. Check it on a GPU machine before relying on
# it. The host needs an NVIDIA driver for CUDA 13 (R580 or newer) and the NVIDIA Container Toolkit
# (docker --gpus, or CDI for podman), which mounts the driver's libcuda.so.1 into the container;
# everything else CUDA needs is in the image. --device cuda makes a missing GPU an error; the
# default, auto, falls back to the CPU with a warning.

ARG BASE_IMAGE=localhost/debian12-base:latest

# --- build: the plugin and the CLI (both images) ------------------------------------------------
FROM ${BASE_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
# Installs the C toolchain, curl (for rustup-init) and GStreamer's development headers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates curl build-essential pkg-config \
        libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
    && rm -rf /var/lib/apt/lists/*

ARG RUST_VERSION=1.95.0
ARG RUSTUP_VERSION=1.28.2
ARG RUSTUP_INIT_SHA256=20a06e644b0d9bd2fbdbfd52d42540bdde820ea7df86e92e533c073da0cdd43c
ARG RUSTUP_UPDATE_ROOT=https://static.rust-lang.org/rustup
ARG RUSTUP_DIST_SERVER=https://static.rust-lang.org
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
# Installs Rust RUST_VERSION (rustc, cargo; minimal profile) with rustup-init, its sha256 checked.
RUN --mount=type=secret,id=cacert if [ -s /run/secrets/cacert ]; then export SSL_CERT_FILE=/run/secrets/cacert \
        CURL_CA_BUNDLE=/run/secrets/cacert CARGO_HTTP_CAINFO=/run/secrets/cacert PIP_CERT=/run/secrets/cacert; fi \
    && curl --proto '=https' --tlsv1.2 -sSfL -o /tmp/rustup-init \
        "${RUSTUP_UPDATE_ROOT}/archive/${RUSTUP_VERSION}/x86_64-unknown-linux-gnu/rustup-init" \
    && echo "${RUSTUP_INIT_SHA256}  /tmp/rustup-init" | sha256sum -c - \
    && chmod +x /tmp/rustup-init \
    && /tmp/rustup-init -y --no-modify-path --profile minimal --default-toolchain "${RUST_VERSION}" \
    && rm /tmp/rustup-init \
    && rustc --version && cargo --version

WORKDIR /src
# Crates first, in their own layer: a change to src/ does not download them again.
COPY Cargo.toml Cargo.lock build.rs ./
# Installs (downloads) the crates of Cargo.lock into CARGO_HOME, against stub sources.
RUN --mount=type=secret,id=cacert if [ -s /run/secrets/cacert ]; then export SSL_CERT_FILE=/run/secrets/cacert \
        CURL_CA_BUNDLE=/run/secrets/cacert CARGO_HTTP_CAINFO=/run/secrets/cacert PIP_CERT=/run/secrets/cacert; fi \
    && mkdir -p src/bin && touch src/lib.rs && echo 'fn main() {}' >src/bin/yoloanonymize-cli.rs \
    && cargo fetch --locked \
    && rm -rf src
COPY src ./src
# Installs nothing: builds libgstyoloanonymize.so and yoloanonymize-cli (release, offline), with the
# image's ONNX Runtime and model paths baked in.
RUN YOLOANONYMIZE_ORT_LIB=/usr/local/lib/x86_64-linux-gnu/yoloanonymize/libonnxruntime.so \
    YOLOANONYMIZE_MODEL_DIR=/usr/local/share/yoloanonymize/models \
    cargo build --release --locked --offline --lib --bin yoloanonymize-cli \
    && ls -l target/release/libgstyoloanonymize.so target/release/yoloanonymize-cli

# --- ort-cpu: ONNX Runtime's OpenVINO build (the onnxruntime-openvino wheel, pinned; it has the CPU
# provider too), as on a host after scripts/setup.sh, from scripts/fetch-ort.sh --openvino --------
FROM ${BASE_IMAGE} AS ort-cpu
ARG DEBIAN_FRONTEND=noninteractive
# Installs python3 and pip, which scripts/fetch-ort.sh uses to download and check the wheel.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY scripts/common.sh scripts/fetch-ort.sh scripts/versions.env scripts/
# Installs ONNX Runtime's OpenVINO build (libonnxruntime.so and the OpenVINO libraries) and its
# licence files into /opt/install, laid out as under /usr/local.
RUN --mount=type=secret,id=cacert if [ -s /run/secrets/cacert ]; then export SSL_CERT_FILE=/run/secrets/cacert \
        CURL_CA_BUNDLE=/run/secrets/cacert CARGO_HTTP_CAINFO=/run/secrets/cacert PIP_CERT=/run/secrets/cacert; fi \
    && YOLOANONYMIZE_DEPS_DIR=/opt/deps bash scripts/fetch-ort.sh --openvino \
    && lib=/opt/install/lib/x86_64-linux-gnu/yoloanonymize doc=/opt/install/share/doc/gst-plugin-yoloanonymize \
    && mkdir -p "$lib" "$doc" \
    && cp -a /opt/deps/onnxruntime-openvino/lib* "$lib/" \
    && cp /opt/deps/onnxruntime-openvino/LICENSE "$doc/onnxruntime-LICENSE" \
    && cp /opt/deps/onnxruntime-openvino/ThirdPartyNotices.txt "$doc/onnxruntime-ThirdPartyNotices.txt" \
    && ls -lR /opt/install

# --- ort-gpu: ONNX Runtime (CUDA build) and the CUDA libraries, by scripts/setup-gpu.sh ---------
FROM ${BASE_IMAGE} AS ort-gpu
ARG DEBIAN_FRONTEND=noninteractive
# Installs python3 and pip, which scripts/setup-gpu.sh uses to download and check the wheels.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY scripts/common.sh scripts/setup-gpu.sh scripts/versions.env scripts/
# Installs the onnxruntime-gpu library and the NVIDIA CUDA 13 / cuDNN 9 shared libraries and
# their licences into /opt/install. One step, so that the wheels (about 1.6 GB, kept by
# setup-gpu.sh in <deps>/wheels) are deleted before the layer is committed.
RUN --mount=type=secret,id=cacert if [ -s /run/secrets/cacert ]; then export SSL_CERT_FILE=/run/secrets/cacert \
        CURL_CA_BUNDLE=/run/secrets/cacert CARGO_HTTP_CAINFO=/run/secrets/cacert PIP_CERT=/run/secrets/cacert; fi \
    && YOLOANONYMIZE_DEPS_DIR=/opt/deps bash scripts/setup-gpu.sh \
    && rm -rf /opt/deps/wheels \
    && lib=/opt/install/lib/x86_64-linux-gnu/yoloanonymize doc=/opt/install/share/doc/gst-plugin-yoloanonymize \
    && mkdir -p "$lib" "$doc" \
    && cp -a /opt/deps/onnxruntime-gpu/lib* "$lib/" \
    && cp -a /opt/deps/onnxruntime-gpu/licenses/. "$doc/" \
    && rm -rf /opt/deps \
    && ls -l "$lib" "$doc"

# --- runtime: what both images hold but ONNX Runtime ---------------------------------------------
FROM ${BASE_IMAGE} AS runtime
ARG DEBIAN_FRONTEND=noninteractive
# Installs GStreamer's command-line tools and plugins (base, good, bad, ugly, libav): decoders,
# encoders, muxers and the RTSP elements the pipelines use.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        gstreamer1.0-tools \
        gstreamer1.0-plugins-base gstreamer1.0-plugins-base-apps \
        gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
        gstreamer1.0-libav \
    && rm -rf /var/lib/apt/lists/*

COPY --from=build /src/target/release/libgstyoloanonymize.so /usr/local/lib/x86_64-linux-gnu/gstreamer-1.0/
COPY --from=build /src/target/release/yoloanonymize-cli /usr/local/bin/
COPY models/yolo11n-pose-dynamic.onnx models/README.md models/LICENSE-AGPL-3.0.txt /usr/local/share/yoloanonymize/models/
# The int8 variant that precision=auto runs on OpenVINO (models/README-int8.md).
COPY models/yolo11n-pose-dynamic-int8.onnx models/README-int8.md /usr/local/share/yoloanonymize/models/
COPY models/face_detection_yunet_2023mar_dynamic.onnx models/face_detection_yunet_2023mar_dynamic-int8.onnx models/README-face.md models/LICENSE-YuNet-MIT.txt /usr/local/share/yoloanonymize/models/
COPY pipelines/ /usr/local/share/yoloanonymize/pipelines/
COPY LICENSE /usr/local/share/doc/gst-plugin-yoloanonymize/LICENSE

# GST_REGISTRY: the plugin registry is made once, in the image's smoke test below, so a container
# does not rescan every plugin at start and any --user can read it.
ENV GST_PLUGIN_PATH=/usr/local/lib/x86_64-linux-gnu/gstreamer-1.0 \
    ORT_DYLIB_PATH=/usr/local/lib/x86_64-linux-gnu/yoloanonymize/libonnxruntime.so \
    GST_REGISTRY=/var/cache/gstreamer-1.0/registry.x86_64.bin

WORKDIR /data
ENTRYPOINT ["yoloanonymize-cli"]
CMD ["--help"]

# --- gpu: the NVIDIA GPU image (--target gpu) -----------------------------------------------------
FROM runtime AS gpu
# A directory copy keeps the libonnxruntime.so and .so.1 symlinks as symlinks.
COPY --from=ort-gpu /opt/install/ /usr/local/
# The float16 variant of the model, for half-precision=true on CUDA.
COPY models/yolo11n-pose-dynamic-fp16.onnx /usr/local/share/yoloanonymize/models/

# Installs nothing: the element loads the CUDA libraries from the directory of libonnxruntime.so
# itself; ld.so.conf also makes them found by ldd (the check below) and by anything else.
RUN echo /usr/local/lib/x86_64-linux-gnu/yoloanonymize >/etc/ld.so.conf.d/yoloanonymize.conf && ldconfig

ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# Installs nothing: smoke test at build time (no GPU there): every library the CUDA provider
# needs is found but the driver's libcuda.so.1, which the container toolkit brings at run time;
# ONNX Runtime and the default model load and frames go through on the CPU; on-failure=error
# makes a failure fail the build. Writes the plugin registry (GST_REGISTRY).
RUN missing=$(ldd /usr/local/lib/x86_64-linux-gnu/yoloanonymize/libonnxruntime_providers_cuda.so \
        | awk '/not found/ {print $1}' | grep -v '^libcuda\.so\.1$' || true) \
    && if [ -n "$missing" ]; then echo "libonnxruntime_providers_cuda.so: not found: $missing" >&2; exit 1; fi \
    && mkdir -p /var/cache/gstreamer-1.0 \
    && gst-inspect-1.0 yoloanonymize >/dev/null \
    && gst-launch-1.0 -q videotestsrc num-buffers=4 ! video/x-raw,width=320,height=240 \
        ! yoloanonymize device=cpu on-failure=error ! fakesink \
    && chmod a+r "$GST_REGISTRY" \
    && yoloanonymize-cli --version

# --- cpu: the CPU image (--target cpu; the default, being the last stage) --------------------------
FROM runtime AS cpu
# A directory copy keeps the libonnxruntime.so and .so.1 symlinks as symlinks.
COPY --from=ort-cpu /opt/install/ /usr/local/

# Installs nothing: smoke test at build time: ONNX Runtime loads, the default model loads (no
# model= given), and frames go through; on-failure=error makes any of these fail the build.
# Writes the plugin registry (GST_REGISTRY).
RUN mkdir -p /var/cache/gstreamer-1.0 \
    && gst-inspect-1.0 yoloanonymize >/dev/null \
    && gst-launch-1.0 -q videotestsrc num-buffers=4 ! video/x-raw,width=320,height=240 \
        ! yoloanonymize device=cpu on-failure=error ! fakesink \
    && chmod a+r "$GST_REGISTRY" \
    && yoloanonymize-cli --version
