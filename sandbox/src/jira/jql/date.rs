//! JQL date values: the four absolute formats Jira accepts and relative periods, resolved
//! against "now" at evaluation time so that `updated >= -5m` means the same thing on every
//! page of a poll. Accepted formats are those Jira lists in its own error ("Valid formats
//! include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period
//! format e.g. '-5d', '4w 2d'.").
//!
//! Jira reads date literals in the caller's profile time zone with no offset allowed
//! (https://support.atlassian.com/jira-software-cloud/docs/jql-fields/); the sandbox's users all
//! have UTC as their zone, so literals are UTC.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DateSpec {
    Absolute(DateTime<Utc>),
    /// Offset from now (`-5m` = five minutes ago).
    Relative(Duration),
}

impl DateSpec {
    pub fn resolve(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            DateSpec::Absolute(t) => *t,
            DateSpec::Relative(d) => now + *d,
        }
    }
}

pub(crate) fn invalid_date_message(value: &str, field: &str) -> String {
    format!(
        "Date value '{value}' for field '{field}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', \
         'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
    )
}

/// Parses a date literal; `None` if it is in none of the accepted forms.
pub(crate) fn parse_date(s: &str) -> Option<DateSpec> {
    let t = s.trim();
    for fmt in ["%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(DateSpec::Absolute(dt.and_utc()));
        }
    }
    for fmt in ["%Y/%m/%d", "%Y-%m-%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(t, fmt) {
            return Some(DateSpec::Absolute(d.and_hms_opt(0, 0, 0)?.and_utc()));
        }
    }
    parse_period(t).map(DateSpec::Relative)
}

/// `-5m`, `+1h`, `2d`, `-1w`, `"4w 2d"`: an optional sign, then number+unit groups separated by
/// spaces; units w(eeks), d(ays), h(ours), m(inutes). A bare number is not a period.
fn parse_period(s: &str) -> Option<Duration> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let mut total = Duration::zero();
    let mut groups = 0;
    for part in rest.split_whitespace() {
        let unit = part.chars().last()?;
        let n: i64 = part[..part.len() - unit.len_utf8()].parse().ok()?;
        total += match unit {
            'w' => Duration::weeks(n),
            'd' => Duration::days(n),
            'h' => Duration::hours(n),
            'm' => Duration::minutes(n),
            _ => return None,
        };
        groups += 1;
    }
    (groups > 0).then_some(total * sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_formats() {
        assert_eq!(
            parse_date("-5m"),
            Some(DateSpec::Relative(Duration::minutes(-5)))
        );
        assert_eq!(
            parse_date("-1w"),
            Some(DateSpec::Relative(Duration::weeks(-1)))
        );
        assert_eq!(
            parse_date("4w 2d"),
            Some(DateSpec::Relative(Duration::weeks(4) + Duration::days(2)))
        );
        assert!(parse_date("2024/01/31 13:05").is_some());
        assert!(parse_date("2024-01-31").is_some());
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date("15"), None);
    }
}
