//! The ONNX Runtime side: finding and loading the library, creating a session on the requested
//! execution provider, checking the model against the pose contract, and running a batch.
//!
//! No GStreamer here: errors are [`EngineError`]s with messages a user can act on; the element
//! turns them into GStreamer errors.

use std::fmt;
use std::path::{Path, PathBuf};

use ort::environment::Environment;
use ort::ep::{self, ArbitrarilyConfigurableExecutionProvider};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorElementType, TensorRef, ValueType};
use parking_lot::Mutex;

use crate::decode::POSE_CHANNELS;
use crate::face::{FACE_MODEL_FILE, YUNET_INPUT_NAME, YUNET_OUTPUTS};

/// The ONNX Runtime release the set-up scripts install.
pub const ORT_VERSION: &str = "1.31.1";
/// The command that installs the CUDA runtime beside the GPU build of ONNX Runtime.
pub const GPU_SETUP_HINT: &str = "run `scripts/setup-gpu.sh` from the yoloanonymize source tree (it installs the onnxruntime-gpu library and the NVIDIA CUDA 13 runtime wheels into .deps/onnxruntime-gpu/)";
/// The command that installs the OpenVINO build of ONNX Runtime.
pub const OPENVINO_SETUP_HINT: &str = "run `scripts/setup.sh` from the yoloanonymize source tree (it installs the onnxruntime-openvino build into .deps/onnxruntime-openvino/), or set ORT_DYLIB_PATH to its libonnxruntime.so";
/// The command that installs it.
pub const SETUP_HINT: &str = "run `scripts/setup.sh` from the yoloanonymize source tree (it installs the ONNX Runtime library from the `onnxruntime` wheel), or set ORT_DYLIB_PATH to a libonnxruntime.so";

/// Which execution provider the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    /// CUDA if it can be registered, else CPU.
    Auto,
    Cpu,
    /// CUDA on the given device index.
    Cuda(i32),
    /// The OpenVINO execution provider on the CPU.
    OpenVino,
}

impl Device {
    /// Parses `auto`, `cpu`, `cuda` or `cuda:N`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "auto" | "" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            "openvino" => Ok(Device::OpenVino),
            _ => match s.strip_prefix("cuda:").map(str::parse::<i32>) {
                Some(Ok(n)) if n >= 0 => Ok(Device::Cuda(n)),
                _ => Err(format!(
                    "unknown device '{s}': use auto, cpu, openvino, cuda or cuda:N"
                )),
            },
        }
    }
}

/// The execution provider a session runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// ONNX Runtime's own CPU provider.
    Cpu,
    /// OpenVINO's CPU plugin, through ONNX Runtime's OpenVINO execution provider.
    OpenVino,
    /// ONNX Runtime's CUDA execution provider on the given device.
    Cuda(i32),
}

impl Provider {
    pub fn is_cuda(self) -> bool {
        matches!(self, Provider::Cuda(_))
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provider::Cpu => write!(f, "cpu"),
            Provider::OpenVino => write!(f, "openvino"),
            Provider::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Auto => write!(f, "auto"),
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::OpenVino => write!(f, "openvino"),
        }
    }
}

/// What the network computes in on the CPU (OpenVINO), as the user asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// The measured rule of [`choose_precision`]: int8 when the model's int8 variant is there,
    /// else bfloat16 where the CPU has bfloat16 instructions, else float32.
    #[default]
    Auto,
    Fp32,
    /// bfloat16 through OpenVINO's inference precision hint (AVX512-BF16 or AMX; float32 where
    /// the CPU has neither).
    Bf16,
    /// The int8 (QDQ) variant of the model, [`int8_variant`].
    Int8,
}

/// Region padding, in network pixels on each side, that absorbs the keypoint jitter of bfloat16
/// on OpenVINO and of float16 on CUDA against float32 (measured on vtest.avi, README
/// Performance).
pub const BF16_REGION_PAD: f32 = 2.0;
/// Region padding for the int8 model: the smallest padding at which the element (with
/// [`INT8_CONF_OFFSET`]) covers >= 99.5 % of the float32 reference's eye regions on vtest.avi
/// frames 300..794 (99.62 %; 100 % at 10; 96.0 % at 3, 95.4 % at 2): int8 moves the eye
/// keypoints by little (p99 1.2 px) but changes which neighbouring keypoints are confident, and
/// so the shape of the eye band (models/README-int8.md, "Coverage").
pub const INT8_REGION_PAD: f32 = 8.0;

/// How much lower the confidence threshold is for the int8 model: it scores people lower than
/// float32 (0.49 for float32's 0.53 on a test frame), so persons that float32 scores just above
/// the threshold fall under it
/// (models/README-int8.md: at 0.25 the element with int8 never reaches 99.5 % of the float32
/// reference's eye regions on vtest.avi, 99.42 % at most, whatever the padding; at 0.20 it does).
pub const INT8_CONF_OFFSET: f32 = 0.05;

/// How much the face detector's threshold (`face-threshold`) is lowered when it runs its int8
/// variant. The int8 face model scores faces a little below float32, so faces that float32 scores
/// just above the threshold fall under it: on the sample clip at the default 0.5 the int8 model
/// found 251 of the 267 faces float32 finds (all 16 missed scored 0.50 to 0.545 in float32; every
/// face float32 scores 0.7 or more found), at 0.45 265, at 0.4 all 267 (`tests/int8.rs`,
/// 2026-12-02). The extra detections err on the side of redaction.
pub const FACE_INT8_CONF_OFFSET: f32 = 0.1;

impl Precision {
    /// How much the element lowers its confidence threshold for a session in this precision (the
    /// extra detections err on the side of redaction).
    pub fn conf_offset(self) -> f32 {
        match self {
            Precision::Int8 => INT8_CONF_OFFSET,
            _ => 0.0,
        }
    }

    /// Parses `auto`, `fp32`, `bf16` or `int8` (also `float32`, `bfloat16`).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Precision::Auto),
            "fp32" | "f32" | "float32" => Ok(Precision::Fp32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "int8" | "i8" => Ok(Precision::Int8),
            other => Err(format!(
                "unknown precision '{other}': use auto, fp32, bf16 or int8"
            )),
        }
    }

    /// The old boolean `openvino-bf16` property: true = bfloat16 where the CPU has it, else
    /// float32 (`bf16`, which falls back with a note); false = float32. Never int8: an element
    /// that has no `precision` property does not apply int8's padding and threshold offset.
    pub fn from_openvino_bf16(bf16: bool) -> Self {
        if bf16 {
            Precision::Bf16
        } else {
            Precision::Fp32
        }
    }

    /// How far regions grow, in network pixels on each side, for a session computing in this
    /// precision (`Auto` is never in effect: it counts as float32).
    pub fn region_pad(self) -> f32 {
        match self {
            Precision::Auto | Precision::Fp32 => 0.0,
            Precision::Bf16 => BF16_REGION_PAD,
            Precision::Int8 => INT8_REGION_PAD,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        })
    }
}

/// Everything that can go wrong before or during inference, each with what to do about it.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineError {
    /// The ONNX Runtime library could not be found or loaded.
    Library(String),
    /// The model file is missing or unreadable.
    ModelFile { path: PathBuf, reason: String },
    /// ONNX Runtime rejected the file (not ONNX, unsupported operators, ...).
    ModelLoad { path: PathBuf, reason: String },
    /// The model loads but is not a YOLO pose model.
    Contract { path: PathBuf, reason: String },
    /// The face detector (`face-model`) is missing, unreadable, not loadable or not YuNet.
    FaceModel { path: PathBuf, reason: String },
    /// The execution provider the user asked for is not available.
    Provider(String),
    /// A batch failed to run.
    Inference(String),
    /// Settings that contradict each other (e.g. two elements naming the same shared worker
    /// with different models).
    Config(String),
}

impl From<String> for EngineError {
    fn from(m: String) -> Self {
        EngineError::Config(m)
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Library(m) => write!(f, "{m}"),
            EngineError::ModelFile { path, reason } => write!(
                f,
                "cannot read model file '{}': {reason}; set the `model` property to a YOLO pose ONNX file",
                path.display()
            ),
            EngineError::ModelLoad { path, reason } => write!(
                f,
                "ONNX Runtime cannot load '{}' as a model: {reason}; the `model` property must name an ONNX file (for example models/yolo11n-pose-dynamic.onnx)",
                path.display()
            ),
            EngineError::Contract { path, reason } => write!(
                f,
                "'{}' is not a YOLO pose model: {reason}; use a YOLO pose export such as models/yolo11n-pose-dynamic.onnx",
                path.display()
            ),
            EngineError::FaceModel { path, reason } => write!(
                f,
                "cannot use '{}' as the face detector (face-model): {reason}; give a YuNet 2023mar ONNX file with dynamic input such as models/{FACE_MODEL_FILE}, or set detectors=pose to run without a face detector",
                path.display()
            ),
            EngineError::Provider(m) => write!(f, "{m}"),
            EngineError::Inference(m) => write!(f, "inference failed: {m}"),
            EngineError::Config(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// Where the element looks for `libonnxruntime.so`, in order.
///
/// `ORT_DYLIB_PATH` alone when it is set (the user chose that file); otherwise each of `extra_dirs` (the element passes the plugin's own directory); the
/// path baked in at build time from `YOLOANONYMIZE_ORT_LIB` (set by meson); the source tree's
/// `.deps/onnxruntime/` filled by `scripts/setup.sh`; then the system library directories.
pub fn library_candidates(extra_dirs: &[PathBuf], prefer_gpu: bool) -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(p)];
    }
    let mut c = Vec::new();
    for d in extra_dirs {
        c.push(d.join("libonnxruntime.so"));
    }
    if let Some(p) = option_env!("YOLOANONYMIZE_ORT_LIB") {
        c.push(PathBuf::from(p));
    }
    // The GPU build (scripts/setup-gpu.sh) when CUDA is wanted and may work; else the OpenVINO
    // build (faster on the CPU, see the README's Performance); else the plain CPU build.
    let deps = Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps");
    if prefer_gpu {
        c.push(deps.join("onnxruntime-gpu/libonnxruntime.so"));
    }
    c.push(deps.join("onnxruntime-openvino/libonnxruntime.so"));
    c.push(deps.join("onnxruntime/libonnxruntime.so"));
    for d in [
        "/usr/local/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ] {
        c.push(Path::new(d).join("libonnxruntime.so"));
    }
    c
}

static ENVIRONMENT: Mutex<Option<(Environment, PathBuf)>> = Mutex::new(None);

/// Loads ONNX Runtime once per process (the first candidate that exists) and returns its
/// environment. A failure is not cached: a later call tries again.
pub fn environment(
    extra_dirs: &[PathBuf],
    prefer_gpu: bool,
) -> Result<(Environment, PathBuf), EngineError> {
    let mut env = ENVIRONMENT.lock();
    if let Some(e) = env.as_ref() {
        return Ok(e.clone());
    }
    let candidates = library_candidates(extra_dirs, prefer_gpu);
    let found = candidates.iter().find(|p| p.exists());
    let Some(path) = found else {
        let list: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        return Err(EngineError::Library(format!(
            "ONNX Runtime {ORT_VERSION} (libonnxruntime.so) not found; looked in: {}; {SETUP_HINT}",
            list.join(", ")
        )));
    };
    let builder = ort::init_from(path).map_err(|e| {
        EngineError::Library(format!(
            "cannot load ONNX Runtime from '{}': {e}; {SETUP_HINT}",
            path.display()
        ))
    })?;
    let e = builder.with_name("yoloanonymize").build().map_err(|e| {
        EngineError::Library(format!(
            "cannot start ONNX Runtime from '{}': {e}",
            path.display()
        ))
    })?;
    *env = Some((e.clone(), path.clone()));
    Ok((e, path.clone()))
}

/// Libraries ONNX Runtime's CUDA execution provider (1.31, CUDA 13) needs, in loading order, and
/// whether it cannot work without them. `libonnxruntime_providers_cuda.so` links the first five;
/// cuDNN (convolutions), cuFFT and NVRTC are opened at run time.
pub const CUDA_LIBRARIES: &[(&str, bool, &str)] = &[
    ("libcuda.so.1", true, "the NVIDIA driver"),
    ("libcudart.so.13", true, "CUDA 13 runtime"),
    ("libcublasLt.so.13", true, "cuBLAS"),
    ("libcublas.so.13", true, "cuBLAS"),
    ("libcurand.so.10", true, "cuRAND"),
    ("libnvJitLink.so.13", false, "nvJitLink"),
    ("libnvrtc.so.13", false, "NVRTC"),
    ("libcufft.so.12", false, "cuFFT"),
    ("libcudnn_graph.so.9", false, "cuDNN"),
    ("libcudnn_engines_precompiled.so.9", false, "cuDNN"),
    ("libcudnn_engines_runtime_compiled.so.9", false, "cuDNN"),
    ("libcudnn_heuristic.so.9", false, "cuDNN"),
    ("libcudnn_ops.so.9", false, "cuDNN"),
    ("libcudnn_cnn.so.9", false, "cuDNN"),
    ("libcudnn_adv.so.9", false, "cuDNN"),
    ("libcudnn.so.9", true, "cuDNN 9"),
];

/// Directories (separated by `:`) searched first for the CUDA libraries.
pub const CUDA_LIB_DIRS_ENV: &str = "YOLOANONYMIZE_CUDA_LIB_DIRS";

/// Folders where Python packages may be installed, for the interpreters this process can see:
/// `PYTHONPATH`'s entries; then, for each `VIRTUAL_ENV`/`CONDA_PREFIX` prefix and for each
/// `python3` on `PATH` (its folder's parent, and the same for each link of a symbolic-link chain,
/// so that `/usr/local/bin/python3 -> /opt/venv/bin/python3` finds the virtual environment),
/// `lib/python3*/site-packages` (and `lib64`, `dist-packages`, Debian's `lib/python3/dist-packages`
/// and `local/lib/python3*/dist-packages`); then `~/.local/lib/python3*/site-packages`. Only
/// existing folders, each once, in that order. Nothing is run: no interpreter is started.
pub fn python_package_dirs(
    path: Option<&std::ffi::OsStr>,
    pythonpath: Option<&std::ffi::OsStr>,
    prefixes: &[PathBuf],
    home: Option<&Path>,
) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut push = |p: PathBuf| {
        if p.is_dir() && !out.contains(&p) {
            out.push(p);
        }
    };
    for p in pythonpath.map(std::env::split_paths).into_iter().flatten() {
        push(p);
    }
    // Interpreter prefixes: each environment's, then each python3 on PATH and the links it goes
    // through (at most 8).
    let mut roots: Vec<PathBuf> = prefixes.to_vec();
    for dir in path.map(std::env::split_paths).into_iter().flatten() {
        let mut exe = dir.join("python3");
        for _ in 0..8 {
            if !exe.exists() {
                break;
            }
            if let Some(root) = exe.parent().and_then(Path::parent) {
                roots.push(root.to_path_buf());
            }
            match std::fs::read_link(&exe) {
                Ok(target) => exe = exe.parent().unwrap_or(Path::new("/")).join(target),
                Err(_) => break,
            }
        }
    }
    let versions = |lib: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(lib)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    };
    for root in roots {
        for lib in ["lib", "lib64"] {
            for v in versions(&root.join(lib)) {
                push(v.join("site-packages"));
                push(v.join("dist-packages"));
            }
        }
        push(root.join("lib/python3/dist-packages"));
        for v in versions(&root.join("local/lib")) {
            push(v.join("dist-packages"));
        }
    }
    if let Some(home) = home {
        for v in versions(&home.join(".local/lib")) {
            push(v.join("site-packages"));
        }
    }
    out
}

/// The `lib/` folders of NVIDIA's Python packages (`nvidia-cuda-runtime`, `nvidia-cublas`,
/// `nvidia-cudnn-cu13`, ...) under the given package folders: `nvidia/*/lib` (CUDA 13's wheels put
/// theirs in `nvidia/cu13/lib`, cuDNN in `nvidia/cudnn/lib`; CUDA 12's one per package), sorted by
/// name within each package folder.
pub fn nvidia_package_lib_dirs(package_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in package_dirs {
        let mut libs: Vec<PathBuf> = std::fs::read_dir(d.join("nvidia"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("lib"))
            .filter(|p| p.is_dir())
            .collect();
        libs.sort();
        for l in libs {
            if !out.contains(&l) {
                out.push(l);
            }
        }
    }
    out
}

/// Where [`check_cuda`] looks for each CUDA library, in order: the folders of
/// `YOLOANONYMIZE_CUDA_LIB_DIRS`; `ort_dir`, the folder of the ONNX Runtime in use (where
/// `scripts/setup-gpu.sh` puts the wheels' libraries); the `lib/` folders of NVIDIA's Python
/// packages ([`python_package_dirs`], [`nvidia_package_lib_dirs`]). A library in none of them is
/// then loaded by name, from the system's search path. `var` reads the environment.
pub fn cuda_library_dirs(
    ort_dir: &Path,
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Vec<PathBuf> {
    let var = |k: &str| var(k).filter(|v| !v.is_empty());
    let mut dirs: Vec<PathBuf> = var(CUDA_LIB_DIRS_ENV)
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    dirs.push(ort_dir.to_path_buf());
    let prefixes: Vec<PathBuf> = ["VIRTUAL_ENV", "CONDA_PREFIX"]
        .into_iter()
        .filter_map(var)
        .map(PathBuf::from)
        .collect();
    let home = var("HOME").map(PathBuf::from);
    let packages = python_package_dirs(
        var("PATH").as_deref(),
        var("PYTHONPATH").as_deref(),
        &prefixes,
        home.as_deref(),
    );
    for d in nvidia_package_lib_dirs(&packages) {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// The first of `dirs` that holds `name`.
pub fn find_library(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| p.exists())
}

static CUDA_CHECK: Mutex<Option<Result<(), String>>> = Mutex::new(None);

/// Checks that ONNX Runtime's CUDA execution provider can be used with the library at `ort_lib`,
/// and loads what it needs: the provider must sit beside that library (the GPU build), and each
/// CUDA library is loaded from the first folder of [`cuda_library_dirs`] that has it (the
/// override, ONNX Runtime's own folder where `scripts/setup-gpu.sh` puts the wheels' libraries,
/// NVIDIA's Python packages), else from the system's search path. Once loaded, the provider finds
/// them by name, so nobody edits `LD_LIBRARY_PATH`. The error names every missing library and
/// what provides it. Done once per process.
pub fn check_cuda(ort_lib: &Path) -> Result<(), String> {
    let mut cached = CUDA_CHECK.lock();
    if let Some(r) = cached.as_ref() {
        return r.clone();
    }
    let dir = ort_lib.parent().unwrap_or(Path::new("."));
    let r = check_cuda_in(ort_lib, &cuda_library_dirs(dir, |k| std::env::var_os(k)));
    *cached = Some(r.clone());
    r
}

/// [`check_cuda`] with the folders to search given, not cached. Without an NVIDIA driver, the
/// libraries are only looked for, not loaded.
pub fn check_cuda_in(ort_lib: &Path, dirs: &[PathBuf]) -> Result<(), String> {
    let dir = ort_lib.parent().unwrap_or(Path::new("."));
    let mut missing = Vec::new();
    let mut runtime_missing = false;
    let mut libs_missing = false;
    if !dir.join("libonnxruntime_providers_cuda.so").exists() {
        runtime_missing = true;
        missing.push(format!(
            "libonnxruntime_providers_cuda.so (the ONNX Runtime in use, {}, is the CPU-only build)",
            ort_lib.display()
        ));
    }
    // Without the driver nothing else can run: the rest is then only looked for, not loaded
    // (the CUDA libraries map gigabytes).
    let driver = nvidia_driver_present();
    for (name, required, what) in CUDA_LIBRARIES {
        let found = (*name != "libcuda.so.1")
            .then(|| find_library(dirs, name))
            .flatten();
        let r = if (*name == "libcuda.so.1" && driver) || (!driver && found.is_some()) {
            Ok(())
        } else if let Some(path) = &found {
            ort::util::preload_dylib(path)
        } else {
            ort::util::preload_dylib(*name)
        };
        if let (Err(e), true) = (r, *required) {
            // dlerror's text is in the source: "<file>: cannot open shared object file: ...".
            let why = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.to_string());
            let why = why
                .rsplit(": ")
                .next()
                .filter(|w| !w.is_empty())
                .unwrap_or("cannot be loaded")
                .to_string();
            runtime_missing |= *name != "libcuda.so.1";
            libs_missing |= *name != "libcuda.so.1";
            missing.push(format!("{name} ({what}: {why})"));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let driver = missing.iter().any(|m| m.starts_with("libcuda.so.1 "));
    let looked = libs_missing.then(|| {
        let d: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        format!(
            "the CUDA libraries were looked for in {} (the NVIDIA Python packages' lib/ folders are found through python3 on PATH, VIRTUAL_ENV, CONDA_PREFIX and PYTHONPATH) and then on the system's library path; {CUDA_LIB_DIRS_ENV} adds folders (separated by ':')",
            d.join(", ")
        )
    });
    let hint = [
        runtime_missing.then_some(GPU_SETUP_HINT),
        looked.as_deref(),
        driver.then_some("install the NVIDIA driver, R580 or newer for CUDA 13 (in a container: the NVIDIA container toolkit)"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("; ");
    Err(format!(
        "CUDA cannot be used: missing {}; {hint}",
        missing.join(", ")
    ))
}

/// Whether the NVIDIA driver's `libcuda.so.1` can be loaded (it stays loaded). Looked up once per
/// process: the answer decides which ONNX Runtime build is loaded, whether the CUDA libraries are
/// loaded, and whether a CPU fallback deserves a warning.
pub fn nvidia_driver_present() -> bool {
    static PRESENT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PRESENT.get_or_init(|| ort::util::preload_dylib("libcuda.so.1").is_ok())
}

/// Whether this CPU has bfloat16 instructions (OpenVINO computes in bfloat16 only then).
pub fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16") || cpu_has_amx_bf16()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether bfloat16 is faster than float32 on this CPU, so that `precision=auto`, the face
/// detector and the int8 model's float parts use it: with AMX-BF16 (Intel tile units), or with
/// AVX512-BF16 on an AMD CPU. Measured with `benches/bench.sh --frames 795`, the pose model in
/// bfloat16 against float32: 1.56x on an AMD EPYC with AVX512-BF16 (2026-11-26), 1.96x on an
/// Intel Xeon with AMX (2026-12-02), and 0.73x on an Intel Xeon whose AVX512-BF16 came without
/// AMX (2026-12-02: `vdpbf16ps` does no more multiply-adds a cycle than two FMA units do in
/// float32, and OpenVINO converts around it).
pub fn cpu_bf16_is_fast() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        cpu_has_amx_bf16() || (std::arch::is_x86_feature_detected!("avx512bf16") && cpu_is_amd())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_amx_bf16() -> bool {
    cpuinfo_has(" amx_bf16")
}

/// Whether the CPU's vendor string (CPUID leaf 0) is AMD's.
#[cfg(target_arch = "x86_64")]
fn cpu_is_amd() -> bool {
    let r = std::arch::x86_64::__cpuid(0);
    let vendor: Vec<u8> = [r.ebx, r.edx, r.ecx]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    vendor == b"AuthenticAMD"
}

/// Whether this CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8). Without
/// them OpenVINO still runs int8, with AVX2 multiply-adds (vpmaddubsw).
pub fn cpu_has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
            || std::arch::is_x86_feature_detected!("avxvnni")
            || cpuinfo_has(" amx_int8")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether /proc/cpuinfo lists `flag` (for the features `is_x86_feature_detected!` does not
/// know, such as AMX). The file is read once per process.
#[cfg(target_arch = "x86_64")]
fn cpuinfo_has(flag: &str) -> bool {
    static CPUINFO: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CPUINFO
        .get_or_init(|| std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default())
        .contains(flag)
}

/// The CPU features that decide the precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuFeatures {
    /// bfloat16 instructions ([`cpu_has_bf16`]): `precision=bf16` runs in bfloat16.
    pub bf16: bool,
    /// bfloat16 faster than float32 ([`cpu_bf16_is_fast`]): chosen without being asked.
    pub bf16_fast: bool,
    pub vnni: bool,
}

impl CpuFeatures {
    /// This machine's.
    pub fn detect() -> Self {
        CpuFeatures {
            bf16: cpu_has_bf16(),
            bf16_fast: cpu_bf16_is_fast(),
            vnni: cpu_has_vnni(),
        }
    }
}

/// The int8 variant of `model` that `precision=int8` runs: `<stem>-int8.onnx` beside it (the
/// model itself when its name already ends in `-int8.onnx`). models/quantize-nncf.sh makes it.
pub fn int8_variant(model: &Path) -> PathBuf {
    variant(model, "-int8")
}

/// The command that makes the int8 variant of the bundled model.
pub const INT8_HINT: &str = "models/quantize-nncf.sh makes it from models/yolo11n-pose-dynamic.onnx (models/README-int8.md)";

/// Which precision a session computes in and why, for a request on a provider.
///
/// The rule (`auto`), from the measurements in models/README-int8.md and README Performance: on
/// OpenVINO, the int8 variant when it is there (it is shipped only because it keeps the coverage
/// bar with [`INT8_REGION_PAD`], and it ran 1.6 to 1.9 times as fast as float32 even on a CPU
/// without VNNI; on a CPU with AMX bfloat16 ran the pose model 1.07 times as fast but left eyes
/// of faces >= 6 px uncovered in 5 frames of the face-coverage clip that int8 covers, so int8
/// stays); else bfloat16 where it is faster than float32 on the CPU ([`cpu_bf16_is_fast`]); else
/// float32. On ONNX Runtime's CPU provider (the project's float32 reference) and on CUDA, `auto`
/// is float32. An explicit `int8` runs the int8 variant on any provider; an explicit `bf16` runs
/// bfloat16 wherever the CPU has the instructions (saying so where it is the slower), and falls
/// back to float32, with a note, where it cannot be had. `int8` is the variant's path when it
/// exists.
pub fn choose_precision(
    requested: Precision,
    provider: Provider,
    cpu: CpuFeatures,
    int8: Option<&Path>,
) -> (Precision, String) {
    let openvino = provider == Provider::OpenVino;
    let no_vnni = if cpu.vnni {
        ""
    } else {
        "; this CPU has no VNNI instructions, so int8 runs on AVX2 multiply-adds"
    };
    match (requested, openvino) {
        (Precision::Int8, _) => (
            Precision::Int8,
            format!(
                "precision=int8: {} on {provider}{}",
                int8.map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the int8 model".into()),
                if openvino { no_vnni } else { "" }
            ),
        ),
        (Precision::Auto, true) => match int8 {
            Some(p) => (
                Precision::Int8,
                format!(
                    "precision=auto: int8 ({}), the fastest measured precision that keeps the coverage bar{no_vnni}",
                    p.display()
                ),
            ),
            None if cpu.bf16_fast => (
                Precision::Bf16,
                "precision=auto: bfloat16 (this CPU has bfloat16 instructions; no int8 variant of the model beside it)".into(),
            ),
            None if cpu.bf16 => (
                Precision::Fp32,
                format!(
                    "precision=auto: float32: this CPU's bfloat16 instructions (AVX512-BF16 without AMX) ran the model slower than float32, and the model has no int8 variant beside it ({INT8_HINT})"
                ),
            ),
            None => (
                Precision::Fp32,
                format!(
                    "precision=auto: float32: this CPU has no bfloat16 instructions (AVX512-BF16, AMX) and the model has no int8 variant beside it ({INT8_HINT})"
                ),
            ),
        },
        (Precision::Bf16, true) if cpu.bf16_fast => {
            (Precision::Bf16, "precision=bf16: bfloat16".into())
        }
        (Precision::Bf16, true) if cpu.bf16 => (
            Precision::Bf16,
            "precision=bf16: bfloat16 (on this CPU, AVX512-BF16 without AMX, it ran slower than float32: precision=auto or fp32 is faster)".into(),
        ),
        (Precision::Bf16, true) => (
            Precision::Fp32,
            "precision=bf16: this CPU has no bfloat16 instructions (AVX512-BF16, AMX); computing in float32".into(),
        ),
        (Precision::Bf16, false) => (
            Precision::Fp32,
            format!("float32 on {provider} (bfloat16 applies to OpenVINO only)"),
        ),
        (Precision::Auto, false) => (
            Precision::Fp32,
            format!("precision=auto: float32 on {provider}"),
        ),
        (Precision::Fp32, _) => (Precision::Fp32, "precision=fp32: float32".into()),
    }
}

/// The float16 variant of `model` that `half-precision` runs: `<stem>-fp16.onnx` beside it (the
/// model itself when its name already ends in `-fp16.onnx`).
pub fn fp16_variant(model: &Path) -> PathBuf {
    variant(model, "-fp16")
}

fn variant(model: &Path, suffix: &str) -> PathBuf {
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with(&format!("{suffix}.onnx")) {
        return model.to_path_buf();
    }
    let stem = name.strip_suffix(".onnx").unwrap_or(&name);
    model.with_file_name(format!("{stem}{suffix}.onnx"))
}

/// Checks that `path` is a readable regular file (or a symlink to one) without blocking: a FIFO
/// or a device is refused before anything opens it (opening a FIFO for reading would wait for a
/// writer forever).
pub fn check_model_file(path: &Path) -> Result<(), EngineError> {
    let err = |reason: String| EngineError::ModelFile {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file (a FIFO, a socket or a device)"
        };
        return Err(err(format!("it is {what}; give the path of an ONNX file")));
    }
    std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// How to build an [`Engine`]. Elements that share a worker must agree on all of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EngineConfig {
    pub model: PathBuf,
    pub device: Device,
    /// Intra-op threads; 0 = one per available core.
    pub threads: usize,
    /// Directories searched first for the ONNX Runtime library.
    pub library_dirs: Vec<PathBuf>,
    /// Run the float16 variant of the model ([`fp16_variant`]) when the provider is CUDA.
    pub half_precision: bool,
    /// The old `openvino-bf16` property: [`Engine::load`] runs [`Precision::from_openvino_bf16`]
    /// of it (true = `auto`, false = `fp32`); [`Engine::load_with_precision`] ignores it.
    pub openvino_bf16: bool,
    /// The face detector to load beside the pose model, on the same provider (YuNet's contract:
    /// [`crate::face::YUNET_INPUT_NAME`], [`crate::face::YUNET_OUTPUTS`]); `None`: no face
    /// detector.
    pub face_model: Option<PathBuf>,
    /// The precision [`Engine::load_config`] asks for.
    pub precision: Precision,
}

impl fmt::Display for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {} with {} threads",
            self.model.display(),
            self.device,
            self.threads
        )?;
        if self.half_precision {
            write!(f, ", half precision")?;
        }
        if !self.openvino_bf16 {
            write!(f, ", no bf16")?;
        }
        if self.precision != Precision::Auto {
            write!(f, ", precision={}", self.precision)?;
        }
        if let Some(m) = &self.face_model {
            write!(f, ", face model {}", m.display())?;
        }
        Ok(())
    }
}

/// The network's input size when the model fixes it (otherwise height and width are dynamic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputShape {
    pub batch: Option<usize>,
    pub height: Option<usize>,
    pub width: Option<usize>,
}

/// The face detector's session, on the pose model's provider.
pub struct FaceSession {
    session: Session,
    /// The int8 model on ONNX Runtime's CPU provider for the smallest inputs ([`is_small_input`]),
    /// as for the pose model: OpenVINO's int8 path is not trusted with them.
    small: Option<Session>,
    /// The face model file it runs (the int8 variant when [`face_precision`] chose int8).
    pub model: PathBuf,
    /// What it computes in ([`face_precision`]).
    pub precision: Precision,
    /// How much the element lowers `face-threshold` for it ([`FACE_INT8_CONF_OFFSET`] for int8).
    pub conf_offset: f32,
}

/// What the face detector computes in, given the pose model's precision in effect, the provider,
/// the CPU and whether the face model's int8 variant (`<face model>-int8.onnx`,
/// models/quantize-face-nncf.sh) is there. On OpenVINO: int8 when the pose model runs int8 and the
/// variant is there (measured on the face-coverage clip to cover the faces float32 covers, and
/// 1.7 times as fast on an AVX2 CPU: models/README-face.md); else bfloat16 where bfloat16 is
/// faster than float32 on the CPU ([`cpu_bf16_is_fast`]) and the pose model does not compute in
/// float32 (so `precision=fp32` and `openvino-bf16=false` keep both detectors in float32; measured:
/// the same faces covered as float32, 1.33 times as fast: README, Performance); float32 otherwise.
/// On ONNX Runtime's CPU provider and CUDA, float32.
pub fn face_precision(
    pose: Precision,
    provider: Provider,
    cpu: CpuFeatures,
    int8_there: bool,
) -> Precision {
    if provider != Provider::OpenVino {
        Precision::Fp32
    } else if pose == Precision::Int8 && int8_there {
        Precision::Int8
    } else if cpu.bf16_fast && pose != Precision::Fp32 {
        Precision::Bf16
    } else {
        Precision::Fp32
    }
}

/// Checks the face model's inputs and outputs against YuNet's contract: one input named
/// [`YUNET_INPUT_NAME`], f32 `[batch,3,H,W]`, and the twelve outputs of [`YUNET_OUTPUTS`].
pub fn check_face_contract(
    inputs: &[(String, Option<TensorElementType>, Vec<i64>)],
    outputs: &[String],
) -> Result<(), String> {
    match inputs {
        [(name, Some(TensorElementType::Float32), shape)]
            if name == YUNET_INPUT_NAME && shape.len() == 4 && (shape[1] == 3 || shape[1] < 0) => {}
        _ => {
            return Err(format!(
                "expected one input `{YUNET_INPUT_NAME}` f32 [batch,3,H,W] (YuNet 2023mar with dynamic input), found {}",
                inputs
                    .iter()
                    .map(|(n, t, s)| format!("`{n}` {t:?} {}", dims_string(s)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let missing: Vec<&str> = YUNET_OUTPUTS
        .iter()
        .copied()
        .filter(|o| !outputs.iter().any(|n| n == o))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the face model lacks the outputs {} of YuNet 2023mar (models/README-face.md)",
            missing.join(", ")
        ));
    }
    Ok(())
}

/// A loaded pose model on one execution provider. `run` takes `&mut self`: one thread owns it.
pub struct Engine {
    /// The face detector beside the pose model, when [`EngineConfig::face_model`] asks for one.
    pub face: Option<FaceSession>,
    session: Session,
    /// With the int8 model on OpenVINO: the same model on ONNX Runtime's CPU provider, which runs
    /// the network inputs [`is_small_input`] names (OpenVINO's int8 path cannot).
    small: Option<Session>,
    input_name: String,
    pub input_shape: InputShape,
    /// The provider that took the session.
    pub provider: Provider,
    /// A note for the user about the provider choice (e.g. why `auto` fell back to CPU).
    pub provider_note: Option<String>,
    /// The model file the session runs (the float16 variant under `half_precision` on CUDA).
    pub model: PathBuf,
    /// Why `half_precision` was not followed, if it was asked for and not followed.
    pub precision_note: Option<String>,
    /// The session computes in reduced precision (`region_pad > 0`): float16 on CUDA
    /// (`half_precision`), bfloat16 or int8. Kept for the element until it reads `region_pad`.
    pub reduced_precision: bool,
    /// The precision in effect (never `Auto`; float16 on CUDA counts as `Fp32` here, see
    /// `reduced_precision`).
    pub precision: Precision,
    /// How far regions grow, in network pixels on each side, to absorb the keypoint jitter of
    /// the precision in effect against float32 ([`Precision::region_pad`]; [`BF16_REGION_PAD`]
    /// for float16 on CUDA).
    pub region_pad: f32,
    /// How much lower the confidence threshold must be for this precision to find float32's
    /// people ([`Precision::conf_offset`]): the element subtracts it from `conf-threshold`.
    pub conf_offset: f32,
    /// Whether CUDA was expected to work: the ONNX Runtime in use is the GPU build and an NVIDIA
    /// driver is installed (so a fallback to the CPU is a surprise worth a warning; on a machine
    /// without a driver it is the expected case).
    pub cuda_expected: bool,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("input_name", &self.input_name)
            .field("input_shape", &self.input_shape)
            .field("provider", &self.provider)
            .finish()
    }
}

fn dims_string(shape: &[i64]) -> String {
    let d: Vec<String> = shape
        .iter()
        .map(|&d| {
            if d < 0 {
                "?".to_string()
            } else {
                d.to_string()
            }
        })
        .collect();
    format!("[{}]", d.join(","))
}

fn fixed(d: i64) -> Option<usize> {
    (d > 0).then_some(d as usize)
}

/// Checks an input and output description against the pose contract: input `f32 [batch,3,H,W]`,
/// output `f32 [batch,56,anchors]`. Returns the fixed dimensions of the input.
pub fn check_contract(
    inputs: &[(String, Option<TensorElementType>, Vec<i64>)],
    outputs: &[(String, Option<TensorElementType>, Vec<i64>)],
) -> Result<InputShape, String> {
    let [(iname, ity, ishape)] = inputs else {
        return Err(format!(
            "expected 1 input `images` f32 [batch,3,H,W], found {} inputs",
            inputs.len()
        ));
    };
    if *ity != Some(TensorElementType::Float32)
        || ishape.len() != 4
        || !(ishape[1] == 3 || ishape[1] < 0)
    {
        return Err(format!(
            "expected input f32 [batch,3,H,W], found `{iname}` {} {}",
            ity.map(|t| format!("{t:?}"))
                .unwrap_or_else(|| "non-tensor".into()),
            dims_string(ishape)
        ));
    }
    let Some((oname, oty, oshape)) = outputs.first() else {
        return Err("expected output f32 [batch,56,anchors], found no outputs".into());
    };
    if *oty != Some(TensorElementType::Float32)
        || oshape.len() != 3
        || !(oshape[1] == POSE_CHANNELS as i64 || oshape[1] < 0)
    {
        return Err(format!(
            "expected output f32 [batch,56,anchors] (box, score, 17 keypoints), found `{oname}` {} {}",
            oty.map(|t| format!("{t:?}"))
                .unwrap_or_else(|| "non-tensor".into()),
            dims_string(oshape)
        ));
    }
    Ok(InputShape {
        batch: fixed(ishape[0]),
        height: fixed(ishape[2]),
        width: fixed(ishape[3]),
    })
}

/// Name, element type and shape of each of a session's inputs or outputs.
fn describe_all(io: &[ort::value::Outlet]) -> Vec<(String, Option<TensorElementType>, Vec<i64>)> {
    io.iter()
        .map(|o| {
            let (t, s) = describe(o.dtype());
            (o.name().to_string(), t, s)
        })
        .collect()
}

fn describe(v: &ValueType) -> (Option<TensorElementType>, Vec<i64>) {
    match v {
        ValueType::Tensor { ty, shape, .. } => (Some(*ty), shape.iter().copied().collect()),
        _ => (None, Vec::new()),
    }
}

impl Engine {
    /// Loads the model on the requested device and checks it against the pose contract, in the
    /// precision the old `openvino-bf16` flag asks for ([`Precision::from_openvino_bf16`]).
    pub fn load(cfg: &EngineConfig) -> Result<Self, EngineError> {
        Self::load_with_precision(cfg, Precision::from_openvino_bf16(cfg.openvino_bf16))
    }

    /// Loads the model in the precision [`EngineConfig::precision`] asks for (where it is
    /// `auto` and the old `openvino-bf16` flag is off, float32), with the face model beside it.
    pub fn load_config(cfg: &EngineConfig) -> Result<Self, EngineError> {
        let precision = match (cfg.precision, cfg.openvino_bf16) {
            (Precision::Auto, false) => Precision::Fp32,
            (p, _) => p,
        };
        Self::load_with_precision(cfg, precision)
    }

    /// Loads the model on the requested device in the requested precision ([`choose_precision`]
    /// says what `auto` becomes and why; the reason is appended to `provider_note`) and checks it
    /// against the pose contract.
    pub fn load_with_precision(
        cfg: &EngineConfig,
        precision: Precision,
    ) -> Result<Self, EngineError> {
        // Check the file before ONNX Runtime does, for a plainer message.
        check_model_file(&cfg.model)?;
        let int8_path = int8_variant(&cfg.model);
        let int8 = if precision == Precision::Int8 {
            check_model_file(&int8_path).map_err(|e| match e {
                EngineError::ModelFile { path, reason } => EngineError::ModelFile {
                    path,
                    reason: format!(
                        "{reason} (precision=int8 runs the int8 variant of the model, `<model>-int8.onnx` beside it; {INT8_HINT})"
                    ),
                },
                other => other,
            })?;
            Some(int8_path.as_path())
        } else {
            int8_path.is_file().then_some(int8_path.as_path())
        };
        let cpu = CpuFeatures::detect();
        // ONNX Runtime is loaded once per process, by the first element: the GPU build is
        // wanted when CUDA may be used (device=cuda or auto) and can be (an NVIDIA driver is
        // installed); otherwise the OpenVINO build serves the CPU better.
        let prefer_gpu =
            matches!(cfg.device, Device::Cuda(_) | Device::Auto) && nvidia_driver_present();
        let (env, ort_lib) = environment(&cfg.library_dirs, prefer_gpu)?;
        let threads = if cfg.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            cfg.threads
        };
        let lib_err = |e: ort::Error<ort::session::builder::SessionBuilder>| {
            EngineError::Library(format!("ONNX Runtime session options: {e}"))
        };
        let new_builder = || -> Result<ort::session::builder::SessionBuilder, EngineError> {
            Session::builder(&env)
                .map_err(|e| EngineError::Library(format!("ONNX Runtime session: {e}")))?
                .with_optimization_level(GraphOptimizationLevel::Level3)
                .map_err(lib_err)?
                .with_intra_threads(threads)
                .map_err(lib_err)?
                .with_inter_threads(1)
                .map_err(lib_err)?
                // Idle ORT threads sleep instead of spinning: the cores are shared with decoding,
                // preprocessing, redaction and encoding (measured: spinning made an end-to-end
                // x264 run on 2 cores 35 % slower).
                .with_intra_op_spinning(false)
                .map_err(lib_err)
        };
        let cuda_id = match cfg.device {
            Device::Cpu | Device::OpenVino => None,
            Device::Auto => Some(0),
            Device::Cuda(n) => Some(n),
        };
        let explicit = cfg.device != Device::Auto;
        // device=auto falls back to the CPU with a note; an explicit device is an error.
        let unavailable = |why: String| -> Result<String, EngineError> {
            if explicit {
                Err(EngineError::Provider(format!(
                    "device={} was asked for but {why}; or use device=cpu or device=auto",
                    cfg.device
                )))
            } else {
                Ok(format!("device=auto: using the CPU because {why}"))
            }
        };
        let mut provider_note = None;
        let mut session = None;
        // The precision in effect and why, once a session took it.
        let mut chosen: Option<(Precision, String)> = None;
        if let Some(id) = cuda_id {
            match check_cuda(&ort_lib) {
                Err(why) => provider_note = Some(unavailable(why)?),
                Ok(()) => {
                    let model = if precision == Precision::Int8 {
                        int8_path.clone()
                    } else if cfg.half_precision {
                        fp16_variant(&cfg.model)
                    } else {
                        cfg.model.clone()
                    };
                    if cfg.half_precision && precision != Precision::Int8 {
                        check_model_file(&model).map_err(|e| match e {
                            EngineError::ModelFile { path, reason } => EngineError::ModelFile {
                                path,
                                reason: format!(
                                    "{reason} (half-precision=true runs the float16 variant of the model; make it with models/make-fp16.sh)"
                                ),
                            },
                            other => other,
                        })?;
                    }
                    let mut builder = new_builder()?;
                    // Registered explicitly so that a failure is seen, not silently replaced by
                    // the CPU.
                    let cuda = ep::CUDA::default()
                        .with_device_id(id)
                        .build()
                        .error_on_failure();
                    let committed = cuda
                        .register(&mut builder)
                        .map_err(|e| e.to_string())
                        .and_then(|()| builder.commit_from_file(&model).map_err(|e| e.to_string()));
                    match committed {
                        Ok(s) => session = Some((s, Provider::Cuda(id), model)),
                        Err(e) => {
                            provider_note = Some(unavailable(format!(
                                "ONNX Runtime could not start a CUDA session on device {id}: {e}"
                            ))?)
                        }
                    }
                }
            }
        }
        if session.is_none() && matches!(cfg.device, Device::Auto | Device::OpenVino) {
            let dir = ort_lib.parent().unwrap_or(Path::new("."));
            if !dir.join("libonnxruntime_providers_openvino.so").exists() {
                let why = format!(
                    "the ONNX Runtime in use ({}) has no OpenVINO execution provider (libonnxruntime_providers_openvino.so); {OPENVINO_SETUP_HINT}",
                    ort_lib.display()
                );
                if cfg.device == Device::OpenVino {
                    provider_note = Some(unavailable(why)?);
                }
            } else {
                let (prec, mut why) = choose_precision(precision, Provider::OpenVino, cpu, int8);
                let model = match prec {
                    Precision::Int8 => int8_path.clone(),
                    _ => cfg.model.clone(),
                };
                let mut builder = new_builder()?;
                let hint = openvino_hint(prec, cpu);
                if prec == Precision::Int8 && hint == "bf16" {
                    why.push_str(", its float parts in bfloat16 (fast on this CPU)");
                } else if prec == Precision::Int8 && cpu.bf16 {
                    why.push_str(
                        ", its float parts in float32 (this CPU's bfloat16, AVX512-BF16 without AMX, is the slower)",
                    );
                }
                let ov = ep::OpenVINO::default()
                    .with_device_type("CPU")
                    .with_num_threads(threads)
                    .with_arbitrary_config("load_config", openvino_config(hint));
                let committed = ov
                    .build()
                    .error_on_failure()
                    .register(&mut builder)
                    .map_err(|e| e.to_string())
                    .and_then(|()| builder.commit_from_file(&model).map_err(|e| e.to_string()));
                match committed {
                    Ok(s) => {
                        chosen = Some((prec, why));
                        session = Some((s, Provider::OpenVino, model))
                    }
                    Err(e) => {
                        let why = format!("OpenVINO could not start a session: {e}");
                        append_note(&mut provider_note, unavailable(why)?);
                    }
                }
            }
        }
        let (session, provider, model) = match session {
            Some(s) => s,
            None => {
                let (prec, why) = choose_precision(precision, Provider::Cpu, cpu, int8);
                let model = match prec {
                    Precision::Int8 => int8_path.clone(),
                    _ => cfg.model.clone(),
                };
                let s = new_builder()?.commit_from_file(&model).map_err(|e| {
                    EngineError::ModelLoad {
                        path: model.clone(),
                        reason: e.to_string(),
                    }
                })?;
                chosen = Some((prec, why));
                (s, Provider::Cpu, model)
            }
        };
        let (precision, why) =
            chosen.unwrap_or_else(|| choose_precision(precision, provider, cpu, int8));
        // What the CPU computes in and why (on CUDA the precision is `half-precision`'s, and a
        // note there would read as a fallback warning).
        if !provider.is_cuda() {
            append_note(&mut provider_note, why);
        }
        let precision_note = (cfg.half_precision && !provider.is_cuda()).then(|| {
            "half-precision=true does not help on the CPU: ONNX Runtime has no float16 convolutions there and computes them in float32 (models/README-fp16.md); keeping the float32 model".to_string()
        });
        let ins = describe_all(session.inputs());
        let outs = describe_all(session.outputs());
        let input_shape = check_contract(&ins, &outs).map_err(|reason| EngineError::Contract {
            path: model.clone(),
            reason,
        })?;
        // OpenVINO 2025.4's int8 path (onnxruntime-openvino 1.24.1) hangs or crashes on the
        // smallest network inputs on an AMX CPU: those run on ONNX Runtime's CPU provider.
        let small =
            if provider == Provider::OpenVino && precision == Precision::Int8 {
                Some(new_builder()?.commit_from_file(&model).map_err(|e| {
                    EngineError::ModelLoad {
                        path: model.clone(),
                        reason: format!("on ONNX Runtime's CPU provider (for small inputs): {e}"),
                    }
                })?)
            } else {
                None
            };
        let face = match &cfg.face_model {
            None => None,
            Some(path) => {
                let int8 = int8_variant(path);
                // A face model given by its int8 name is int8 whatever the pose model runs in.
                let prec = if int8 == *path {
                    Precision::Int8
                } else {
                    face_precision(precision, provider, cpu, int8.is_file())
                };
                let file = if prec == Precision::Int8 { &int8 } else { path };
                let face = load_face(file, provider, prec, cpu, threads, &new_builder)?;
                if provider == Provider::OpenVino {
                    let name = match prec {
                        Precision::Bf16 => "bfloat16",
                        Precision::Int8 => "int8",
                        _ => "float32",
                    };
                    append_note(&mut provider_note, format!("face detector: {name}"));
                }
                Some(face)
            }
        };
        let fp16_cuda = provider.is_cuda() && cfg.half_precision && precision != Precision::Int8;
        let region_pad = if fp16_cuda {
            BF16_REGION_PAD
        } else {
            precision.region_pad()
        };
        Ok(Self {
            face,
            session,
            small,
            input_name: ins[0].0.clone(),
            input_shape,
            provider,
            provider_note,
            reduced_precision: region_pad > 0.0,
            precision,
            region_pad,
            conf_offset: precision.conf_offset(),
            model,
            precision_note,
            cuda_expected: ort_lib
                .parent()
                .is_some_and(|d| d.join("libonnxruntime_providers_cuda.so").exists())
                && nvidia_driver_present(),
        })
    }

    /// Runs one batch `[batch, 3, height, width]` and copies the first output into `out`,
    /// returning its anchors count.
    pub fn run(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        out: &mut Vec<f32>,
    ) -> Result<usize, EngineError> {
        let err = |e: ort::Error| EngineError::Inference(e.to_string());
        let tensor = TensorRef::from_array_view((shape.map(|d| d as i64), input)).map_err(err)?;
        let session = match &mut self.small {
            Some(small) if is_small_input(shape) => small,
            _ => &mut self.session,
        };
        let outputs = session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(err)?;
        let (oshape, data) = outputs[0].try_extract_tensor::<f32>().map_err(err)?;
        if oshape.len() != 3
            || oshape[0] as usize != shape[0]
            || oshape[1] as usize != POSE_CHANNELS
        {
            return Err(EngineError::Inference(format!(
                "the model returned a tensor of shape {}, expected [{},56,anchors]",
                dims_string(oshape),
                shape[0]
            )));
        }
        out.clear();
        out.extend_from_slice(data);
        Ok(oshape[2] as usize)
    }
}

/// Whether a network input `[batch, 3, height, width]` is one that the int8 model runs on ONNX
/// Runtime's CPU provider instead of OpenVINO: fewer than 16 cells of the model's coarsest grid
/// (32 x 32 pixels). On an Intel Xeon with AMX (2026-12-02) OpenVINO's int8 path hung or crashed
/// (SIGSEGV) on 32x32, 64x32, 96x32, 128x32 and 64x64 (1 to 4 cells), and ran 160x32, 96x64 and
/// larger; the bound leaves a margin. Inputs this small cost next to nothing on any provider.
pub fn is_small_input(shape: [usize; 4]) -> bool {
    shape[2].div_ceil(32) * shape[3].div_ceil(32) < 16
}

/// OpenVINO's inference precision hint for a session in `precision`. It is always given, because
/// OpenVINO's own default is bfloat16 on CPUs that have it, so float32 has to be asked for. The
/// int8 model's float parts (its decode, the last convolution of each head branch, the attention
/// block) compute in bfloat16 where it is fast ([`cpu_bf16_is_fast`]): measured on an AMX host (2026-12-02), the
/// int8 model ran 1.10 times as fast so, and covered the same eye regions of the float32
/// reference on vtest.avi (624 of 626, the same two frames) as with float32 float parts.
fn openvino_hint(precision: Precision, cpu: CpuFeatures) -> &'static str {
    match precision {
        Precision::Bf16 => "bf16",
        Precision::Int8 if cpu.bf16_fast => "bf16",
        _ => "f32",
    }
}

/// Appends `more` to a provider note (`; ` between parts).
fn append_note(note: &mut Option<String>, more: String) {
    *note = Some(match note.take() {
        Some(n) => format!("{n}; {more}"),
        None => more,
    });
}

/// The OpenVINO EP's `load_config` for a CPU session with precision hint `hint`. Denormal
/// numbers are flushed to zero (`CPU_DENORMALS_OPTIMIZATION`): 3 % faster for the int8 pose model
/// in three interleaved runs on an AMX host (2026-12-02); numbers that small do not change a
/// detection.
fn openvino_config(hint: &str) -> String {
    format!(
        r#"{{"CPU":{{"INFERENCE_PRECISION_HINT":"{hint}","CPU_DENORMALS_OPTIMIZATION":"YES"}}}}"#
    )
}

/// Loads the face model on `provider` (the pose model's), in `precision` (int8 for an int8 file,
/// bfloat16 or float32 on OpenVINO), and checks its contract. An int8 file on OpenVINO also gets a
/// session on ONNX Runtime's CPU provider for the smallest inputs, as the pose model does.
fn load_face(
    path: &Path,
    provider: Provider,
    precision: Precision,
    cpu: CpuFeatures,
    threads: usize,
    new_builder: &dyn Fn() -> Result<ort::session::builder::SessionBuilder, EngineError>,
) -> Result<FaceSession, EngineError> {
    let err = |reason: String| EngineError::FaceModel {
        path: path.to_path_buf(),
        reason,
    };
    check_model_file(path).map_err(|e| match e {
        EngineError::ModelFile { reason, .. } => err(reason),
        other => other,
    })?;
    let mut builder = new_builder()?;
    let registered = match provider {
        Provider::Cpu => Ok(()),
        Provider::OpenVino => ep::OpenVINO::default()
            .with_device_type("CPU")
            .with_num_threads(threads)
            .with_arbitrary_config(
                "load_config",
                openvino_config(openvino_hint(precision, cpu)),
            )
            .build()
            .error_on_failure()
            .register(&mut builder),
        Provider::Cuda(id) => ep::CUDA::default()
            .with_device_id(id)
            .build()
            .error_on_failure()
            .register(&mut builder),
    };
    let load_err = |e: String| err(format!("ONNX Runtime cannot load it on {provider}: {e}"));
    registered.map_err(|e| load_err(e.to_string()))?;
    let session = builder
        .commit_from_file(path)
        .map_err(|e| load_err(e.to_string()))?;
    let small = if provider == Provider::OpenVino && precision == Precision::Int8 {
        let s = new_builder()?.commit_from_file(path).map_err(|e| {
            err(format!(
                "ONNX Runtime cannot load it on its CPU provider (for small inputs): {e}"
            ))
        })?;
        Some(s)
    } else {
        None
    };
    let ins = describe_all(session.inputs());
    let outs: Vec<String> = session
        .outputs()
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    check_face_contract(&ins, &outs).map_err(err)?;
    Ok(FaceSession {
        session,
        small,
        model: path.to_path_buf(),
        precision,
        conf_offset: if precision == Precision::Int8 {
            FACE_INT8_CONF_OFFSET
        } else {
            0.0
        },
    })
}

impl FaceSession {
    /// Runs one batch `[batch, 3, height, width]` and copies the twelve outputs, in
    /// [`YUNET_OUTPUTS`] order, into `out`.
    pub fn run(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        out: &mut [Vec<f32>; 12],
    ) -> Result<(), EngineError> {
        let err = |e: ort::Error| EngineError::Inference(format!("face model: {e}"));
        let tensor = TensorRef::from_array_view((shape.map(|d| d as i64), input)).map_err(err)?;
        let session = match &mut self.small {
            Some(small) if is_small_input(shape) => small,
            _ => &mut self.session,
        };
        let outputs = session
            .run(ort::inputs![YUNET_INPUT_NAME => tensor])
            .map_err(err)?;
        for (name, o) in YUNET_OUTPUTS.iter().zip(out.iter_mut()) {
            let v = outputs.get(*name).ok_or_else(|| {
                EngineError::Inference(format!("the face model returned no output {name}"))
            })?;
            let (_, data) = v.try_extract_tensor::<f32>().map_err(err)?;
            o.clear();
            o.extend_from_slice(data);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_parsing() {
        assert_eq!(Device::parse("auto"), Ok(Device::Auto));
        assert_eq!(Device::parse("CPU"), Ok(Device::Cpu));
        assert_eq!(Device::parse("cuda"), Ok(Device::Cuda(0)));
        assert_eq!(Device::parse("cuda:3"), Ok(Device::Cuda(3)));
        assert_eq!(Device::parse("OpenVINO"), Ok(Device::OpenVino));
        assert!(Device::parse("cuda:-1").is_err());
        assert!(
            Device::parse("tpu")
                .unwrap_err()
                .contains("auto, cpu, openvino, cuda or cuda:N")
        );
        assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
    }

    fn io(ty: TensorElementType, shape: &[i64]) -> (String, Option<TensorElementType>, Vec<i64>) {
        ("x".into(), Some(ty), shape.to_vec())
    }

    #[test]
    fn contract_check_names_expected_and_found_shapes() {
        let f = TensorElementType::Float32;
        let ok = check_contract(&[io(f, &[-1, 3, -1, -1])], &[io(f, &[-1, 56, -1])]).unwrap();
        assert_eq!(
            ok,
            InputShape {
                batch: None,
                height: None,
                width: None
            }
        );
        let fixed = check_contract(&[io(f, &[1, 3, 640, 640])], &[io(f, &[1, 56, 8400])]).unwrap();
        assert_eq!(fixed.height, Some(640));
        let e = check_contract(&[io(f, &[-1, 3, -1, -1])], &[io(f, &[-1, 3, -1, -1])]).unwrap_err();
        assert!(
            e.contains("[batch,56,anchors]") && e.contains("[?,3,?,?]"),
            "{e}"
        );
        let e = check_contract(&[io(f, &[1, 1, 64, 64])], &[io(f, &[1, 56, 10])]).unwrap_err();
        assert!(
            e.contains("[batch,3,H,W]") && e.contains("[1,1,64,64]"),
            "{e}"
        );
        let e = check_contract(
            &[io(f, &[1, 3, 64, 64]), io(f, &[1])],
            &[io(f, &[1, 56, 10])],
        )
        .unwrap_err();
        assert!(e.contains("2 inputs"), "{e}");
        let e = check_contract(
            &[io(TensorElementType::Uint8, &[1, 3, 64, 64])],
            &[io(f, &[1, 56, 10])],
        )
        .unwrap_err();
        assert!(e.contains("Uint8"), "{e}");
    }

    #[test]
    fn fp16_variant_sits_beside_the_model() {
        assert_eq!(
            fp16_variant(Path::new("/m/yolo11n-pose-dynamic.onnx")),
            Path::new("/m/yolo11n-pose-dynamic-fp16.onnx")
        );
        assert_eq!(
            fp16_variant(Path::new("/m/x-fp16.onnx")),
            Path::new("/m/x-fp16.onnx")
        );
        assert_eq!(
            fp16_variant(Path::new("model")),
            Path::new("model-fp16.onnx")
        );
    }

    /// Empty files with the CUDA libraries' names under `dir`, as NVIDIA's CUDA 13 wheels lay
    /// them out (`nvidia/cu13/lib`, `nvidia/cudnn/lib`).
    fn fake_nvidia_packages(site: &Path) {
        for (sub, names) in [
            (
                "cu13/lib",
                &[
                    "libcudart.so.13",
                    "libcublasLt.so.13",
                    "libcublas.so.13",
                    "libcurand.so.10",
                    "libcufft.so.12",
                    "libnvJitLink.so.13",
                    "libnvrtc.so.13",
                ][..],
            ),
            (
                "cudnn/lib",
                &[
                    "libcudnn.so.9",
                    "libcudnn_graph.so.9",
                    "libcudnn_ops.so.9",
                    "libcudnn_cnn.so.9",
                ][..],
            ),
        ] {
            let d = site.join("nvidia").join(sub);
            std::fs::create_dir_all(&d).unwrap();
            for n in names {
                std::fs::write(d.join(n), b"").unwrap();
            }
        }
        // A package folder without lib/ is not a library folder.
        std::fs::create_dir_all(site.join("nvidia/cuda_cccl/include")).unwrap();
    }

    #[test]
    fn python_packages_are_found_through_path_links_environments_and_pythonpath() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        // A virtual environment whose python3 is reached through a link from another folder on
        // PATH (as /usr/local/bin/python3 -> /opt/torch/.venv/bin/python3).
        let venv = r.join("opt/torch/.venv");
        let venv_site = venv.join("lib/python3.12/site-packages");
        std::fs::create_dir_all(&venv_site).unwrap();
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/python3"), b"").unwrap();
        std::fs::create_dir_all(r.join("usr/local/bin")).unwrap();
        std::os::unix::fs::symlink(venv.join("bin/python3"), r.join("usr/local/bin/python3"))
            .unwrap();
        // A Debian-like system Python, a conda prefix, PYTHONPATH and the user's folder.
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::write(r.join("usr/bin/python3"), b"").unwrap();
        std::fs::create_dir_all(r.join("usr/lib/python3/dist-packages")).unwrap();
        std::fs::create_dir_all(r.join("usr/local/lib/python3.11/dist-packages")).unwrap();
        let conda_site = r.join("conda/lib/python3.10/site-packages");
        std::fs::create_dir_all(&conda_site).unwrap();
        let extra = r.join("extra");
        std::fs::create_dir_all(&extra).unwrap();
        let user_site = r.join("home/.local/lib/python3.12/site-packages");
        std::fs::create_dir_all(&user_site).unwrap();
        // Folders on PATH without python3 add nothing.
        std::fs::create_dir_all(r.join("nopython/lib/python3.9/site-packages")).unwrap();
        let path = std::env::join_paths([
            r.join("nopython/bin"),
            r.join("usr/local/bin"),
            r.join("usr/bin"),
        ])
        .unwrap();
        let dirs = python_package_dirs(
            Some(&path),
            Some(extra.as_os_str()),
            &[r.join("conda")],
            Some(&r.join("home")),
        );
        assert_eq!(
            dirs,
            vec![
                extra.clone(),
                conda_site.clone(),
                r.join("usr/local/lib/python3.11/dist-packages"),
                venv_site.clone(),
                r.join("usr/lib/python3/dist-packages"),
                user_site.clone(),
            ]
        );
        // Only NVIDIA's package folders that have a lib/ count, wherever they are installed.
        fake_nvidia_packages(&venv_site);
        fake_nvidia_packages(&user_site);
        assert_eq!(
            nvidia_package_lib_dirs(&dirs),
            vec![
                venv_site.join("nvidia/cu13/lib"),
                venv_site.join("nvidia/cudnn/lib"),
                user_site.join("nvidia/cu13/lib"),
                user_site.join("nvidia/cudnn/lib"),
            ]
        );
    }

    #[test]
    fn cuda_libraries_are_searched_in_the_override_then_beside_onnx_runtime_then_in_python_packages()
     {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let venv = r.join("venv");
        let site = venv.join("lib/python3.12/site-packages");
        fake_nvidia_packages(&site);
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/python3"), b"").unwrap();
        let ort = r.join("ort");
        let own = r.join("own");
        std::fs::create_dir_all(&ort).unwrap();
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join("libcudart.so.13"), b"").unwrap();
        std::fs::write(ort.join("libcublas.so.13"), b"").unwrap();
        let env = |override_dirs: bool| {
            let own = own.clone();
            let path = venv.join("bin").into_os_string();
            move |k: &str| match k {
                CUDA_LIB_DIRS_ENV if override_dirs => Some(
                    std::env::join_paths([own.clone(), PathBuf::from("/nonexistent")]).unwrap(),
                ),
                "PATH" => Some(path.clone()),
                _ => None,
            }
        };
        let dirs = cuda_library_dirs(&ort, env(true));
        assert_eq!(
            dirs,
            vec![
                own.clone(),
                PathBuf::from("/nonexistent"),
                ort.clone(),
                site.join("nvidia/cu13/lib"),
                site.join("nvidia/cudnn/lib"),
            ]
        );
        assert_eq!(
            find_library(&dirs, "libcudart.so.13"),
            Some(own.join("libcudart.so.13"))
        );
        assert_eq!(
            find_library(&dirs, "libcublas.so.13"),
            Some(ort.join("libcublas.so.13"))
        );
        assert_eq!(
            find_library(&dirs, "libcudnn.so.9"),
            Some(site.join("nvidia/cudnn/lib/libcudnn.so.9"))
        );
        assert_eq!(find_library(&dirs, "libcuda.so.1"), None);
        let dirs = cuda_library_dirs(&ort, env(false));
        assert_eq!(dirs[0], ort);
        assert_eq!(
            find_library(&dirs, "libcudart.so.13"),
            Some(site.join("nvidia/cu13/lib/libcudart.so.13"))
        );
        // No Python, no override: only ONNX Runtime's folder.
        assert_eq!(cuda_library_dirs(&ort, |_| None), vec![ort.clone()]);
    }

    /// With a GPU build in use (a file named like its CUDA provider) and the CUDA libraries in
    /// NVIDIA's Python packages, only the driver is missing on a machine without one; where a
    /// driver is installed, the empty stand-ins are the files that were tried.
    #[test]
    fn cuda_check_takes_the_libraries_from_python_packages() {
        let t = tempfile::tempdir().unwrap();
        let site = t.path().join("site-packages");
        fake_nvidia_packages(&site);
        let ort = t.path().join("ort");
        std::fs::create_dir_all(&ort).unwrap();
        std::fs::write(ort.join("libonnxruntime_providers_cuda.so"), b"").unwrap();
        let dirs = [
            vec![ort.clone()],
            nvidia_package_lib_dirs(std::slice::from_ref(&site)),
        ]
        .concat();
        let e = check_cuda_in(&ort.join("libonnxruntime.so"), &dirs).unwrap_err();
        if nvidia_driver_present() {
            assert!(
                e.contains("libcudart.so.13 (CUDA 13 runtime: ") && !e.contains("libcuda.so.1"),
                "{e}"
            );
        } else {
            assert!(e.contains("libcuda.so.1 (the NVIDIA driver"), "{e}");
            for lib in ["libcudart.so.13", "libcublas.so.13", "libcudnn.so.9"] {
                assert!(!e.contains(lib), "{lib} was found, yet named in: {e}");
            }
            assert!(!e.contains("setup-gpu.sh"), "{e}");
        }
        // Without the packages, each library is named, with where it was looked for.
        let e =
            check_cuda_in(&ort.join("libonnxruntime.so"), std::slice::from_ref(&ort)).unwrap_err();
        // (Unless the system has a CUDA runtime of its own.)
        if ort::util::preload_dylib("libcudart.so.13").is_err() {
            assert!(
                e.contains("libcudart.so.13 (CUDA 13 runtime")
                    && e.contains("libcudnn.so.9")
                    && e.contains(CUDA_LIB_DIRS_ENV)
                    && e.contains(&ort.display().to_string()),
                "{e}"
            );
        }
    }

    #[test]
    fn a_face_model_error_names_the_face_model_not_the_pose_model() {
        let e = EngineError::FaceModel {
            path: "/nope.onnx".into(),
            reason: "No such file or directory".into(),
        }
        .to_string();
        assert!(
            e.contains("'/nope.onnx' as the face detector (face-model)"),
            "{e}"
        );
        assert!(e.contains("detectors=pose"), "{e}");
        assert!(
            !e.contains("pose model") && !e.contains("`model` property"),
            "{e}"
        );
    }

    #[test]
    fn int8_variant_sits_beside_the_model() {
        assert_eq!(
            int8_variant(Path::new("/m/yolo11n-pose-dynamic.onnx")),
            Path::new("/m/yolo11n-pose-dynamic-int8.onnx")
        );
        assert_eq!(
            int8_variant(Path::new("/m/x-int8.onnx")),
            Path::new("/m/x-int8.onnx")
        );
    }

    #[test]
    fn precision_parsing_and_the_old_bf16_flag() {
        assert_eq!(Precision::parse("AUTO"), Ok(Precision::Auto));
        assert_eq!(Precision::parse("fp32"), Ok(Precision::Fp32));
        assert_eq!(Precision::parse(" bfloat16"), Ok(Precision::Bf16));
        assert_eq!(Precision::parse("int8"), Ok(Precision::Int8));
        assert!(
            Precision::parse("fp8")
                .unwrap_err()
                .contains("auto, fp32, bf16 or int8")
        );
        for p in [
            Precision::Auto,
            Precision::Fp32,
            Precision::Bf16,
            Precision::Int8,
        ] {
            assert_eq!(Precision::parse(&p.to_string()), Ok(p));
        }
        assert_eq!(Precision::from_openvino_bf16(true), Precision::Bf16);
        assert_eq!(Precision::from_openvino_bf16(false), Precision::Fp32);
        assert_eq!(Precision::Fp32.region_pad(), 0.0);
        assert_eq!(Precision::Bf16.region_pad(), BF16_REGION_PAD);
        assert_eq!(Precision::Int8.region_pad(), INT8_REGION_PAD);
        const { assert!(INT8_REGION_PAD > 0.0) };
        assert_eq!(Precision::Int8.conf_offset(), INT8_CONF_OFFSET);
        assert_eq!(Precision::Bf16.conf_offset(), 0.0);
    }

    #[test]
    fn auto_prefers_int8_then_bf16_then_fp32_on_openvino_only() {
        let int8 = Path::new("/m/y-int8.onnx");
        let avx2 = CpuFeatures::default();
        let bf16 = CpuFeatures {
            bf16: true,
            bf16_fast: true,
            vnni: true,
        };
        let vnni = CpuFeatures {
            bf16: false,
            bf16_fast: false,
            vnni: true,
        };
        let (p, why) = choose_precision(Precision::Auto, Provider::OpenVino, avx2, Some(int8));
        assert_eq!(p, Precision::Int8);
        assert!(
            why.contains("/m/y-int8.onnx") && why.contains("no VNNI"),
            "{why}"
        );
        let (p, why) = choose_precision(Precision::Auto, Provider::OpenVino, bf16, Some(int8));
        assert_eq!(p, Precision::Int8);
        assert!(!why.contains("VNNI"), "{why}");
        let (p, why) = choose_precision(Precision::Auto, Provider::OpenVino, bf16, None);
        assert_eq!(p, Precision::Bf16);
        assert!(why.contains("no int8 variant"), "{why}");
        let (p, why) = choose_precision(Precision::Auto, Provider::OpenVino, vnni, None);
        assert_eq!(p, Precision::Fp32);
        assert!(
            why.contains("no bfloat16") && why.contains("models/quantize-nncf.sh"),
            "{why}"
        );
        // ONNX Runtime's CPU provider is the float32 reference; CUDA has half-precision.
        for provider in [Provider::Cpu, Provider::Cuda(0)] {
            let (p, why) = choose_precision(Precision::Auto, provider, bf16, Some(int8));
            assert_eq!(p, Precision::Fp32, "{provider}");
            assert!(why.contains(&provider.to_string()), "{why}");
        }
    }

    #[test]
    fn bfloat16_that_is_slower_than_float32_is_run_only_when_asked_for() {
        // AVX512-BF16 without AMX on an Intel CPU: bfloat16 measured 0.73x float32.
        let slow = CpuFeatures {
            bf16: true,
            bf16_fast: false,
            vnni: true,
        };
        let (p, why) = choose_precision(Precision::Auto, Provider::OpenVino, slow, None);
        assert_eq!(p, Precision::Fp32);
        assert!(why.contains("slower than float32"), "{why}");
        let int8 = Path::new("/m/y-int8.onnx");
        let (p, _) = choose_precision(Precision::Auto, Provider::OpenVino, slow, Some(int8));
        assert_eq!(p, Precision::Int8);
        assert_eq!(openvino_hint(Precision::Int8, slow), "f32");
        for pose in [Precision::Int8, Precision::Bf16] {
            assert_eq!(
                face_precision(pose, Provider::OpenVino, slow, false),
                Precision::Fp32
            );
        }
        let (p, why) = choose_precision(Precision::Bf16, Provider::OpenVino, slow, Some(int8));
        assert_eq!(p, Precision::Bf16);
        assert!(why.contains("slower than float32"), "{why}");
        assert_eq!(openvino_hint(Precision::Bf16, slow), "bf16");
    }

    #[test]
    fn small_inputs_are_those_under_sixteen_cells_of_32_pixels() {
        for (h, w) in [
            (32, 32),
            (32, 128),
            (64, 64),
            (96, 96),
            (32, 480),
            (480, 32),
        ] {
            assert!(is_small_input([1, 3, h, w]), "{w}x{h}");
        }
        for (h, w) in [(128, 128), (32, 512), (480, 640), (64, 256)] {
            assert!(!is_small_input([4, 3, h, w]), "{w}x{h}");
        }
    }

    #[test]
    fn the_int8_models_float_parts_compute_in_bf16_where_the_cpu_has_it() {
        let bf16 = CpuFeatures {
            bf16: true,
            bf16_fast: true,
            vnni: true,
        };
        let avx2 = CpuFeatures::default();
        assert_eq!(openvino_hint(Precision::Int8, bf16), "bf16");
        assert_eq!(openvino_hint(Precision::Int8, avx2), "f32");
        assert_eq!(openvino_hint(Precision::Bf16, bf16), "bf16");
        assert_eq!(openvino_hint(Precision::Fp32, bf16), "f32");
        let c = openvino_config("f32");
        assert!(
            c.contains(r#""INFERENCE_PRECISION_HINT":"f32""#)
                && c.contains(r#""CPU_DENORMALS_OPTIMIZATION":"YES""#),
            "{c}"
        );
    }

    #[test]
    fn the_face_detector_follows_the_pose_model_in_int8_or_in_bf16_where_the_cpu_has_it() {
        let bf16 = CpuFeatures {
            bf16: true,
            bf16_fast: true,
            vnni: true,
        };
        let avx2 = CpuFeatures::default();
        // int8 where the pose model runs int8 on OpenVINO and the face model's int8 variant is
        // there, on any CPU.
        for cpu in [bf16, avx2] {
            assert_eq!(
                face_precision(Precision::Int8, Provider::OpenVino, cpu, true),
                Precision::Int8
            );
            for pose in [Precision::Fp32, Precision::Bf16] {
                assert_ne!(
                    face_precision(pose, Provider::OpenVino, cpu, true),
                    Precision::Int8
                );
            }
        }
        // Else bfloat16 where it is fast, unless the pose model computes in float32
        // (precision=fp32, openvino-bf16=false, or no bfloat16 and no int8 variant).
        for pose in [Precision::Bf16, Precision::Int8] {
            assert_eq!(
                face_precision(pose, Provider::OpenVino, bf16, false),
                Precision::Bf16
            );
        }
        assert_eq!(
            face_precision(Precision::Fp32, Provider::OpenVino, bf16, true),
            Precision::Fp32
        );
        for provider in [Provider::Cpu, Provider::Cuda(0)] {
            for pose in [Precision::Bf16, Precision::Int8] {
                assert_eq!(face_precision(pose, provider, bf16, true), Precision::Fp32);
            }
        }
        assert_eq!(
            face_precision(Precision::Int8, Provider::OpenVino, avx2, false),
            Precision::Fp32
        );
    }

    #[test]
    fn explicit_precisions_are_followed_or_say_what_they_fell_back_to() {
        let int8 = Path::new("/m/y-int8.onnx");
        let avx2 = CpuFeatures::default();
        let bf16 = CpuFeatures {
            bf16: true,
            bf16_fast: true,
            vnni: true,
        };
        for provider in [Provider::OpenVino, Provider::Cpu] {
            let (p, why) = choose_precision(Precision::Int8, provider, avx2, Some(int8));
            assert_eq!(p, Precision::Int8);
            assert!(why.contains("y-int8.onnx"), "{why}");
        }
        let (p, why) = choose_precision(Precision::Bf16, Provider::OpenVino, avx2, Some(int8));
        assert_eq!(p, Precision::Fp32);
        assert!(
            why.contains("no bfloat16") && why.contains("float32"),
            "{why}"
        );
        assert_eq!(
            choose_precision(Precision::Bf16, Provider::OpenVino, bf16, None).0,
            Precision::Bf16
        );
        let (p, why) = choose_precision(Precision::Bf16, Provider::Cpu, bf16, None);
        assert_eq!(p, Precision::Fp32);
        assert!(why.contains("OpenVINO only"), "{why}");
        assert_eq!(
            choose_precision(Precision::Fp32, Provider::OpenVino, bf16, Some(int8)).0,
            Precision::Fp32
        );
    }

    #[test]
    fn a_missing_int8_variant_names_the_path_and_the_script() {
        let dir = std::env::temp_dir().join(format!("ya-int8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let model = dir.join("m.onnx");
        std::fs::write(&model, b"not loaded: the int8 file is checked first").unwrap();
        let cfg = EngineConfig {
            model: model.clone(),
            device: Device::Cpu,
            threads: 1,
            library_dirs: Vec::new(),
            half_precision: false,
            openvino_bf16: true,
            face_model: None,
            precision: Default::default(),
        };
        let e = Engine::load_with_precision(&cfg, Precision::Int8).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(&e, EngineError::ModelFile { path, .. } if path == &dir.join("m-int8.onnx")),
            "{e:?}"
        );
        assert!(
            msg.contains("m-int8.onnx") && msg.contains("models/quantize-nncf.sh"),
            "{msg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn candidates_search_the_plugin_dir_before_the_source_tree() {
        let c = library_candidates(&[PathBuf::from("/plugin/dir")], true);
        let plugin = c
            .iter()
            .position(|p| p == Path::new("/plugin/dir/libonnxruntime.so"))
            .unwrap();
        let tree = c
            .iter()
            .position(|p| p.ends_with(".deps/onnxruntime/libonnxruntime.so"))
            .unwrap();
        assert!(plugin < tree);
    }
}
