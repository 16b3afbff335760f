//! Whether storage works: every store write reports here. The first failure is logged
//! at once, the rest are counted and reported once per interval by
//! [`super::maintain`]; a successful flush (or token-file write) clears the fault.

use super::Error;
use crate::error::ErrorCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::{watch, Notify};

/// Which part of the storage failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The sled database (snapshots, outbox, schedule, meta).
    Db,
    /// The token file ([`super::keep`]).
    Keep,
    /// The upstream outbox refusing frames (a failed write, or the free-space reserve):
    /// set by a refusal, cleared by the next frame it takes.
    Outbox,
}

/// Shared failure state of one store.
#[derive(Debug)]
pub struct Health {
    db_failing: AtomicBool,
    keep_failing: AtomicBool,
    outbox_failing: AtomicBool,
    /// Set for good when a database was quarantined while running.
    quarantined: AtomicBool,
    total: AtomicU64,
    reopens: AtomicU64,
    unreported: AtomicU64,
    last: Mutex<Option<String>>,
    fault: watch::Sender<bool>,
    /// Told of every failure, so [`super::maintain`] needs no timer while all is well.
    attention: Notify,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            db_failing: AtomicBool::new(false),
            keep_failing: AtomicBool::new(false),
            outbox_failing: AtomicBool::new(false),
            quarantined: AtomicBool::new(false),
            total: AtomicU64::new(0),
            reopens: AtomicU64::new(0),
            unreported: AtomicU64::new(0),
            last: Mutex::new(None),
            fault: watch::channel(false).0,
            attention: Notify::new(),
        }
    }
}

impl Health {
    /// Records a failed operation. The first failure of an episode is logged here.
    pub fn failed(&self, part: Part, op: &'static str, e: &Error) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let text = format!("{} [{}]", e, e.code());
        if let Ok(mut last) = self.last.lock() {
            *last = Some(text);
        }
        let flag = self.flag(part);
        if flag.swap(true, Ordering::SeqCst) {
            self.unreported.fetch_add(1, Ordering::Relaxed);
        } else {
            tracing::warn!(
                operation = op,
                part = ?part,
                code = e.code(),
                error = %e,
                "storage write failed; storage_fault is set, further failures are counted and the store retries"
            );
        }
        self.publish();
        self.attention.notify_one();
    }

    /// Waits for the next failure: at once if one came since the last wait.
    pub async fn failure(&self) {
        self.attention.notified().await;
    }

    /// Whether [`super::maintain`] has work: a count to report, a database to recover.
    pub fn needs_tending(&self) -> bool {
        self.unreported.load(Ordering::Relaxed) > 0 || self.db_failing()
    }

    /// Records a successful commit of `part` (a flush, a token-file write).
    pub fn committed(&self, part: Part) {
        if self.flag(part).swap(false, Ordering::SeqCst) {
            tracing::info!(operation = "store.recovered", part = ?part, "storage writes work again");
            self.publish();
        }
    }

    /// Marks a quarantine that happened while running (shown until restart).
    pub fn quarantined(&self) {
        self.quarantined.store(true, Ordering::SeqCst);
        self.publish();
    }

    /// Whether the database's writes are failing.
    pub fn db_failing(&self) -> bool {
        self.db_failing.load(Ordering::SeqCst)
    }

    /// Whether anything is wrong with storage now.
    pub fn is_faulty(&self) -> bool {
        self.db_failing.load(Ordering::SeqCst)
            || self.keep_failing.load(Ordering::SeqCst)
            || self.outbox_failing.load(Ordering::SeqCst)
            || self.quarantined.load(Ordering::SeqCst)
    }

    /// Counts a reopen of the database by [`super::maintain`].
    pub fn reopened(&self) {
        self.reopens.fetch_add(1, Ordering::Relaxed);
    }

    /// Times the database was reopened after a failure since start.
    pub fn reopens(&self) -> u64 {
        self.reopens.load(Ordering::Relaxed)
    }

    /// Failed operations since start.
    pub fn failures_total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Failures not logged yet, and the last error; resets the count.
    pub fn take_unreported(&self) -> (u64, Option<String>) {
        let n = self.unreported.swap(0, Ordering::Relaxed);
        let last = self.last.lock().ok().and_then(|l| l.clone());
        (n, last)
    }

    /// Follows [`Self::is_faulty`].
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.fault.subscribe()
    }

    fn flag(&self, part: Part) -> &AtomicBool {
        match part {
            Part::Db => &self.db_failing,
            Part::Keep => &self.keep_failing,
            Part::Outbox => &self.outbox_failing,
        }
    }

    fn publish(&self) {
        let now = self.is_faulty();
        self.fault
            .send_if_modified(|f| std::mem::replace(f, now) != now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_set_the_fault_once_and_only_a_commit_of_that_part_clears_it() {
        let h = Health::default();
        let rx = h.subscribe();
        h.failed(Part::Db, "store.put", &Error::Full);
        h.failed(Part::Db, "store.flush", &Error::Full);
        h.failed(Part::Keep, "store.keep", &Error::Full);
        assert!(*rx.borrow() && h.is_faulty());
        assert_eq!(h.failures_total(), 3);
        let (n, last) = h.take_unreported();
        assert_eq!(n, 1, "the first failure of each part is logged at once");
        assert!(last.unwrap().contains("STORE_FULL"));
        assert_eq!(h.take_unreported().0, 0);
        h.committed(Part::Db);
        assert!(h.is_faulty(), "the token file still fails");
        h.committed(Part::Keep);
        assert!(!*rx.borrow() && !h.is_faulty());
        h.quarantined();
        h.committed(Part::Db);
        assert!(h.is_faulty(), "a quarantine stays until restart");
    }
}
