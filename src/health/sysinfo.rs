//! Process facts from `/proc` (no unsafe, no extra crate).

/// Resident set size in bytes, from `/proc/self/status` (`VmRSS`). `None` off Linux.
pub fn rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rss_is_reported_on_linux() {
        let rss = super::rss_bytes().expect("VmRSS on Linux");
        assert!(rss > 64 * 1024, "implausible RSS {rss}");
    }
}
