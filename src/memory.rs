//! Gives back the memory only start-up used, once the daemon has settled.
//!
//! Start-up runs code that never runs again (config layers, the store's recovery, TLS
//! set-up, the CLI), and the kernel maps the executable in 64 KiB runs around every page
//! touched ("fault-around"): an idle daemon had ~6 MiB of its own executable resident,
//! nearly all of it (docs/PERFORMANCE.md, "Idle RSS"). [`SETTLE`] after the daemon is
//! ready (its tasks have run their first rounds by then), the executable's read-only
//! mappings are dropped from the process with `madvise(MADV_DONTNEED)`: the pages stay in
//! the page cache, and what the daemon still runs comes back on its next touch (a minor
//! fault, no I/O while the page is cached). The log line is written first: written
//! after, the logger's code would be what comes back. Then glibc returns the heap pages
//! start-up freed (`malloc_trim`).
//!
//! The release runs on a thread of its own, which then waits for shutdown. Run on a
//! tokio worker, the way back (the task's completion, the scheduler, the worker's park)
//! paged ~0.8 MiB of code back in that an idle daemon, whose tasks all wait on events,
//! never runs again; a thread that ended at once paged in ~0.5 MiB with its exit.
//!
//! Only mappings that are safe to drop are touched: backed by the executable itself
//! (mapped at exec, never unmapped while the process lives), not writable, and without a
//! single private (copy-on-write) page, so every page equals the file and dropping it
//! loses nothing. The relocated read-only data (RELRO) has such pages and is kept.

use std::io;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// How long after "bbedge ready" the start-up pages are given back: every task has run
/// its first rounds by then (the LED's first pattern, the rooms' set-up, the tool's or an
/// operator's first requests), so what comes back afterwards is what an idle daemon runs.
pub const SETTLE: Duration = Duration::from_secs(10);

/// What [`release_startup_pages`] gave back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Mappings dropped.
    pub mappings: usize,
    /// Resident bytes they held.
    pub bytes: u64,
}

/// One mapping from `/proc/self/smaps`, as far as this module needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    perms: String,
    path: String,
    rss_kib: u64,
    anonymous_kib: u64,
}

impl Mapping {
    /// Dropping its pages loses nothing (see the module's text).
    fn droppable(&self, exe: &str) -> bool {
        self.path == exe
            && self.perms.starts_with('r')
            && self.perms.get(1..2) == Some("-")
            && self.perms.ends_with('p')
            && self.anonymous_kib == 0
            && self.rss_kib > 0
            && self.end > self.start
    }
}

/// Parses `/proc/<pid>/smaps`. Lines it does not understand are skipped.
fn parse(smaps: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some((a, b)) = first.split_once('-') {
            let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            else {
                continue;
            };
            let perms = words.next().unwrap_or_default().to_owned();
            // offset, device, inode, then the path (which may hold spaces).
            let path = words.skip(3).collect::<Vec<_>>().join(" ");
            out.push(Mapping {
                start,
                end,
                perms,
                path,
                rss_kib: 0,
                // Unknown until its line is read: treated as written.
                anonymous_kib: u64::MAX,
            });
            continue;
        }
        let kib = || words.clone().next().and_then(|n| n.parse::<u64>().ok());
        match (first, out.last_mut()) {
            ("Rss:", Some(m)) => m.rss_kib = kib().unwrap_or(0),
            // Unknown: treat as written, so the mapping is kept.
            ("Anonymous:", Some(m)) => m.anonymous_kib = kib().unwrap_or(u64::MAX),
            _ => {}
        }
    }
    out
}

/// Gives back what only start-up used [`SETTLE`] from now, on a thread of its own (see
/// the module's text), unless the returned [`Settling`] is dropped first. Logs what it
/// does; a failure leaves everything as it was.
pub fn release_when_settled() -> Settling {
    let (cancel, cancelled) = mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("bbedge-settle".into())
        .spawn(move || {
            // Nothing is ever sent: the wait ends at SETTLE, or early when the sender
            // is dropped (shutdown), and then nothing is released.
            if cancelled.recv_timeout(SETTLE) == Err(RecvTimeoutError::Timeout) {
                release_and_trim();
                // Parked until shutdown: the thread's exit (its thread-locals, the
                // closure's drop) would page ~0.5 MiB of code back in.
                let _ = cancelled.recv();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(operation = "memory.release", error = %e, "cannot start the release thread; start-up pages kept");
    }
    Settling { _cancel: cancel }
}

/// Keeps the release of [`release_when_settled`] pending; dropping it cancels it.
#[derive(Debug)]
pub struct Settling {
    _cancel: mpsc::Sender<()>,
}

fn release_and_trim() {
    match release_startup_pages(|r| {
        tracing::info!(
            operation = "memory.release",
            mappings = r.mappings,
            bytes = r.bytes,
            "releasing start-up pages"
        );
    }) {
        Ok(_) => trim_heap(),
        Err(e) => tracing::warn!(
            operation = "memory.release",
            error = %e,
            "start-up pages kept"
        ),
    }
}

/// Drops the executable's start-up pages (see the module's text); `before` is told
/// what will be dropped before anything is. Linux only; an error leaves everything as
/// it was.
pub fn release_startup_pages(before: impl FnOnce(&Released)) -> io::Result<Released> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let exe = exe.to_string_lossy();
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    // The same ranges must be in `maps` too: under an emulator (qemu-user) `maps` is
    // the guest's and `smaps` may be the host's, and then nothing is touched.
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let listed: Vec<(usize, usize)> = parse(&maps).iter().map(|m| (m.start, m.end)).collect();
    let droppable: Vec<Mapping> = parse(&smaps)
        .into_iter()
        .filter(|m| m.droppable(&exe) && listed.contains(&(m.start, m.end)))
        .collect();
    let released = Released {
        mappings: droppable.len(),
        bytes: droppable.iter().fold(0u64, |sum, m| {
            sum.saturating_add(m.rss_kib.saturating_mul(1024))
        }),
    };
    before(&released);
    for m in &droppable {
        drop_pages(m.start, m.end - m.start)?;
    }
    Ok(released)
}

/// Returns the heap's free pages to the kernel (glibc's `malloc_trim`; elsewhere
/// nothing). Start-up frees more than an idle daemon allocates again.
#[allow(unsafe_code)]
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator holds free; it is
    // thread-safe (it takes each arena's lock) and takes no pointer from us.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `madvise(MADV_DONTNEED)` on a read-only, unmodified, file-backed private mapping.
#[allow(unsafe_code)]
fn drop_pages(start: usize, len: usize) -> io::Result<()> {
    // SAFETY: `start..start + len` is a whole mapping of the executable, taken from
    // /proc/self/smaps: mapped at exec and never unmapped while the process runs, not
    // writable, and with no private page (`Anonymous: 0`), so every page holds exactly
    // the file's bytes. MADV_DONTNEED on such a mapping only unmaps pages; the next
    // access maps the same bytes again from the file. No Rust object lives there.
    let r = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0100000 r--p 00000000 fd:01 123 /usr/bin/bbedge
Size:               1024 kB
Rss:                 800 kB
Anonymous:             0 kB
55d0a0100000-55d0a0500000 r-xp 00100000 fd:01 123 /usr/bin/bbedge
Size:               4096 kB
Rss:                4000 kB
Anonymous:             0 kB
55d0a0500000-55d0a0550000 r--p 00500000 fd:01 123 /usr/bin/bbedge
Rss:                 320 kB
Anonymous:           300 kB
55d0a0550000-55d0a0553000 rw-p 00550000 fd:01 123 /usr/bin/bbedge
Rss:                  12 kB
Anonymous:            12 kB
7f0000000000-7f0000100000 r-xp 00000000 fd:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 900 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0 
Rss:                 100 kB
Anonymous:           100 kB
7f0000400000-7f0000401000 r--p 00000000 fd:01 9 /tmp/with space
Rss:                   4 kB
garbage line
";

    #[test]
    fn only_the_executables_unmodified_read_only_mappings_are_dropped() {
        let maps = parse(SMAPS);
        assert_eq!(maps.len(), 7);
        assert_eq!(maps[6].path, "/tmp/with space");
        let dropped: Vec<_> = maps
            .iter()
            .filter(|m| m.droppable("/usr/bin/bbedge"))
            .map(|m| (m.perms.as_str(), m.rss_kib))
            .collect();
        // Not the RELRO mapping (private pages), not the writable one, not libc.
        assert_eq!(dropped, vec![("r--p", 800), ("r-xp", 4000)]);
    }

    #[test]
    fn a_mapping_whose_anonymous_line_is_missing_or_unreadable_is_kept() {
        let missing = parse("55d0a0000000-55d0a0100000 r--p 00000000 fd:01 1 /x\nRss: 8 kB\n");
        assert!(!missing[0].droppable("/x"), "unknown means written");
        let odd = parse(
            "55d0a0000000-55d0a0100000 r--p 00000000 fd:01 1 /x\nRss: 8 kB\nAnonymous: ? kB\n",
        );
        assert!(!odd[0].droppable("/x"), "unknown means written");
        let clean = parse(
            "55d0a0000000-55d0a0100000 r--p 00000000 fd:01 1 /x\nRss: 8 kB\nAnonymous: 0 kB\n",
        );
        assert!(clean[0].droppable("/x"));
    }

    #[test]
    fn releasing_keeps_the_process_working_and_lowers_its_resident_file_pages() {
        let before = file_kib();
        let mut told = None;
        let r = release_startup_pages(|r| told = Some(*r)).expect("madvise on our own executable");
        assert_eq!(told, Some(r), "told before, the same numbers");
        // Code runs on: the pages come back as they are used.
        let v: Vec<String> = (0..100).map(|i| format!("{i}")).collect();
        assert_eq!(v.concat().len(), 190);
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        if smaps.contains("/qemu-") {
            // qemu-user: /proc/self/smaps and RssFile are the emulator's, and madvise
            // is the emulator's to pass on or ignore.
            eprintln!("emulated: released {r:?}; RSS not checked");
            return;
        }
        assert!(r.mappings > 0, "the test binary has read-only mappings");
        assert!(file_kib() < before, "RssFile {} -> {}", before, file_kib());
    }

    fn file_kib() -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").expect("status");
        s.lines()
            .find_map(|l| l.strip_prefix("RssFile:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("RssFile")
    }
}
