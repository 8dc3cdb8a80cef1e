//! What a flow's expressions read of a record: which `record.<Field>`s, whether they use the
//! record as a whole (`"X" in record`, `record["X"]`), `event`, or `changed()`. The engine
//! builds each record's CEL scope from this, so a 40-field record whose flows read three fields
//! converts three values into CEL rather than forty — converting the scope was most of the
//! mapping's cost per record (`cargo run --release --example stage_cost`).
//!
//! The scan is over the expression text and errs on the side of reading more: a name inside a
//! string literal only adds a field; anything it cannot name means the whole record.

/// What one flow needs in the CEL scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeNeeds {
    /// The `record.<Field>` names read; ignored when `whole_record`.
    pub fields: Vec<String>,
    /// Some expression uses `record` other than as `record.<Field>`.
    pub whole_record: bool,
    pub event: bool,
    pub changed: bool,
}

impl ScopeNeeds {
    /// The needs of all `sources` (the flow's expression texts) together.
    pub fn of<'a>(sources: impl IntoIterator<Item = &'a str>) -> ScopeNeeds {
        let mut needs = ScopeNeeds::default();
        for src in sources {
            let (fields, whole) = record_fields(src);
            needs.whole_record |= whole;
            for f in fields {
                if !needs.fields.contains(&f) {
                    needs.fields.push(f);
                }
            }
            needs.event |= !identifier_uses(src, "event").is_empty();
            needs.changed |= identifier_uses(src, "changed")
                .iter()
                .any(|&end| src[end..].trim_start().starts_with('('));
        }
        needs
    }

    /// Adds `other`'s needs to these (several flows read one record).
    pub fn merge(&mut self, other: &ScopeNeeds) {
        self.whole_record |= other.whole_record;
        self.event |= other.event;
        self.changed |= other.changed;
        for f in &other.fields {
            if !self.fields.contains(f) {
                self.fields.push(f.clone());
            }
        }
    }
}

/// The `record.<Field>` names `expr` mentions, and whether it also uses `record` in a way that
/// names no field (`record["Salesforce ID"]`, `"X" in record`, `size(record)`).
pub fn record_fields(expr: &str) -> (Vec<String>, bool) {
    let mut fields = Vec::new();
    let mut whole = false;
    for end in identifier_uses(expr, "record") {
        let rest = &expr[end..];
        let name: String = rest
            .strip_prefix('.')
            .unwrap_or_default()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after_name = rest.strip_prefix('.').map_or(rest, |r| &r[name.len()..]);
        let called = !name.is_empty() && after_name.trim_start().starts_with('(');
        // `record.all(k, …)`, `record.size()`: a macro or method over the whole map.
        if name.is_empty() || called {
            whole = true;
        } else if !fields.contains(&name) {
            fields.push(name);
        }
    }
    (fields, whole)
}

/// Where each use of the identifier `name` in `expr` ends (not as part of a longer identifier,
/// nor as a member `x.name`).
fn identifier_uses(expr: &str, name: &str) -> Vec<usize> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    expr.match_indices(name)
        .filter(|(i, _)| !expr[..*i].ends_with(|c: char| ident(c) || c == '.'))
        .map(|(i, m)| i + m.len())
        .filter(|&end| !expr[end..].starts_with(ident))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_fields_read_and_notices_whole_record_uses() {
        let n = ScopeNeeds::of([
            r#"record.StageName == "Closed Won" && record.Amount >= 100000.0"#,
            r#""salesforce:Account:" + record.AccountId"#,
            "has(record.WhatId) && record.WhatId.startsWith(\"006\")",
            "records.x + my_record.y + a.record.z",
        ]);
        assert_eq!(n.fields, ["StageName", "Amount", "AccountId", "WhatId"]);
        assert!(!n.whole_record && !n.event && !n.changed);

        let n = ScopeNeeds::of([r#""Salesforce ID" in record && record["Salesforce ID"] != null"#]);
        assert!(n.whole_record);
        let n = ScopeNeeds::of(["size(record) > 2"]);
        assert!(n.whole_record);
        let n = ScopeNeeds::of([r#"record.exists(k, k == "X")"#]);
        assert!(n.whole_record);

        let n = ScopeNeeds::of([r#"event.commit_time"#, r#"changed ("Amount")"#]);
        assert!(n.event && n.changed && !n.whole_record);
        let n = ScopeNeeds::of([r#"record.eventual + record.changed_by"#]);
        assert!(!n.event && !n.changed);
        assert_eq!(n.fields, ["eventual", "changed_by"]);
    }

    #[test]
    fn merging_adds_up() {
        let mut a = ScopeNeeds::of(["record.A"]);
        a.merge(&ScopeNeeds::of(["record.B || record.A", "event.id"]));
        assert_eq!(a.fields, ["A", "B"]);
        assert!(a.event && !a.whole_record);
    }
}
