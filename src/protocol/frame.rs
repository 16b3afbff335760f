//! The envelope values bbedge fills in: message ids and timestamps (contract §d.1).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A fresh message id (UUID v4, as central recommends).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Now as RFC 3339 with millisecond precision and `Z`, like central's timestamps.
pub fn now_rfc3339() -> String {
    format_rfc3339(OffsetDateTime::now_utc())
}

/// Formats a time as `2026-06-20T19:00:00.000Z`.
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let ms = t.millisecond();
    let t = t.replace_nanosecond(u32::from(ms) * 1_000_000).unwrap_or(t);
    // Rfc3339 prints fractional seconds only as needed; force exactly three digits.
    let base = t
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned());
    format!("{}.{:03}Z", base.trim_end_matches('Z'), ms)
}

/// Now as Unix milliseconds (the `pong` timestamp).
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_millisecond_precision_and_z() {
        let t = time::macros::datetime!(2026-06-20 19:00:00.95 UTC);
        assert_eq!(format_rfc3339(t), "2026-06-20T19:00:00.950Z");
        let t = time::macros::datetime!(2026-06-20 19:00:00 UTC);
        assert_eq!(format_rfc3339(t), "2026-06-20T19:00:00.000Z");
    }
}
