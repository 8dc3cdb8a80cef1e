//! The JQL parser never panics: any input is either a query or one of Jira's error sentences.

use proptest::prelude::*;
use sfjira_sandbox::jira::jql::{FieldResolver, parse};

struct Site;
impl FieldResolver for Site {
    fn custom_field_id(&self, name: &str) -> Option<String> {
        (name == "Salesforce ID").then(|| "customfield_10050".to_string())
    }
}

/// Fragments that make near-valid queries more likely than random bytes would.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("project".to_string()),
        Just("updated".to_string()),
        Just("\"Salesforce ID\"".to_string()),
        Just("cf[10050]".to_string()),
        Just(" = ".to_string()),
        Just(" >= ".to_string()),
        Just(" ~ ".to_string()),
        Just(" in ".to_string()),
        Just(" not ".to_string()),
        Just(" is ".to_string()),
        Just(" empty".to_string()),
        Just(" AND ".to_string()),
        Just(" OR ".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just(",".to_string()),
        Just("-5m".to_string()),
        Just("\"2026/01/31 10:00\"".to_string()),
        Just("currentUser()".to_string()),
        Just(" ORDER BY key DESC".to_string()),
        "[a-zA-Z0-9 \"'\\\\\\[\\]()=!<>~,/*-]{0,6}",
        any::<char>().prop_map(|c| c.to_string()),
    ]
}

proptest! {
    #[test]
    fn parse_never_panics(parts in proptest::collection::vec(fragment(), 0..12)) {
        let jql = parts.concat();
        match parse(&jql, &Site) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.messages.is_empty() && e.messages.iter().all(|m| !m.is_empty())),
        }
    }
}
