//! Jira's timestamp formats. Every timestamp the REST API hands out is
//! `yyyy-MM-dd'T'HH:mm:ss.SSSZ` with a numeric offset (`2021-01-17T12:34:00.000+0000`,
//! reference §3.1); worklog `started` must arrive in exactly that form (reference §3.5), so the
//! parser here is strict on purpose: `Z`, a colon in the offset, or more than three fractional
//! digits are rejected as the real site rejects them.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};

/// Formats a sandbox instant the way Jira does (UTC, `+0000`).
pub fn jira_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

/// Parses `yyyy-MM-dd'T'HH:mm:ss.SSSZ` strictly (exactly three fractional digits, `±hhmm`).
pub fn parse_strict(s: &str) -> Option<DateTime<FixedOffset>> {
    // Shape check first: chrono's `%.3f` also accepts other fraction widths, and `%z` accepts
    // `+00:00`; Jira's Java `SimpleDateFormat` pattern does not.
    let b = s.as_bytes();
    if b.len() != 28 || b[19] != b'.' || !(b[23] == b'+' || b[23] == b'-') {
        return None;
    }
    if !b[20..23].iter().all(u8::is_ascii_digit) || !b[24..28].iter().all(u8::is_ascii_digit) {
        return None;
    }
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3f%z").ok()
}

/// RFC 3339 with milliseconds, for the admin API (not a Jira wire format).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_like_jira() {
        let t = Utc.with_ymd_and_hms(2021, 1, 17, 12, 34, 0).unwrap();
        assert_eq!(jira_timestamp(t), "2021-01-17T12:34:00.000+0000");
    }

    #[test]
    fn strict_parser_rejects_near_misses() {
        assert!(parse_strict("2021-01-17T12:34:00.000+0000").is_some());
        assert!(parse_strict("2021-01-17T12:34:00.000-0530").is_some());
        for bad in [
            "2021-01-17T12:34:00.000Z",
            "2021-01-17T12:34:00Z",
            "2021-01-17T12:34:00.000000000+0000",
            "2021-01-17T12:34:00.000+00:00",
            "2021-01-17T12:34:00+0000",
            "2021-01-17",
        ] {
            assert!(parse_strict(bad).is_none(), "{bad} should be rejected");
        }
    }
}
