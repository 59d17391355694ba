//! The inference thread. It owns the model (ONNX Runtime's `Session::run` takes `&mut self`),
//! takes batches from its queue, runs and decodes them, and sends each result back to the client
//! that sent it. A panic inside inference is caught and reported as that batch's error, never
//! propagated.
//!
//! One thread (a [`Server`]) can serve many element instances ([`Worker`]s, its clients): the
//! elements of one process that use the same model and device share a session instead of
//! loading one each (see [`shared`]). Batches from different clients that are waiting together
//! and have the same network size run as one batch; each client gets back only its own images'
//! detections, decoded with its own letterbox and thresholds, so frames never cross streams. A
//! client's batches run in the order it sent them.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::decode::{POSE_CHANNELS, decode_batch};
use crate::detection::{Detection, FaceDetection};
use crate::engine::{Engine, EngineConfig, Provider};
use crate::face::{YunetOutputs, decode_yunet_batch};
use crate::preprocess::Letterbox;

/// The most images one run may hold when batches from several clients are put together.
pub const MAX_RUN_FRAMES: usize = 32;

/// Something that turns an input tensor into a pose output tensor. [`Engine`] in production;
/// tests substitute models that fail, panic or stall.
pub trait Infer: Send + 'static {
    /// Runs `[batch,3,h,w]` and writes `[batch,56,anchors]` into `out`, returning `anchors`.
    fn infer(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        out: &mut Vec<f32>,
    ) -> Result<usize, String>;

    /// The most images one run may hold when waiting batches are put together, given the
    /// configured batch size of the client whose batch runs first; 0 = never put together.
    fn merge_limit(&self, batch_size: usize) -> usize {
        let _ = batch_size;
        MAX_RUN_FRAMES
    }

    /// The fault injected into this model, if any (tests).
    fn fault(&self) -> Option<Fault> {
        None
    }

    /// Runs the face detector on `[batch,3,h,w]` and writes its twelve outputs
    /// ([`crate::face::YUNET_OUTPUTS`] order) into `out`. A model without a face detector fails.
    fn infer_face(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        out: &mut [Vec<f32>; 12],
    ) -> Result<(), String> {
        let _ = (input, shape, out);
        Err("no face detector is loaded (face-model)".into())
    }
}

impl Infer for Engine {
    fn infer(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        out: &mut Vec<f32>,
    ) -> Result<usize, String> {
        self.run(input, shape, out).map_err(|e| e.to_string())
    }

    fn infer_face(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        out: &mut [Vec<f32>; 12],
    ) -> Result<(), String> {
        match self.face.as_mut() {
            Some(f) => f.run(input, shape, out).map_err(|e| e.to_string()),
            None => Err("no face detector is loaded (face-model)".into()),
        }
    }

    /// A model with a fixed batch never takes merged runs. On the CPU (ONNX Runtime's provider
    /// or OpenVINO's) a run holds no more than a full batch: larger runs are not faster per image
    /// there, and the working memory grows with the largest run (measured on 768x576: 384 MB
    /// resident at batch 4, 633 MB at batch 8), so only partial batches (detect-interval, live
    /// time-outs, drains) are put together. On CUDA, batches of all streams run together, up to
    /// [`MAX_RUN_FRAMES`].
    fn merge_limit(&self, batch_size: usize) -> usize {
        if self.input_shape.batch.is_some() {
            0
        } else if self.provider.is_cuda() {
            MAX_RUN_FRAMES
        } else {
            batch_size
        }
    }
}

/// A fault to inject into inference, for testing the fail-closed paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every batch returns an error.
    Error,
    /// Every batch panics.
    Panic,
    /// Every batch takes this much longer.
    Slow(Duration),
    /// Every result holds one detection list fewer than the batch has images (a worker bug the
    /// element must treat as a failure, never as "nobody in that frame").
    ShortResult,
}

/// Wraps an [`Infer`] and applies an optional [`Fault`].
pub struct Faulty<I> {
    pub inner: I,
    pub fault: Option<Fault>,
}

impl<I: Infer> Infer for Faulty<I> {
    fn infer(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        out: &mut Vec<f32>,
    ) -> Result<usize, String> {
        match self.fault {
            Some(Fault::Error) => return Err("injected fault".into()),
            Some(Fault::Panic) => panic!("injected panic"),
            Some(Fault::Slow(d)) => std::thread::sleep(d),
            Some(Fault::ShortResult) | None => {}
        }
        self.inner.infer(input, shape, out)
    }

    fn merge_limit(&self, batch_size: usize) -> usize {
        self.inner.merge_limit(batch_size)
    }

    fn fault(&self) -> Option<Fault> {
        self.fault
    }

    fn infer_face(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        out: &mut [Vec<f32>; 12],
    ) -> Result<(), String> {
        match self.fault {
            Some(Fault::Error) => return Err("injected fault".into()),
            Some(Fault::Panic) => panic!("injected panic"),
            _ => {}
        }
        self.inner.infer_face(input, shape, out)
    }
}

/// One batch to analyse.
#[derive(Debug)]
pub struct Job {
    pub id: u64,
    /// `shape[0]` images, NCHW; handed back in the result for reuse.
    pub tensor: Vec<f32>,
    pub shape: [usize; 4],
    pub letterbox: Letterbox,
    pub conf_threshold: f32,
    pub iou_threshold: f32,
    /// The client's configured batch size (see [`Infer::merge_limit`]).
    pub batch_size: usize,
    /// Whether the pose model runs (`detectors` has `pose`); when it does not, `tensor` is
    /// empty and every image gets an empty pose list.
    pub pose: bool,
    /// The face detector's input for the same images, when it runs (`detectors` has `face`).
    pub face: Option<FaceJob>,
}

/// The face detector's part of a [`Job`]: some or all of the same images (`face-interval`), at
/// the face model's input size.
#[derive(Debug)]
pub struct FaceJob {
    /// `shape[0]` images, NCHW ([`crate::face::fill_face_tensor`]); handed back for reuse.
    pub tensor: Vec<f32>,
    pub shape: [usize; 4],
    /// For each face image, in order, the index of its image in the job (`0..job.shape[0]`);
    /// the job's other images get no face list of their own (an empty one).
    pub images: Vec<usize>,
    pub letterbox: Letterbox,
    pub score_threshold: f32,
    pub iou_threshold: f32,
}

impl Job {
    /// What must be equal for two jobs to run as one batch: the network sizes of both models
    /// and which of them run.
    fn run_key(&self) -> ([usize; 3], bool, Option<[usize; 3]>) {
        (
            [self.shape[1], self.shape[2], self.shape[3]],
            self.pose,
            self.face
                .as_ref()
                .map(|f| [f.shape[1], f.shape[2], f.shape[3]]),
        )
    }
}

/// What came of a [`Job`].
#[derive(Debug)]
pub struct JobResult {
    pub id: u64,
    pub tensor: Vec<f32>,
    /// Detections per image in frame pixels, or why the batch could not be analysed (by either
    /// model: a face detector that fails fails the batch).
    pub detections: Result<Vec<Vec<Detection>>, String>,
    /// Faces per image in frame pixels (empty lists when the face detector did not run).
    pub faces: Vec<Vec<FaceDetection>>,
    /// The face input, handed back for reuse (empty when there was none).
    pub face_tensor: Vec<f32>,
    /// This job's share of the face detector's inference time (included in `infer_time`).
    pub face_time: Duration,
    /// This job's share of the run's inference time (by images).
    pub infer_time: Duration,
    pub decode_time: Duration,
    /// Images in the run that analysed this job (more than `shape[0]` when batches of other
    /// clients ran with it).
    pub run_frames: usize,
    /// Clients whose batches were in that run (1 when this client's alone).
    pub run_clients: usize,
}

/// What the model reported when it was loaded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerInfo {
    /// Execution provider in use (`None` for test models).
    pub provider: Option<Provider>,
    /// Why the provider is not the one asked for, if it is not.
    pub provider_note: Option<String>,
    /// The model runs in reduced precision (bfloat16 or float16).
    pub reduced_precision: bool,
    /// Network pixels regions grow by for the precision in effect ([`Engine::region_pad`]).
    pub region_pad: f32,
    /// How much lower the confidence threshold is for the precision in effect.
    pub conf_offset: f32,
    /// How much lower `face-threshold` is for the face detector's precision.
    pub face_conf_offset: f32,
    /// The face detector is loaded beside the pose model.
    pub face: bool,
    /// The network's fixed batch, height and width, when the model fixes them.
    pub fixed_batch: Option<usize>,
    pub fixed_hw: Option<(usize, usize)>,
}

struct Request {
    client: u64,
    job: Job,
    reply: Sender<JobResult>,
}

/// The inference thread and its queue. Stops and joins the thread when the last client is gone.
pub struct Server {
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    /// The group it is registered under ([`shared`]), or `None` for a private server.
    pub group: Option<Group>,
    /// What the clients must agree on to share it (model, device, ...); `None` for test models.
    pub config: Option<EngineConfig>,
    pub info: ServerInfo,
    clients: AtomicUsize,
    next_client: AtomicU64,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("group", &self.group)
            .field("info", &self.info)
            .field("clients", &self.clients.load(Ordering::Relaxed))
            .finish()
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `images` images and checks the output's size; a panic becomes an error.
fn run_model<I: Infer>(
    infer: &mut I,
    input: &[f32],
    shape: [usize; 4],
    out: &mut Vec<f32>,
) -> Result<usize, String> {
    let r = catch_unwind(AssertUnwindSafe(|| infer.infer(input, shape, out)));
    let anchors = match r {
        Ok(r) => r?,
        Err(p) => {
            return Err(format!(
                "the inference thread panicked: {}",
                panic_message(&*p)
            ));
        }
    };
    let batch = shape[0];
    if out.len() != batch * POSE_CHANNELS * anchors {
        return Err(format!(
            "the model returned {} values, expected {batch}x56x{anchors}",
            out.len()
        ));
    }
    Ok(anchors)
}

/// Takes the next run from the backlog: its first request, plus every later one of the same
/// network size while the run holds at most `limit(first client's batch size)` images, taking
/// nothing of a client whose earlier request stays behind, so that each client's batches still
/// run in order.
fn next_run(backlog: &mut VecDeque<Request>, limit: impl Fn(usize) -> usize) -> Vec<Request> {
    let first = backlog.pop_front().expect("backlog is not empty");
    let mut frames = first.job.shape[0];
    let size = first.job.run_key();
    let limit = limit(first.job.batch_size);
    let mut run = vec![first];
    if limit == 0 || frames == 0 {
        return run;
    }
    let mut blocked: Vec<u64> = Vec::new();
    let mut i = 0;
    while i < backlog.len() {
        let r = &backlog[i];
        let n = r.job.shape[0];
        let fits =
            n > 0 && r.job.run_key() == size && frames + n <= limit && !blocked.contains(&r.client);
        if fits {
            frames += n;
            run.push(backlog.remove(i).expect("index is in range"));
        } else {
            blocked.push(r.client);
            i += 1;
        }
    }
    run
}

/// Runs the face detector on the face inputs of a run (all of the same size, [`next_run`]) as
/// one batch, a panic becoming an error.
fn run_face_model<I: Infer>(
    infer: &mut I,
    run: &[Request],
    total: usize,
    face_out: &mut [Vec<f32>; 12],
    joined: &mut Vec<f32>,
) -> Option<Result<(), String>> {
    let first = run[0].job.face.as_ref()?;
    if total == 0 {
        return Some(Ok(()));
    }
    let shape = [total, first.shape[1], first.shape[2], first.shape[3]];
    let input: &[f32] = if run.len() == 1 {
        &first.tensor
    } else {
        joined.clear();
        for r in run {
            joined.extend_from_slice(r.job.face.as_ref().map_or(&[][..], |f| &f.tensor));
        }
        joined
    };
    let r = catch_unwind(AssertUnwindSafe(|| {
        infer.infer_face(input, shape, face_out)
    }));
    Some(match r {
        Ok(r) => r,
        Err(p) => Err(format!(
            "the inference thread panicked in the face detector: {}",
            panic_message(&*p)
        )),
    })
}

/// Decodes one request's faces from the run's face outputs: face images `offset..offset +
/// face.shape[0]` of `total`, as one list per image of its job (`images` of them; empty for the
/// images the face detector did not see).
fn decode_faces(
    face: &FaceJob,
    face_out: &[Vec<f32>; 12],
    offset: usize,
    total: usize,
    images: usize,
) -> Result<Vec<Vec<FaceDetection>>, String> {
    let n = face.shape[0];
    if face.images.len() != n || face.images.iter().any(|&i| i >= images) {
        return Err(format!(
            "the face input of {n} images does not match its image list {:?} (of {images})",
            face.images
        ));
    }
    if n == 0 {
        return Ok(vec![Vec::new(); images]);
    }
    let mut parts: Vec<&[f32]> = Vec::with_capacity(12);
    for t in face_out {
        let per = t.len() / total.max(1);
        if per * total != t.len() {
            return Err(format!(
                "the face model returned {} values, not a multiple of {total} images",
                t.len()
            ));
        }
        parts.push(&t[offset * per..(offset + n) * per]);
    }
    let parts: [&[f32]; 12] = parts.try_into().expect("twelve outputs");
    let lbs = vec![face.letterbox; n];
    let decoded = decode_yunet_batch(
        &YunetOutputs::from_ordered(parts),
        &lbs,
        face.score_threshold,
        face.iou_threshold,
    )
    .map_err(|e| e.to_string())?;
    let mut faces = vec![Vec::new(); images];
    for (&i, f) in face.images.iter().zip(decoded) {
        faces[i] = f;
    }
    Ok(faces)
}

/// The model outputs of one run, kept by the inference thread between runs.
#[derive(Default)]
struct Scratch {
    out: Vec<f32>,
    joined: Vec<f32>,
    face_out: [Vec<f32>; 12],
}

/// Runs the requests of one run as a single batch and answers each of them.
fn serve_run<I: Infer>(infer: &mut I, run: Vec<Request>, scratch: &mut Scratch) {
    let Scratch {
        out,
        joined,
        face_out,
    } = scratch;
    let total: usize = run.iter().map(|r| r.job.shape[0]).sum();
    let mut clients: Vec<u64> = run.iter().map(|r| r.client).collect();
    clients.sort_unstable();
    clients.dedup();
    let shape = run[0].job.shape;
    let t0 = Instant::now();
    let anchors = if total == 0 || !run[0].job.pose {
        // A batch of frames none of which is analysed (detect-interval), or the pose model is
        // off: nothing to run.
        Ok(0)
    } else if run.len() == 1 {
        run_model(infer, &run[0].job.tensor, shape, out)
    } else {
        joined.clear();
        for r in &run {
            joined.extend_from_slice(&r.job.tensor);
        }
        run_model(infer, joined, [total, shape[1], shape[2], shape[3]], out)
    };
    // Face images of the run: fewer than `total` when the face detector skips frames.
    let face_total: usize = run
        .iter()
        .filter_map(|r| r.job.face.as_ref())
        .map(|f| f.shape[0])
        .sum();
    let t_face = Instant::now();
    let faces_run = if anchors.is_ok() {
        run_face_model(infer, &run, face_total, face_out, joined)
    } else {
        None
    };
    let face_time = t_face.elapsed();
    let infer_time = t0.elapsed();
    let (mut offset, mut face_offset) = (0, 0);
    for r in run {
        let Request { job, reply, .. } = r;
        let n = job.shape[0];
        let t1 = Instant::now();
        let mut detections = match &anchors {
            Ok(_) if n == 0 => Ok(Vec::new()),
            Ok(_) if !job.pose => Ok(vec![Vec::new(); n]),
            Ok(a) => {
                let per = POSE_CHANNELS * a;
                Ok(decode_batch(
                    &out[offset * per..(offset + n) * per],
                    n,
                    *a,
                    job.conf_threshold,
                    job.iou_threshold,
                    &job.letterbox,
                ))
            }
            Err(e) => Err(e.clone()),
        };
        let mut faces = Vec::new();
        if let (Ok(_), Some(face)) = (&detections, &job.face) {
            let decoded = match &faces_run {
                _ if n == 0 => Ok(Vec::new()),
                Some(Ok(())) => decode_faces(face, face_out, face_offset, face_total, n),
                Some(Err(e)) => Err(e.clone()),
                None => Err("the face detector did not run".to_string()),
            };
            match decoded {
                Ok(f) => faces = f,
                Err(e) => detections = Err(e),
            }
        }
        if infer.fault() == Some(Fault::ShortResult)
            && let Ok(d) = &mut detections
        {
            d.pop();
        }
        offset += n;
        face_offset += job.face.as_ref().map_or(0, |f| f.shape[0]);
        let share = |d: Duration| {
            if total == 0 {
                Duration::ZERO
            } else {
                d.mul_f64(n as f64 / total as f64)
            }
        };
        // A client that is gone no longer wants its result.
        let _ = reply.send(JobResult {
            id: job.id,
            tensor: job.tensor,
            detections,
            faces,
            face_tensor: job.face.map(|f| f.tensor).unwrap_or_default(),
            face_time: share(face_time),
            infer_time: share(infer_time),
            decode_time: t1.elapsed(),
            run_frames: total,
            run_clients: clients.len(),
        });
    }
}

impl Server {
    /// Starts an inference thread around `infer`.
    pub fn spawn<I: Infer>(
        mut infer: I,
        group: Option<Group>,
        config: Option<EngineConfig>,
        info: ServerInfo,
    ) -> std::io::Result<Arc<Self>> {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("yoloanonymize-infer".into())
            .spawn(move || {
                let mut scratch = Scratch::default();
                let mut backlog = VecDeque::new();
                loop {
                    if backlog.is_empty() {
                        match rx.recv() {
                            Ok(r) => backlog.push_back(r),
                            Err(_) => break,
                        }
                    }
                    while let Ok(r) = rx.try_recv() {
                        backlog.push_back(r);
                    }
                    let run = next_run(&mut backlog, |b| infer.merge_limit(b));
                    serve_run(&mut infer, run, &mut scratch);
                }
            })?;
        Ok(Arc::new(Self {
            requests: Some(tx),
            thread: Some(thread),
            group,
            config,
            info,
            clients: AtomicUsize::new(0),
            next_client: AtomicU64::new(0),
        }))
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Which elements share a server (the `shared-worker` property).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Group {
    /// `auto`: every element with the same [`EngineConfig`].
    Auto,
    /// A name: every element that gives it (they must agree on the config).
    Named(String),
}

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Group::Auto => write!(f, "auto"),
            Group::Named(n) => write!(f, "{n}"),
        }
    }
}

type Registry = Vec<(Group, EngineConfig, Weak<Server>)>;
static REGISTRY: Mutex<Registry> = Mutex::new(Vec::new());

/// The shared server of `group` for `config`, or a new one from `make` (which runs with the
/// registry locked, so that two elements starting together load the model once). A server is
/// dropped, and its model unloaded, when its last client is.
///
/// Under [`Group::Auto`] the config is part of the key. A named group is one server: joining it
/// with another config is an error that names both.
pub fn shared<E, F>(group: &Group, config: &EngineConfig, make: F) -> Result<Arc<Server>, E>
where
    F: FnOnce() -> Result<Arc<Server>, E>,
    E: From<String>,
{
    let mut reg = REGISTRY.lock();
    reg.retain(|(_, _, w)| w.strong_count() > 0);
    let found = reg
        .iter()
        .find(|(g, c, _)| g == group && (*group != Group::Auto || c == config));
    if let Some((_, c, w)) = found
        && let Some(s) = w.upgrade()
    {
        if c != config {
            return Err(E::from(format!(
                "shared-worker '{group}' already runs {c}, but this element asks for {config}; give it the same settings or another shared-worker name"
            )));
        }
        return Ok(s);
    }
    let s = make()?;
    reg.push((group.clone(), config.clone(), Arc::downgrade(&s)));
    Ok(s)
}

/// Shared servers alive in this process (for statistics and tests).
pub fn shared_count() -> usize {
    REGISTRY
        .lock()
        .iter()
        .filter(|(_, _, w)| w.strong_count() > 0)
        .count()
}

/// One client's handle on a [`Server`]: its own result queue and its own bound on batches in
/// flight. Dropping it disconnects; the server stops with its last client.
pub struct Worker {
    server: Arc<Server>,
    client: u64,
    reply: Sender<JobResult>,
    results: Mutex<Receiver<JobResult>>,
    /// Jobs sent and not yet received back.
    outstanding: AtomicUsize,
    limit: usize,
}

impl Worker {
    /// Starts a private inference thread around `infer`. At most `queue` batches may wait for it.
    pub fn spawn<I: Infer>(infer: I, queue: usize) -> std::io::Result<Self> {
        let server = Server::spawn(infer, None, None, ServerInfo::default())?;
        Ok(Self::connect(server, queue))
    }

    /// Becomes a client of `server`, allowed `queue` batches waiting beyond the one running.
    pub fn connect(server: Arc<Server>, queue: usize) -> Self {
        server.clients.fetch_add(1, Ordering::SeqCst);
        let client = server.next_client.fetch_add(1, Ordering::SeqCst);
        let (reply, rx) = mpsc::channel();
        Self {
            server,
            client,
            reply,
            results: Mutex::new(rx),
            outstanding: AtomicUsize::new(0),
            limit: queue.max(1) + 1,
        }
    }

    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    fn send(&self, job: Job) -> Result<(), String> {
        let requests = self
            .server
            .requests
            .as_ref()
            .ok_or("the inference thread has stopped")?;
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        requests
            .send(Request {
                client: self.client,
                job,
                reply: self.reply.clone(),
            })
            .map_err(|_| {
                self.outstanding.fetch_sub(1, Ordering::SeqCst);
                "the inference thread has stopped".to_string()
            })
    }

    /// Queues a job. The caller bounds how many it has in flight (the element waits for results
    /// before it sends more); this never blocks. Fails only if the thread is gone.
    pub fn submit(&self, job: Job) -> Result<(), String> {
        self.send(job)
    }

    /// Queues a job if this client has fewer than its bound in flight: `Ok(false)` otherwise
    /// (the job is dropped).
    pub fn try_submit(&self, job: Job) -> Result<bool, String> {
        if self.outstanding.load(Ordering::SeqCst) >= self.limit {
            return Ok(false);
        }
        self.send(job).map(|()| true)
    }

    fn received(&self, r: JobResult) -> JobResult {
        self.outstanding.fetch_sub(1, Ordering::SeqCst);
        r
    }

    /// Waits up to `timeout` for the next result: `Err(true)` on time-out, `Err(false)` if the
    /// thread is gone.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<JobResult>, bool> {
        match self.results.lock().recv_timeout(timeout) {
            Ok(r) => Ok(Some(self.received(r))),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(!self.server.thread.as_ref().is_some_and(|t| t.is_finished()))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(false),
        }
    }

    /// Waits for the next result; `None` if the thread is gone or nothing is in flight.
    pub fn recv(&self) -> Option<JobResult> {
        loop {
            if self.outstanding.load(Ordering::SeqCst) == 0 {
                return None;
            }
            match self.recv_timeout(Duration::from_millis(200)) {
                Ok(r) => return r,
                Err(true) => continue,
                Err(false) => return None,
            }
        }
    }

    /// The next result if one is ready.
    pub fn try_recv(&self) -> Result<Option<JobResult>, String> {
        match self.results.lock().try_recv() {
            Ok(r) => Ok(Some(self.received(r))),
            Err(TryRecvError::Empty) => {
                if self.server.thread.as_ref().is_some_and(|t| t.is_finished()) {
                    Err("the inference thread has stopped".into())
                } else {
                    Ok(None)
                }
            }
            Err(TryRecvError::Disconnected) => Err("the inference thread has stopped".into()),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.server.clients.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One person per image at the centre, or a failure / panic on request.
    struct Fake {
        mode: &'static str,
    }

    impl Infer for Fake {
        fn infer(
            &mut self,
            _input: &[f32],
            shape: [usize; 4],
            out: &mut Vec<f32>,
        ) -> Result<usize, String> {
            match self.mode {
                "fail" => Err("boom".into()),
                "panic" => panic!("kaboom"),
                _ => {
                    out.clear();
                    for _ in 0..shape[0] {
                        let mut t = vec![0f32; POSE_CHANNELS];
                        t[..5].copy_from_slice(&[32.0, 32.0, 10.0, 20.0, 0.9]);
                        out.extend(t);
                    }
                    Ok(1)
                }
            }
        }
    }

    /// Echoes each image's first input value as its box centre x. Each run announces itself
    /// (its size) on `started` and then waits until the test releases it, so tests decide what
    /// waits while a run is in progress without any sleep.
    struct Gated {
        started: mpsc::Sender<usize>,
        release: Receiver<()>,
        /// Size of every run, in order.
        runs: Arc<Mutex<Vec<usize>>>,
        /// The engine's CPU policy (runs no larger than a client's batch size) instead of CUDA's.
        cpu_limit: bool,
    }

    impl Infer for Gated {
        fn infer(
            &mut self,
            input: &[f32],
            shape: [usize; 4],
            out: &mut Vec<f32>,
        ) -> Result<usize, String> {
            self.runs.lock().push(shape[0]);
            let _ = self.started.send(shape[0]);
            self.release
                .recv()
                .map_err(|_| "the test hung up".to_string())?;
            let per = shape[1] * shape[2] * shape[3];
            out.clear();
            for i in 0..shape[0] {
                let mut t = vec![0f32; POSE_CHANNELS];
                t[..5].copy_from_slice(&[input[i * per], 32.0, 4.0, 4.0, 0.9]);
                out.extend(t);
            }
            Ok(1)
        }

        fn merge_limit(&self, batch_size: usize) -> usize {
            if self.cpu_limit {
                batch_size
            } else {
                MAX_RUN_FRAMES
            }
        }
    }

    /// The test's side of a [`Gated`] model.
    struct Gate {
        started: Receiver<usize>,
        release: mpsc::Sender<()>,
        runs: Arc<Mutex<Vec<usize>>>,
    }

    impl Gate {
        /// Waits until the next run has started, returning its size.
        fn started(&self) -> usize {
            self.started
                .recv_timeout(Duration::from_secs(30))
                .expect("a run starts")
        }

        /// Lets the running run finish.
        fn release(&self) {
            self.release.send(()).unwrap();
        }

        /// Lets `n` runs start and finish, one after another.
        fn run_through(&self, n: usize) {
            for _ in 0..n {
                self.started();
                self.release();
            }
        }
    }

    fn gated(cpu_limit: bool) -> (Gated, Gate) {
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let runs = Arc::new(Mutex::new(Vec::new()));
        (
            Gated {
                started: started_tx,
                release: release_rx,
                runs: runs.clone(),
                cpu_limit,
            },
            Gate {
                started: started_rx,
                release: release_tx,
                runs,
            },
        )
    }

    /// A server around `infer` outside the registry.
    fn server<I: Infer>(infer: I) -> Arc<Server> {
        Server::spawn(infer, None, None, ServerInfo::default()).unwrap()
    }

    fn marked(id: u64, values: &[f32]) -> Job {
        let per = 3 * 64 * 64;
        let mut j = job(id, values.len());
        for (i, v) in values.iter().enumerate() {
            j.tensor[i * per] = *v;
        }
        j
    }

    fn xs(r: &JobResult) -> Vec<f32> {
        let d = r.detections.as_ref().unwrap();
        d.iter()
            .map(|p| (p[0].bbox.x0 + p[0].bbox.x1) / 2.0)
            .collect()
    }

    #[test]
    fn waiting_batches_of_several_clients_run_together_and_return_apart() {
        let (model, gate) = gated(false);
        let server = server(model);
        let a = Worker::connect(server.clone(), 2);
        let b = Worker::connect(server.clone(), 2);
        assert_eq!(server.clients(), 2);
        // While A's first batch runs, A's second and B's first wait: they run as one batch of 5.
        a.submit(marked(0, &[10.0, 11.0])).unwrap();
        assert_eq!(gate.started(), 2);
        a.submit(marked(1, &[12.0, 13.0])).unwrap();
        b.submit(marked(0, &[20.0, 21.0, 22.0])).unwrap();
        gate.release();
        gate.run_through(1);
        let a0 = a.recv().unwrap();
        let a1 = a.recv().unwrap();
        let b0 = b.recv().unwrap();
        assert_eq!(*gate.runs.lock(), vec![2, 5]);
        assert_eq!((a0.id, a1.id, b0.id), (0, 1, 0));
        assert_eq!(xs(&a0), vec![10.0, 11.0]);
        assert_eq!(xs(&a1), vec![12.0, 13.0]);
        assert_eq!(xs(&b0), vec![20.0, 21.0, 22.0]);
        assert_eq!((a1.run_frames, b0.run_frames), (5, 5));
        assert_eq!((a0.run_clients, a1.run_clients, b0.run_clients), (1, 2, 2));
        assert!(a.try_recv().unwrap().is_none() && b.try_recv().unwrap().is_none());
        drop(a);
        assert_eq!(server.clients(), 1);
    }

    #[test]
    fn with_a_batch_size_limit_only_partial_batches_run_together() {
        let (model, gate) = gated(true);
        let server = server(model);
        let a = Worker::connect(server.clone(), 4);
        let b = Worker::connect(server.clone(), 4);
        let partial = |id, v: &[f32]| {
            let mut j = marked(id, v);
            j.batch_size = 4;
            j
        };
        a.submit(partial(0, &[1.0, 1.0, 1.0, 1.0])).unwrap();
        assert_eq!(gate.started(), 4);
        // Waiting: two full batches (not put together), then three halves (two fit in a batch).
        b.submit(partial(0, &[2.0, 2.0, 2.0, 2.0])).unwrap();
        a.submit(partial(1, &[3.0, 3.0, 3.0, 3.0])).unwrap();
        a.submit(partial(2, &[4.0, 4.0])).unwrap();
        b.submit(partial(1, &[5.0, 5.0])).unwrap();
        a.submit(partial(3, &[6.0, 6.0])).unwrap();
        gate.release();
        gate.run_through(4);
        for _ in 0..4 {
            a.recv().unwrap();
        }
        b.recv().unwrap();
        let b1 = b.recv().unwrap();
        assert_eq!(xs(&b1), vec![5.0, 5.0]);
        assert_eq!(*gate.runs.lock(), vec![4, 4, 4, 4, 2]);
    }

    #[test]
    fn a_client_batches_stay_in_order_when_sizes_differ() {
        let (model, gate) = gated(false);
        let a = Worker::connect(server(model), 4);
        a.submit(marked(0, &[1.0])).unwrap();
        assert_eq!(gate.started(), 1);
        // A different network size (a caps change) between two batches of the same size: the
        // third must not jump ahead of the second by running with the first.
        let mut other = job(1, 1);
        other.shape = [1, 3, 32, 128];
        a.submit(other).unwrap();
        a.submit(marked(2, &[3.0])).unwrap();
        gate.release();
        gate.run_through(2);
        let ids: Vec<u64> = (0..3).map(|_| a.recv().unwrap().id).collect();
        assert_eq!(ids, vec![0, 1, 2]);
        assert_eq!(*gate.runs.lock(), vec![1, 1, 1]);
    }

    fn config(model: &str, device: crate::engine::Device) -> EngineConfig {
        EngineConfig {
            model: model.into(),
            device,
            threads: 2,
            library_dirs: Vec::new(),
            half_precision: false,
            openvino_bf16: true,
            face_model: None,
            precision: Default::default(),
        }
    }

    fn job(id: u64, batch: usize) -> Job {
        Job {
            id,
            tensor: vec![0.0; batch * 3 * 64 * 64],
            shape: [batch, 3, 64, 64],
            letterbox: Letterbox::new(64, 64, 64),
            conf_threshold: 0.25,
            iou_threshold: 0.7,
            batch_size: batch,
            pose: true,
            face: None,
        }
    }

    #[test]
    fn registry_shares_by_group_and_config_and_refuses_a_different_config() {
        use crate::engine::Device;
        let make = |group: &Group, config: &EngineConfig| {
            Server::spawn(
                Fake { mode: "ok" },
                Some(group.clone()),
                Some(config.clone()),
                ServerInfo::default(),
            )
            .map_err(|e| e.to_string())
        };
        let named = Group::Named("test-group".into());
        let a = config("a.onnx", Device::Cpu);
        let b = config("b.onnx", Device::Cuda(0));
        let s1 = shared::<String, _>(&named, &a, || make(&named, &a)).unwrap();
        let s2 = shared::<String, _>(&named, &a, || -> Result<_, String> {
            panic!("must not load twice")
        })
        .unwrap();
        assert!(Arc::ptr_eq(&s1, &s2));
        let e = shared::<String, _>(&named, &b, || make(&named, &b)).unwrap_err();
        assert!(
            e.contains("test-group")
                && e.contains("a.onnx on cpu")
                && e.contains("b.onnx on cuda:0"),
            "{e}"
        );
        // Under auto, another config is another server, not an error.
        let auto_a = shared::<String, _>(&Group::Auto, &a, || make(&Group::Auto, &a)).unwrap();
        let auto_b = shared::<String, _>(&Group::Auto, &b, || make(&Group::Auto, &b)).unwrap();
        assert!(!Arc::ptr_eq(&auto_a, &auto_b) && !Arc::ptr_eq(&auto_a, &s1));
        let auto_a2 = shared::<String, _>(&Group::Auto, &a, || -> Result<_, String> {
            panic!("must not load twice")
        })
        .unwrap();
        assert!(Arc::ptr_eq(&auto_a, &auto_a2));
        drop((s1, s2));
        // Gone with its last holder: the next one loads again, with its own config.
        let s3 = shared::<String, _>(&named, &b, || make(&named, &b)).unwrap();
        assert_eq!(s3.config.as_ref(), Some(&b));
    }

    #[test]
    fn try_submit_refuses_beyond_the_bound() {
        let (model, gate) = gated(false);
        let w = Worker::connect(server(model), 1);
        assert!(w.try_submit(marked(0, &[1.0])).unwrap());
        assert_eq!(gate.started(), 1);
        assert!(w.try_submit(marked(1, &[1.0])).unwrap());
        assert!(!w.try_submit(marked(2, &[1.0])).unwrap());
        gate.release();
        assert_eq!(w.recv().unwrap().id, 0);
        // Batch 1 runs now; one more fits beside it.
        assert_eq!(gate.started(), 1);
        assert!(w.try_submit(marked(3, &[1.0])).unwrap());
        assert!(!w.try_submit(marked(4, &[1.0])).unwrap());
        gate.release();
        gate.run_through(1);
        assert_eq!(w.recv().unwrap().id, 1);
        assert_eq!(w.recv().unwrap().id, 3);
        assert!(w.recv().is_none());
        assert_eq!(*gate.runs.lock(), vec![1, 1, 1]);
    }

    #[test]
    fn results_come_back_in_order() {
        let w = Worker::spawn(Fake { mode: "ok" }, 2).unwrap();
        for id in 0..5 {
            w.submit(job(id, 3)).unwrap();
            let r = w.recv().unwrap();
            assert_eq!(r.id, id);
            let d = r.detections.unwrap();
            assert_eq!(d.len(), 3);
            assert_eq!(d[0].len(), 1);
            assert_eq!(r.tensor.len(), 3 * 3 * 64 * 64);
        }
        assert!(w.try_recv().unwrap().is_none());
    }

    #[test]
    fn errors_and_panics_become_batch_errors() {
        let w = Worker::spawn(Fake { mode: "fail" }, 1).unwrap();
        w.submit(job(1, 2)).unwrap();
        assert_eq!(w.recv().unwrap().detections.unwrap_err(), "boom");
        let w = Worker::spawn(Fake { mode: "panic" }, 1).unwrap();
        w.submit(job(1, 2)).unwrap();
        w.submit(job(2, 2)).unwrap();
        let e = w.recv().unwrap().detections.unwrap_err();
        assert!(e.contains("panicked") && e.contains("kaboom"), "{e}");
        // The thread survives a panic and keeps serving.
        assert!(w.recv().unwrap().detections.is_err());
    }
}
