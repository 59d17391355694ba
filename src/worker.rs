//! The inference thread. It owns the model (ONNX Runtime's `Session::run` takes `&mut self`),
//! takes batches from a bounded queue, runs and decodes them, and sends results back in order.
//! A panic inside inference is caught and reported as that batch's error, never propagated.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::decode::{Detection, POSE_CHANNELS, decode_batch};
use crate::engine::Engine;
use crate::preprocess::Letterbox;

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
            None => {}
        }
        self.inner.infer(input, shape, out)
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
}

/// What came of a [`Job`].
#[derive(Debug)]
pub struct JobResult {
    pub id: u64,
    pub tensor: Vec<f32>,
    /// Detections per image in frame pixels, or why the batch could not be analysed.
    pub detections: Result<Vec<Vec<Detection>>, String>,
    pub infer_time: Duration,
    pub decode_time: Duration,
}

/// Handle to the inference thread. Dropping it stops and joins the thread.
pub struct Worker {
    jobs: Option<SyncSender<Job>>,
    results: Mutex<Receiver<JobResult>>,
    thread: Option<JoinHandle<()>>,
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn analyse<I: Infer>(
    infer: &mut I,
    job: &Job,
    out: &mut Vec<f32>,
    infer_time: &mut Duration,
) -> Result<Vec<Vec<Detection>>, String> {
    if job.shape[0] == 0 {
        // A batch of frames none of which is analysed (detect-interval): nothing to run.
        return Ok(Vec::new());
    }
    let t0 = Instant::now();
    let r = catch_unwind(AssertUnwindSafe(|| {
        infer.infer(&job.tensor, job.shape, out)
    }));
    *infer_time = t0.elapsed();
    let anchors = match r {
        Ok(r) => r?,
        Err(p) => {
            return Err(format!(
                "the inference thread panicked: {}",
                panic_message(&*p)
            ));
        }
    };
    let batch = job.shape[0];
    if out.len() != batch * POSE_CHANNELS * anchors {
        return Err(format!(
            "the model returned {} values, expected {batch}x56x{anchors}",
            out.len()
        ));
    }
    Ok(decode_batch(
        out,
        batch,
        anchors,
        job.conf_threshold,
        job.iou_threshold,
        &job.letterbox,
    ))
}

impl Worker {
    /// Starts the thread. `queue` bounds how many jobs may wait for it.
    pub fn spawn<I: Infer>(mut infer: I, queue: usize) -> std::io::Result<Self> {
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(queue.max(1));
        let (res_tx, res_rx) = mpsc::channel::<JobResult>();
        let thread = std::thread::Builder::new()
            .name("yoloanonymize-infer".into())
            .spawn(move || {
                let mut out = Vec::new();
                while let Ok(job) = job_rx.recv() {
                    let t0 = Instant::now();
                    let mut infer_time = Duration::ZERO;
                    let detections = analyse(&mut infer, &job, &mut out, &mut infer_time);
                    let result = JobResult {
                        id: job.id,
                        tensor: job.tensor,
                        detections,
                        infer_time,
                        decode_time: t0.elapsed().saturating_sub(infer_time),
                    };
                    if res_tx.send(result).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            jobs: Some(job_tx),
            results: Mutex::new(res_rx),
            thread: Some(thread),
        })
    }

    /// Queues a job, waiting while the queue is full. Fails only if the thread is gone.
    pub fn submit(&self, job: Job) -> Result<(), String> {
        self.jobs
            .as_ref()
            .ok_or("the inference thread has stopped")?
            .send(job)
            .map_err(|_| "the inference thread has stopped".to_string())
    }

    /// Queues a job if the queue has room: `Ok(false)` when it is full (the job is dropped).
    pub fn try_submit(&self, job: Job) -> Result<bool, String> {
        match self
            .jobs
            .as_ref()
            .ok_or("the inference thread has stopped")?
            .try_send(job)
        {
            Ok(()) => Ok(true),
            Err(mpsc::TrySendError::Full(_)) => Ok(false),
            Err(mpsc::TrySendError::Disconnected(_)) => {
                Err("the inference thread has stopped".into())
            }
        }
    }

    /// Waits up to `timeout` for the next result: `Err(true)` on time-out, `Err(false)` if the
    /// thread is gone.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<JobResult>, bool> {
        match self.results.lock().recv_timeout(timeout) {
            Ok(r) => Ok(Some(r)),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(true),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(false),
        }
    }

    /// Waits for the next result; `None` if the thread is gone.
    pub fn recv(&self) -> Option<JobResult> {
        self.results.lock().recv().ok()
    }

    /// The next result if one is ready.
    pub fn try_recv(&self) -> Result<Option<JobResult>, String> {
        match self.results.lock().try_recv() {
            Ok(r) => Ok(Some(r)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err("the inference thread has stopped".into()),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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

    fn job(id: u64, batch: usize) -> Job {
        Job {
            id,
            tensor: vec![0.0; batch * 3 * 64 * 64],
            shape: [batch, 3, 64, 64],
            letterbox: Letterbox::new(64, 64, 64),
            conf_threshold: 0.25,
            iou_threshold: 0.7,
        }
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
