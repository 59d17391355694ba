//! Loading the model on an inference worker at `start()`, and what the element does when it
//! cannot: an error, or (under on-failure) a start without a model, where every frame fails.

use std::sync::Arc;

use super::imp::PLUGIN_DIR;
use super::outbox::Outbox;
use super::settings::Settings;
use super::{CAT, OnFailure};
use crate::engine::{Device, Engine, EngineConfig, EngineError};
use crate::stats::{self, PROVIDER_MESSAGE};
use crate::worker::{Faulty, Group, Server, ServerInfo, Worker};

/// Batches handed to the worker and not yet returned, beyond the one being collected.
pub(super) const MAX_IN_FLIGHT: usize = 1;

/// The worker an element runs its batches on, or why it has none.
pub(super) struct Loaded {
    pub worker: Option<Arc<Worker>>,
    /// Why there is no worker (every frame then follows on-failure).
    pub failure: Option<String>,
    pub info: ServerInfo,
}

impl Loaded {
    /// What the provider message says about the choice: why CUDA was not used, or why no model.
    pub fn note(&self) -> String {
        self.info
            .provider_note
            .clone()
            .or(self.failure.clone())
            .unwrap_or_default()
    }
}

/// Loads the model for an element starting with settings `s`. An error stops the start; a model
/// that cannot be loaded under on-failure=redact-frame or passthrough is a warning and a start
/// without a worker.
pub(super) fn load(
    obj: &super::YoloAnonymize,
    s: &Settings,
    out: &mut Outbox,
) -> Result<Loaded, gst::ErrorMessage> {
    let e = match load_worker(obj, s, out) {
        Ok(worker) => {
            let info = worker.server().info.clone();
            gst::info!(
                CAT,
                obj = obj,
                "Inference worker {:?} on {:?}, {} stream(s)",
                worker.server().group,
                info.provider,
                worker.server().clients()
            );
            return Ok(Loaded {
                worker: Some(worker),
                failure: None,
                info,
            });
        }
        Err(e) => e,
    };
    match (&e, s.on_failure) {
        (EngineError::ModelFile { .. }, OnFailure::Error) => {
            Err(gst::error_msg!(gst::ResourceError::NotFound, ("{}", e)))
        }
        (EngineError::ModelLoad { .. } | EngineError::FaceModel { .. }, OnFailure::Error) => {
            Err(gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e)))
        }
        (EngineError::Library(_), OnFailure::Error) => {
            Err(gst::error_msg!(gst::LibraryError::Init, ("{}", e)))
        }
        // An execution provider asked for by name and not there is a set-up error: the element
        // does not start (nothing leaves unredacted, and nobody runs hours of video pixelated
        // whole because of a typo or a missing driver).
        (EngineError::Provider(_), _) | (_, OnFailure::Error) => {
            Err(gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))
        }
        (_, on_failure) => {
            let what = if on_failure == OnFailure::Passthrough {
                "will pass through UNREDACTED (on-failure=passthrough)"
            } else {
                "will be pixelated whole (on-failure=redact-frame; set on-failure=error to stop instead)"
            };
            let text = format!("The model could not be loaded, so every frame {what}: {e}");
            out.warning(gst::LibraryError::Init, &text);
            Ok(Loaded {
                worker: None,
                failure: Some(format!("the model could not be loaded: {e}")),
                info: ServerInfo::default(),
            })
        }
    }
}

/// Loads the model on its worker (shared or not). Warnings found while loading are queued,
/// not posted: the shared-worker registry is locked while a model loads.
fn load_worker(
    obj: &super::YoloAnonymize,
    s: &Settings,
    out: &mut Outbox,
) -> Result<Arc<Worker>, EngineError> {
    let cfg = EngineConfig {
        model: s.model.clone(),
        device: Device::parse(&s.device).map_err(EngineError::Provider)?,
        threads: s.threads as usize,
        library_dirs: PLUGIN_DIR.get().cloned().into_iter().collect(),
        half_precision: s.half_precision,
        openvino_bf16: s.openvino_bf16,
        face_model: s
            .detectors
            .contains(super::Detectors::FACE)
            .then(|| s.face_model.clone()),
        precision: s.precision.into(),
    };
    let group = match s.shared_worker.as_str() {
        // Injected faults are this element's alone.
        _ if s.fault.is_some() => None,
        "none" => None,
        "auto" => Some(Group::Auto),
        name => Some(Group::Named(name.to_string())),
    };
    let mut warnings = Vec::new();
    let mut load = || -> Result<Arc<Server>, EngineError> {
        gst::info!(CAT, obj = obj, "Loading {cfg}");
        let engine = Engine::load_config(&cfg)?;
        let info = ServerInfo {
            provider: Some(engine.provider),
            provider_note: engine
                .provider_note
                .iter()
                .chain(engine.precision_note.iter())
                .cloned()
                .reduce(|a, b| format!("{a}; {b}")),
            reduced_precision: engine.reduced_precision,
            region_pad: engine.region_pad,
            conf_offset: engine.conf_offset,
            face_conf_offset: engine.face.as_ref().map_or(0.0, |f| f.conf_offset),
            face: engine.face.is_some(),
            fixed_batch: engine.input_shape.batch,
            fixed_hw: engine.input_shape.height.zip(engine.input_shape.width),
        };
        warnings.extend(engine.precision_note.clone());
        // With the GPU runtime and a driver installed, running on the CPU is worth a warning.
        if engine.cuda_expected {
            warnings.extend(engine.provider_note.clone());
        }
        gst::info!(
            CAT,
            obj = obj,
            "Model {} loaded on {}, input {:?}",
            engine.model.display(),
            engine.provider,
            engine.input_shape
        );
        let faulty = Faulty {
            inner: engine,
            fault: s.fault,
        };
        Server::spawn(faulty, group.clone(), Some(cfg.clone()), info)
            .map_err(|e| EngineError::Library(format!("cannot start the inference thread: {e}")))
    };
    let server = match &group {
        Some(g) => crate::worker::shared(g, &cfg, load),
        None => load(),
    };
    for w in warnings {
        out.warning(gst::LibraryError::Settings, &w);
    }
    Ok(Arc::new(Worker::connect(server?, MAX_IN_FLIGHT + 1)))
}

/// The `yoloanonymize-provider` message: which provider runs the model, or why none.
pub(super) fn provider_structure(requested: &str, loaded: &Loaded) -> gst::Structure {
    use stats::provider_field as f;
    let server = loaded.worker.as_ref().map(|w| w.server());
    let group = server.and_then(|s| s.group.as_ref());
    let provider = loaded.info.provider;
    gst::Structure::builder(PROVIDER_MESSAGE)
        .field(f::REQUESTED, requested)
        .field(
            f::PROVIDER,
            provider.map(|p| p.to_string()).unwrap_or_default(),
        )
        .field(
            f::SHARED_WORKER,
            group.map_or("none".into(), |g| g.to_string()),
        )
        .field(f::STREAMS, server.map_or(0, |s| s.clients()) as u32)
        .field(f::NOTE, loaded.note())
        .build()
}
