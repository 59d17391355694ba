//! The batching state machine between the streaming thread and the inference worker.
//!
//! Frames arrive one at a time and are held: every `detect-interval`-th frame is analysed (it gets
//! a slot in the batch's input, which the caller fills), the others ride along. A full batch (or
//! a partial one, when the caller drains) is taken and sent to the worker as a job; its result
//! comes back later, or never (late, flushed). Batches leave strictly in order: one whose outcome
//! is known waits for the older ones.
//!
//! No GStreamer and no clock of its own: the caller passes `now` to every call that needs the time,
//! so tests drive it with a fake clock. The frame type `F`, the per-frame analysis `R` and the
//! batch input `I` (the tensor the caller fills) are generic.
//!
//! A result that does not match its batch (a different number of analyses than analysed frames)
//! is a failure of the whole batch, never "nobody in these frames".

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the policy does with frames the model could not analyse (`on-failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Redact the whole frame and warn.
    #[default]
    RedactFrame,
    /// Stop the pipeline with an error.
    Error,
    /// Let the frame out untouched (unsafe; debugging only).
    Passthrough,
}

/// What happens to the frames of a resolved batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Analysed: redact the regions of the people found (and tracked).
    Regions,
    /// Not analysed: redact every frame whole, and warn with the reason.
    WholeFrame(String),
    /// Not analysed: let the frames out untouched (on-failure=passthrough), and warn.
    Passthrough(String),
    /// Not analysed: stop with an error.
    Error(String),
}

impl Plan {
    /// The failure policy: an analysed batch is redacted region by region; one that could not be
    /// analysed follows `on-failure`.
    pub fn for_outcome<T>(outcome: &Result<T, String>, on_failure: OnFailure) -> Plan {
        match (outcome, on_failure) {
            (Ok(_), _) => Plan::Regions,
            (Err(why), OnFailure::RedactFrame) => Plan::WholeFrame(why.clone()),
            (Err(why), OnFailure::Passthrough) => Plan::Passthrough(why.clone()),
            (Err(why), OnFailure::Error) => Plan::Error(why.clone()),
        }
    }

    /// Why the batch was not analysed, if it was not.
    pub fn failure(&self) -> Option<&str> {
        match self {
            Plan::Regions => None,
            Plan::WholeFrame(w) | Plan::Passthrough(w) | Plan::Error(w) => Some(w),
        }
    }
}

/// A frame held by the batcher.
#[derive(Debug)]
pub struct Held<F> {
    pub frame: F,
    /// Whether the model analyses it (`detect-interval`).
    pub analyse: bool,
    pub arrived: Instant,
}

/// A batch taken from the batcher, to be sent to the worker.
#[derive(Debug)]
pub struct Batch<I> {
    pub id: u64,
    /// The filled input: `analysed` slots.
    pub input: I,
    pub analysed: usize,
    pub frames: usize,
}

/// A batch whose outcome is known, ready to be redacted and pushed, in order.
#[derive(Debug)]
pub struct Resolved<F, R> {
    pub frames: Vec<Held<F>>,
    /// Per frame: `Some(analysis)` for the frames the model analysed, `None` for those it did not
    /// run on (`detect-interval`); or why the batch could not be analysed.
    pub outcome: Result<Vec<Option<R>>, String>,
    /// The batch missed its live deadline (or the worker could not take it in time).
    pub late: bool,
}

#[derive(Debug)]
struct Pending<F, R> {
    id: u64,
    frames: Vec<Held<F>>,
    analysed: usize,
    outcome: Option<Result<Vec<R>, String>>,
    late: bool,
}

/// What came of a result handed to [`Batcher::complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Recorded on its batch.
    Recorded,
    /// No batch waits for it (flushed, or already let out at its deadline): dropped.
    Dropped,
}

/// The batching state machine (see the module documentation).
#[derive(Debug)]
pub struct Batcher<F, R, I> {
    batch_size: usize,
    detect_interval: u64,
    collecting: Vec<Held<F>>,
    /// Analysed frames among `collecting` (filled slots of `input`).
    slots: usize,
    input: I,
    /// Inputs handed back by the worker, reused for the next batches.
    spare: Vec<I>,
    pending: VecDeque<Pending<F, R>>,
    /// Frames seen since the start or the last flush (for `detect-interval`).
    seen: u64,
    next_id: u64,
}

impl<F, R, I: Default> Batcher<F, R, I> {
    /// `batch_size` analysed frames make a full batch; every `detect_interval`-th frame is
    /// analysed (both at least 1).
    pub fn new(batch_size: usize, detect_interval: u32) -> Self {
        Self {
            batch_size: batch_size.max(1),
            detect_interval: detect_interval.max(1) as u64,
            collecting: Vec::new(),
            slots: 0,
            input: I::default(),
            spare: Vec::new(),
            pending: VecDeque::new(),
            seen: 0,
            next_id: 0,
        }
    }

    /// Changes the number of analysed frames that make a full batch (a model with a fixed batch).
    pub fn set_batch_size(&mut self, batch_size: usize) {
        self.batch_size = batch_size.max(1);
    }

    /// Holds `frame`. When the model analyses it, `fill` is called first with the frame, its slot
    /// in the batch input and the input, to write the frame's network input; an error from `fill`
    /// is returned and the frame is not held. Returns whether the batch is now full.
    pub fn push<E>(
        &mut self,
        mut frame: F,
        now: Instant,
        fill: impl FnOnce(&mut F, usize, &mut I) -> Result<(), E>,
    ) -> Result<bool, E> {
        let analyse = self.seen.is_multiple_of(self.detect_interval);
        if analyse {
            fill(&mut frame, self.slots, &mut self.input)?;
            self.slots += 1;
        }
        self.seen += 1;
        self.collecting.push(Held {
            frame,
            analyse,
            arrived: now,
        });
        Ok(self.slots >= self.batch_size)
    }

    /// Frames held in the batch being collected.
    pub fn collecting(&self) -> usize {
        self.collecting.len()
    }

    /// When the oldest frame of the batch being collected arrived.
    pub fn collecting_since(&self) -> Option<Instant> {
        self.collecting.first().map(|h| h.arrived)
    }

    /// The input of the batch being collected (its first `slots` are filled).
    pub fn input_mut(&mut self) -> &mut I {
        &mut self.input
    }

    /// Takes the batch being collected (full or not) as a job; `None` if no frame is held. Its
    /// frames wait in order for [`complete`](Self::complete) or [`refuse`](Self::refuse).
    pub fn take_batch(&mut self) -> Option<Batch<I>> {
        if self.collecting.is_empty() {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let spare = self.spare.pop().unwrap_or_default();
        let input = std::mem::replace(&mut self.input, spare);
        let frames = std::mem::take(&mut self.collecting);
        let analysed = std::mem::take(&mut self.slots);
        let n = frames.len();
        self.pending.push_back(Pending {
            id,
            frames,
            analysed,
            outcome: None,
            late: false,
        });
        Some(Batch {
            id,
            input,
            analysed,
            frames: n,
        })
    }

    /// Gives back a batch input for reuse.
    pub fn recycle(&mut self, input: I) {
        if self.spare.len() < 4 {
            self.spare.push(input);
        }
    }

    /// Records the worker's result for batch `id`: one analysis per analysed frame, or why it
    /// failed. A result with another count is recorded as a failure.
    pub fn complete(&mut self, id: u64, result: Result<Vec<R>, String>) -> Completion {
        let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.id == id && p.outcome.is_none())
        else {
            return Completion::Dropped;
        };
        p.outcome = Some(match result {
            Ok(r) if r.len() != p.analysed => Err(format!(
                "the inference worker returned {} results for a batch of {} analysed frames",
                r.len(),
                p.analysed
            )),
            other => other,
        });
        Completion::Recorded
    }

    /// Batch `id` will not be analysed (the worker could not take it in time): its frames are
    /// late and follow the failure policy.
    pub fn refuse(&mut self, id: u64, why: String) {
        if let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.id == id && p.outcome.is_none())
        {
            p.outcome = Some(Err(why));
            p.late = true;
        }
    }

    /// Every batch still waiting for the worker whose oldest frame arrived `cutoff` or more before
    /// `now` fails with `why` (a live deadline). Returns the number of frames that expired.
    pub fn expire(&mut self, now: Instant, cutoff: Duration, why: &str) -> usize {
        let mut n = 0;
        for p in self.pending.iter_mut().filter(|p| p.outcome.is_none()) {
            if p.frames
                .first()
                .is_some_and(|h| now.saturating_duration_since(h.arrived) >= cutoff)
            {
                p.outcome = Some(Err(why.to_string()));
                p.late = true;
                n += p.frames.len();
            }
        }
        n
    }

    /// When the oldest batch still at the worker reaches `cutoff` (its deadline), if any.
    pub fn next_deadline(&self, cutoff: Duration) -> Option<Instant> {
        self.pending
            .iter()
            .find(|p| p.outcome.is_none())
            .and_then(|p| p.frames.first())
            .map(|h| h.arrived + cutoff)
    }

    /// Batches taken and not yet let out (at the worker, or resolved behind an older one).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Frames held in taken batches.
    pub fn pending_frames(&self) -> usize {
        self.pending.iter().map(|p| p.frames.len()).sum()
    }

    /// The oldest batch, if its outcome is known, with one entry per frame.
    pub fn pop_resolved(&mut self) -> Option<Resolved<F, R>> {
        if self.pending.front().is_none_or(|p| p.outcome.is_none()) {
            return None;
        }
        let p = self.pending.pop_front()?;
        let outcome = p.outcome.expect("checked above").map(|analyses| {
            let mut it = analyses.into_iter();
            p.frames
                .iter()
                .map(|h| if h.analyse { it.next() } else { None })
                .collect()
        });
        Some(Resolved {
            frames: p.frames,
            outcome,
            late: p.late,
        })
    }

    /// Drops every held frame and waiting batch (a flush); later results of those batches are
    /// dropped by [`complete`](Self::complete). Returns the frames dropped.
    pub fn flush(&mut self) -> usize {
        let n = self.collecting.len() + self.pending_frames();
        self.collecting.clear();
        self.slots = 0;
        self.pending.clear();
        self.seen = 0;
        n
    }

    /// Nothing held and nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.collecting.is_empty() && self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type B = Batcher<u32, &'static str, Vec<u32>>;

    /// Pushes frame `n`, writing it into its slot when analysed.
    fn push(b: &mut B, n: u32, now: Instant) -> bool {
        b.push(n, now, |f, slot, input: &mut Vec<u32>| {
            // A reused input may hold stale slots beyond the ones filled: they are overwritten.
            assert!(input.len() >= slot, "slots are filled in order");
            input.truncate(slot);
            input.push(*f);
            Ok::<(), ()>(())
        })
        .unwrap()
    }

    fn frames(r: &Resolved<u32, &'static str>) -> Vec<u32> {
        r.frames.iter().map(|h| h.frame).collect()
    }

    #[test]
    fn full_batches_go_out_and_come_back_in_order() {
        let t = Instant::now();
        let mut b = B::new(2, 1);
        assert!(!push(&mut b, 0, t));
        assert!(push(&mut b, 1, t));
        let j0 = b.take_batch().unwrap();
        assert_eq!((j0.id, j0.analysed, j0.frames), (0, 2, 2));
        assert_eq!(j0.input, vec![0, 1]);
        push(&mut b, 2, t);
        push(&mut b, 3, t);
        let j1 = b.take_batch().unwrap();
        assert_eq!(j1.input, vec![2, 3], "a fresh input for the next batch");
        // The second result comes first: nothing leaves until the first is known.
        assert_eq!(b.complete(j1.id, Ok(vec!["c", "d"])), Completion::Recorded);
        assert!(b.pop_resolved().is_none());
        b.complete(j0.id, Ok(vec!["a", "b"]));
        let r0 = b.pop_resolved().unwrap();
        assert_eq!(frames(&r0), vec![0, 1]);
        assert_eq!(r0.outcome, Ok(vec![Some("a"), Some("b")]));
        let r1 = b.pop_resolved().unwrap();
        assert_eq!(r1.outcome, Ok(vec![Some("c"), Some("d")]));
        assert!(b.pop_resolved().is_none() && b.is_empty());
    }

    #[test]
    fn detect_interval_gives_slots_to_every_nth_frame() {
        let t = Instant::now();
        let mut b = B::new(2, 3);
        let full: Vec<bool> = (0..6).map(|n| push(&mut b, n, t)).collect();
        // Frames 0 and 3 are analysed: the batch is full at frame 3.
        assert_eq!(full, vec![false, false, false, true, true, true]);
        let j = b.take_batch().unwrap();
        assert_eq!((j.analysed, j.frames), (2, 6));
        assert_eq!(j.input, vec![0, 3]);
        b.complete(j.id, Ok(vec!["p0", "p3"]));
        let r = b.pop_resolved().unwrap();
        assert_eq!(
            r.outcome,
            Ok(vec![Some("p0"), None, None, Some("p3"), None, None])
        );
        // The interval restarts after a flush.
        push(&mut b, 6, t);
        b.flush();
        push(&mut b, 7, t);
        assert_eq!(b.take_batch().unwrap().input, vec![7]);
    }

    #[test]
    fn a_result_of_the_wrong_length_is_a_failure() {
        let t = Instant::now();
        let mut b = B::new(3, 1);
        for n in 0..3 {
            push(&mut b, n, t);
        }
        let j = b.take_batch().unwrap();
        b.complete(j.id, Ok(vec!["only one"]));
        let r = b.pop_resolved().unwrap();
        assert_eq!(frames(&r), vec![0, 1, 2], "every frame still leaves");
        let e = r.outcome.unwrap_err();
        assert!(e.contains("1 results") && e.contains("3 analysed"), "{e}");
        // Too many is as wrong as too few.
        for n in 3..6 {
            push(&mut b, n, t);
        }
        let j = b.take_batch().unwrap();
        b.complete(j.id, Ok(vec!["a", "b", "c", "d"]));
        assert!(b.pop_resolved().unwrap().outcome.is_err());
    }

    #[test]
    fn failures_are_kept_in_order() {
        let t = Instant::now();
        let mut b = B::new(1, 1);
        push(&mut b, 0, t);
        let j0 = b.take_batch().unwrap();
        push(&mut b, 1, t);
        let j1 = b.take_batch().unwrap();
        b.complete(j1.id, Err("boom".into()));
        assert!(b.pop_resolved().is_none());
        b.complete(j0.id, Ok(vec!["x"]));
        assert_eq!(b.pop_resolved().unwrap().outcome, Ok(vec![Some("x")]));
        let r = b.pop_resolved().unwrap();
        assert_eq!(r.outcome, Err("boom".into()));
        assert!(!r.late);
    }

    #[test]
    fn deadlines_expire_the_oldest_batches_and_their_late_results_are_dropped() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut b = B::new(1, 1);
        push(&mut b, 0, t0);
        let j0 = b.take_batch().unwrap();
        push(&mut b, 1, t0 + ms(30));
        let j1 = b.take_batch().unwrap();
        let cutoff = ms(100);
        assert_eq!(b.next_deadline(cutoff), Some(t0 + cutoff));
        assert_eq!(b.expire(t0 + ms(99), cutoff, "late"), 0);
        assert_eq!(b.expire(t0 + ms(100), cutoff, "late"), 1);
        assert_eq!(b.next_deadline(cutoff), Some(t0 + ms(130)));
        let r = b.pop_resolved().unwrap();
        assert!(r.late && r.outcome == Err("late".into()));
        // The late result of the expired batch is dropped; the next one still counts.
        assert_eq!(b.complete(j0.id, Ok(vec!["a"])), Completion::Dropped);
        assert_eq!(b.complete(j1.id, Ok(vec!["b"])), Completion::Recorded);
        assert_eq!(b.pop_resolved().unwrap().outcome, Ok(vec![Some("b")]));
        assert_eq!(b.next_deadline(cutoff), None);
    }

    #[test]
    fn a_refused_batch_is_late() {
        let t = Instant::now();
        let mut b = B::new(1, 1);
        push(&mut b, 0, t);
        let j = b.take_batch().unwrap();
        b.refuse(j.id, "queue full".into());
        let r = b.pop_resolved().unwrap();
        assert!(r.late);
        assert_eq!(r.outcome, Err("queue full".into()));
    }

    #[test]
    fn flush_drops_everything_and_later_results() {
        let t = Instant::now();
        let mut b = B::new(2, 1);
        push(&mut b, 0, t);
        push(&mut b, 1, t);
        let j = b.take_batch().unwrap();
        push(&mut b, 2, t);
        assert_eq!(b.flush(), 3);
        assert!(b.is_empty());
        assert_eq!(b.complete(j.id, Ok(vec!["a", "b"])), Completion::Dropped);
        assert!(b.pop_resolved().is_none());
        // Ids keep growing: a new batch never takes the id of a flushed one.
        push(&mut b, 3, t);
        assert!(b.take_batch().unwrap().id > j.id);
    }

    #[test]
    fn a_fill_error_holds_nothing() {
        let mut b = B::new(2, 1);
        let e = b.push(9, Instant::now(), |_, _, _| Err("cannot map"));
        assert_eq!(e, Err("cannot map"));
        assert_eq!(b.collecting(), 0);
        assert!(b.take_batch().is_none());
    }

    #[test]
    fn inputs_are_recycled() {
        let t = Instant::now();
        let mut b: Batcher<u32, (), Vec<u32>> = Batcher::new(1, 1);
        b.push(0, t, |_, _, i: &mut Vec<u32>| {
            i.reserve(1000);
            i.push(0);
            Ok::<(), ()>(())
        })
        .unwrap();
        let mut j = b.take_batch().unwrap();
        j.input.clear();
        let cap = j.input.capacity();
        b.recycle(j.input);
        b.push(1, t, |_, _, _| Ok::<(), ()>(())).unwrap();
        // The input being collected now was made before the recycle; the one after it is reused.
        let _ = b.take_batch().unwrap();
        b.push(2, t, |_, _, _| Ok::<(), ()>(())).unwrap();
        assert_eq!(b.take_batch().unwrap().input.capacity(), cap);
    }

    #[test]
    fn the_policy_follows_on_failure() {
        let ok: Result<(), String> = Ok(());
        let err: Result<(), String> = Err("why".into());
        assert_eq!(Plan::for_outcome(&ok, OnFailure::Error), Plan::Regions);
        assert_eq!(
            Plan::for_outcome(&err, OnFailure::RedactFrame),
            Plan::WholeFrame("why".into())
        );
        assert_eq!(
            Plan::for_outcome(&err, OnFailure::Passthrough),
            Plan::Passthrough("why".into())
        );
        assert_eq!(
            Plan::for_outcome(&err, OnFailure::Error),
            Plan::Error("why".into())
        );
        assert_eq!(Plan::Error("why".into()).failure(), Some("why"));
        assert_eq!(Plan::Regions.failure(), None);
    }
}
