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
        std::arch::is_x86_feature_detected!("avx512bf16")
            || std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| c.contains(" amx_bf16"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The float16 variant of `model` that `half-precision` runs: `<stem>-fp16.onnx` beside it (the
/// model itself when its name already ends in `-fp16.onnx`).
pub fn fp16_variant(model: &Path) -> PathBuf {
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with("-fp16.onnx") {
        return model.to_path_buf();
    }
    let stem = name.strip_suffix(".onnx").unwrap_or(&name);
    model.with_file_name(format!("{stem}-fp16.onnx"))
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
    /// On OpenVINO, let it compute in bfloat16 where the CPU supports it.
    pub openvino_bf16: bool,
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

/// A loaded pose model on one execution provider. `run` takes `&mut self`: one thread owns it.
pub struct Engine {
    session: Session,
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
    /// The session computes in reduced precision: float16 on CUDA (`half_precision`) or
    /// bfloat16 on OpenVINO (`openvino_bf16`, on a CPU with bfloat16 instructions).
    pub reduced_precision: bool,
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

fn describe(v: &ValueType) -> (Option<TensorElementType>, Vec<i64>) {
    match v {
        ValueType::Tensor { ty, shape, .. } => (Some(*ty), shape.iter().copied().collect()),
        _ => (None, Vec::new()),
    }
}

impl Engine {
    /// Loads the model on the requested device and checks it against the pose contract.
    pub fn load(cfg: &EngineConfig) -> Result<Self, EngineError> {
        // Check the file before ONNX Runtime does, for a plainer message.
        check_model_file(&cfg.model)?;
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
        if let Some(id) = cuda_id {
            match check_cuda(&ort_lib) {
                Err(why) => provider_note = Some(unavailable(why)?),
                Ok(()) => {
                    let model = if cfg.half_precision {
                        fp16_variant(&cfg.model)
                    } else {
                        cfg.model.clone()
                    };
                    if cfg.half_precision {
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
                let mut builder = new_builder()?;
                let mut ov = ep::OpenVINO::default()
                    .with_device_type("CPU")
                    .with_num_threads(threads);
                if cfg.openvino_bf16 {
                    ov = ov.with_arbitrary_config(
                        "load_config",
                        r#"{"CPU":{"INFERENCE_PRECISION_HINT":"bf16"}}"#,
                    );
                }
                let committed = ov
                    .build()
                    .error_on_failure()
                    .register(&mut builder)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        builder
                            .commit_from_file(&cfg.model)
                            .map_err(|e| e.to_string())
                    });
                match committed {
                    Ok(s) => session = Some((s, Provider::OpenVino, cfg.model.clone())),
                    Err(e) => {
                        let why = format!("OpenVINO could not start a session: {e}");
                        let note = unavailable(why)?;
                        provider_note = Some(match provider_note {
                            Some(n) => format!("{n}; {note}"),
                            None => note,
                        });
                    }
                }
            }
        }
        let (session, provider, model) = match session {
            Some(s) => s,
            None => {
                let s = new_builder()?.commit_from_file(&cfg.model).map_err(|e| {
                    EngineError::ModelLoad {
                        path: cfg.model.clone(),
                        reason: e.to_string(),
                    }
                })?;
                (s, Provider::Cpu, cfg.model.clone())
            }
        };
        let precision_note = (cfg.half_precision && !provider.is_cuda()).then(|| {
            "half-precision=true does not help on the CPU: ONNX Runtime has no float16 convolutions there and computes them in float32 (models/README-fp16.md); keeping the float32 model".to_string()
        });
        let ins: Vec<_> = session
            .inputs()
            .iter()
            .map(|o| {
                let (t, s) = describe(o.dtype());
                (o.name().to_string(), t, s)
            })
            .collect();
        let outs: Vec<_> = session
            .outputs()
            .iter()
            .map(|o| {
                let (t, s) = describe(o.dtype());
                (o.name().to_string(), t, s)
            })
            .collect();
        let input_shape = check_contract(&ins, &outs).map_err(|reason| EngineError::Contract {
            path: model.clone(),
            reason,
        })?;
        let reduced_precision = (provider.is_cuda() && cfg.half_precision)
            || (provider == Provider::OpenVino && cfg.openvino_bf16 && cpu_has_bf16());
        Ok(Self {
            session,
            input_name: ins[0].0.clone(),
            input_shape,
            provider,
            provider_note,
            reduced_precision,
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
        let outputs = self
            .session
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
