//! Jira's duration strings (`3w 2d 4h 30m`), used by worklog `timeSpent` and time-tracking
//! estimates. The site's defaults apply: 8-hour days, 5-day weeks
//! (https://support.atlassian.com/jira-cloud-administration/docs/configure-time-tracking/).

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 8 * HOUR;
const WEEK: i64 = 5 * DAY;

/// Parses `#w #d #h #m` (any subset, in any order, separated by spaces); a bare number counts
/// as minutes (the default time unit). `None` when malformed or zero.
pub fn parse(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(minutes) = s.parse::<i64>() {
        return (minutes > 0).then_some(minutes * MINUTE);
    }
    let mut total = 0i64;
    for part in s.split_whitespace() {
        let (num, unit) = part.split_at(part.len() - 1);
        let n: f64 = num.parse().ok()?;
        let unit_secs = match unit {
            "w" => WEEK,
            "d" => DAY,
            "h" => HOUR,
            "m" => MINUTE,
            _ => return None,
        };
        total += (n * unit_secs as f64).round() as i64;
    }
    (total > 0).then_some(total)
}

/// Formats seconds as Jira does (`1d 2h`, `30m`).
pub fn format(mut secs: i64) -> String {
    let mut parts = Vec::new();
    for (unit, size) in [("w", WEEK), ("d", DAY), ("h", HOUR), ("m", MINUTE)] {
        if secs >= size {
            parts.push(format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if parts.is_empty() {
        "0m".to_string()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(parse("1d 2h"), Some(DAY + 2 * HOUR));
        assert_eq!(parse("30m"), Some(1800));
        assert_eq!(parse("90"), Some(5400));
        assert_eq!(parse("2x"), None);
        assert_eq!(parse("0m"), None);
        assert_eq!(format(DAY + 2 * HOUR), "1d 2h");
        assert_eq!(format(3 * 3600 + 20 * 60), "3h 20m");
    }
}
