//! The store's own task: reports failures once per interval with a count, writes a
//! token file that could not be written, and brings a failing database back without a
//! restart: first a probe write and flush; if that fails (sled keeps the first I/O
//! error and fails every later operation, so after ENOSPC it stays poisoned even once
//! space is back), the database is closed and opened again, verified like at start.

use super::health::Part;
use super::{open, Error, Store, Tree};
use crate::error::ErrorCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs until cancelled: every `interval` a report and a recovery attempt; `on_fault`
/// is called with the fault state at start and whenever it changes.
pub async fn run(
    store: Store,
    interval: Duration,
    on_fault: impl Fn(bool) + Send + 'static,
    token: CancellationToken,
) {
    let mut fault = store.health().subscribe();
    on_fault(*fault.borrow_and_update());
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            r = fault.changed() => {
                if r.is_err() { return }
                on_fault(*fault.borrow_and_update());
            }
            _ = tick.tick() => tend(&store, interval).await,
        }
    }
}

/// One round: report, write the token file, recover the database.
pub async fn tend(store: &Store, interval: Duration) {
    let (failed, last) = store.health().take_unreported();
    if failed > 0 {
        tracing::warn!(
            operation = "store.failures",
            failed,
            interval_s = interval.as_secs(),
            last_error = last.as_deref().unwrap_or(""),
            "storage writes failed in the last interval"
        );
    }
    if store.keep().dirty() {
        let _ = store.commit_keep();
    }
    if store.health().db_failing() {
        recover(store).await;
    }
}

/// Probe, then reopen if the probe fails. Returns whether the database works now.
pub async fn recover(store: &Store) -> bool {
    if probe(store).await.is_ok() {
        return true;
    }
    let s = store.clone();
    let reopened = tokio::task::spawn_blocking(move || reopen(&s))
        .await
        .unwrap_or_else(|e| Err(Error::Check(format!("the reopen task failed: {e}"))));
    match reopened {
        Ok(()) => probe(store).await.is_ok(),
        Err(e) => {
            store.health().failed(Part::Db, "store.reopen", &e);
            tracing::debug!(operation = "store.reopen", code = e.code(), error = %e, "cannot reopen the database yet");
            false
        }
    }
}

/// A small write and a flush: succeeds once storage works again.
async fn probe(store: &Store) -> Result<(), Error> {
    store.put(Tree::Meta, b"probe", &crate::protocol::now_ms())?;
    store.flush().await.map(|_| ())
}

/// Closes the database and opens it again (verified by the checker when there is one).
/// While this runs, store operations fail with [`Error::Reopening`].
fn reopen(store: &Store) -> Result<(), Error> {
    let inner = &store.inner;
    // sled's file lock goes with the last handle: drop ours before opening again. The
    // lock is not held while opening (that may take the checker's whole timeout).
    let old = inner
        .db
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    drop(old);
    let (db, quarantined) = open::open_db(&inner.path, inner.cache_bytes, inner.checker.as_ref())?;
    *inner
        .db
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(db);
    inner.health.reopened();
    if quarantined.is_some() {
        inner.health.quarantined();
    }
    tracing::info!(operation = "store.reopen", path = %inner.path.display(), "database reopened");
    Ok(())
}
