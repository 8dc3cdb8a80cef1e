//! Which dead-lettered records a `list` or `replay` applies to. All given conditions must hold.

use chrono::{DateTime, Utc};
use clap::Args;

use super::backlog::{DlqEntry, STAGES};

#[derive(Args, Clone, Default)]
pub struct Filter {
    /// Only these stages' DLQs (repeatable; default: every stage).
    #[arg(long = "stage", value_parser = clap::builder::PossibleValuesParser::new(STAGES))]
    stages: Vec<String>,
    /// Only records with this error code (e.g. SFJ-1003; repeatable).
    #[arg(long = "code")]
    codes: Vec<String>,
    /// Only records with this key.
    #[arg(long)]
    key: Option<String>,
    /// Only records dead-lettered at or after this time (RFC 3339, or an age like 30m, 2h, 1d).
    #[arg(long, value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Only records dead-lettered before this time (RFC 3339, or an age like 30m, 2h, 1d).
    #[arg(long, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// At most this many records (oldest first).
    #[arg(long)]
    count: Option<usize>,
}

impl Filter {
    pub fn stages(&self) -> Vec<&str> {
        if self.stages.is_empty() {
            STAGES.to_vec()
        } else {
            self.stages.iter().map(String::as_str).collect()
        }
    }

    fn matches(&self, e: &DlqEntry) -> bool {
        (self.codes.is_empty()
            || e.code
                .as_ref()
                .is_some_and(|c| self.codes.iter().any(|x| x.eq_ignore_ascii_case(c))))
            && self.key.as_ref().is_none_or(|k| e.key.as_ref() == Some(k))
            && self
                .since
                .is_none_or(|t| e.dead_lettered_at.is_some_and(|at| at >= t))
            && self
                .until
                .is_none_or(|t| e.dead_lettered_at.is_some_and(|at| at < t))
    }

    pub fn apply(&self, entries: Vec<DlqEntry>) -> Vec<DlqEntry> {
        entries.into_iter().filter(|e| self.matches(e)).collect()
    }

    pub fn apply_ref<'a>(&self, entries: &'a [DlqEntry]) -> Vec<&'a DlqEntry> {
        entries.iter().filter(|e| self.matches(e)).collect()
    }

    /// Keeps the `count` oldest.
    pub fn truncate<T: std::borrow::Borrow<DlqEntry>>(&self, entries: &mut Vec<T>) {
        entries.sort_by_key(|e| {
            (
                e.borrow().dead_lettered_at,
                e.borrow().partition,
                e.borrow().offset,
            )
        });
        if let Some(n) = self.count {
            entries.truncate(n);
        }
    }
}

/// RFC 3339, or an age (`45s`, `30m`, `2h`, `1d`, `1w`) meaning that long ago.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("'{s}' is neither RFC 3339 nor an age like 30m, 2h, 1d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 604_800,
        _ => {
            return Err(format!(
                "'{s}': unknown unit '{unit}' (use s, m, h, d or w)"
            ));
        }
    };
    Ok(Utc::now() - chrono::Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_ages() {
        assert_eq!(
            parse_time("2026-11-27T10:00:00Z").unwrap().to_rfc3339(),
            "2026-11-27T10:00:00+00:00"
        );
        let two_hours = Utc::now() - parse_time("2h").unwrap();
        assert!((7190..=7210).contains(&two_hours.num_seconds()));
        assert!(parse_time("2 hours").unwrap_err().contains("unknown unit"));
        assert!(parse_time("yesterday").is_err());
    }
}
