//! The CEL variables one record's expressions see: `record`, `event`, and the changed-field
//! map `changed("X")` reads, in a child scope of a per-thread root context.
//!
//! Values are built as CEL values directly from the record's JSON ([`cel_value`]) rather than
//! through `Context::add_variable`'s serde serializer: the same values (`same_values_as_serde`
//! checks), without a serializer state machine per field — building the scope was a fifth of
//! applying the demo mapping to a record.

use std::collections::HashMap;
use std::sync::Arc;

use cel::Value as Cel;
use cel::objects::{Key, Map};
use serde_json::Value;

use super::{EventType, SourceRecord};
use crate::mapping::ScopeNeeds;

thread_local! {
    /// CEL's standard library, built once per thread: building a context
    /// costs more than evaluating a whole mapping, so each record only adds a child scope.
    pub(super) static ROOT_CONTEXT: cel::Context<'static, 'static> = cel::Context::default();
}

/// Name of the variable `changed("X")` reads (the compiler rewrites each call to
/// `("X" in __sfjira_changed)`): the record's changed fields and the compound fields they
/// belong to, as a map from name to true.
pub(crate) const CHANGED_VAR: &str = "__sfjira_changed";

/// The per-record variables: `record`, `event` and what `changed()` reads — as much of each
/// as the flows' expressions read (`needs`): converting values into CEL costs more than
/// evaluating the expressions.
pub(super) fn record_scope<'r>(
    root: &'r cel::Context<'static, 'static>,
    record: &SourceRecord,
    needs: &ScopeNeeds,
) -> cel::Context<'r, 'static> {
    let mut scope = root.new_inner_scope();
    let fields: HashMap<Key, Cel> = if needs.whole_record {
        record
            .fields
            .iter()
            .map(|(k, v)| (key(k), cel_value(v)))
            .collect()
    } else {
        // A field the record lacks stays absent, so reading it fails as before.
        needs
            .fields
            .iter()
            .filter_map(|f| Some((key(f), cel_value(record.fields.get(f)?))))
            .collect()
    };
    scope.add_variable_from_value("record", map(fields));
    if needs.event {
        scope.add_variable_from_value("event", event(record));
    }
    if needs.changed {
        scope.add_variable_from_value(CHANGED_VAR, changed(record));
    }
    scope
}

fn event(record: &SourceRecord) -> Cel {
    let text = |s: &str| Cel::String(Arc::new(s.to_string()));
    let opt = |s: &Option<String>| s.as_deref().map_or(Cel::Null, text);
    let kind = match record.event {
        EventType::Create => "create",
        EventType::Update => "update",
        EventType::Delete => "delete",
        EventType::Undelete => "undelete",
    };
    map(HashMap::from([
        (key("type"), text(kind)),
        (key("source"), text(&record.source)),
        (key("id"), text(&record.id)),
        (key("key"), opt(&record.key)),
        (key("actor"), opt(&record.actor)),
        (key("commit_time"), text(&record.commit_time.to_rfc3339())),
    ]))
}

fn changed(record: &SourceRecord) -> Cel {
    let names: HashMap<Key, Cel> = match record.event {
        EventType::Create | EventType::Undelete => record
            .fields
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| (key(k), Cel::Bool(true)))
            .collect(),
        EventType::Update | EventType::Delete => record
            .changed
            .iter()
            .chain(&record.nulled)
            .flat_map(|f| [f.as_str(), f.split('.').next().unwrap_or(f)])
            .map(|f| (key(f), Cel::Bool(true)))
            .collect(),
    };
    map(names)
}

fn key(name: &str) -> Key {
    Key::String(Arc::new(name.to_string()))
}

fn map(entries: HashMap<Key, Cel>) -> Cel {
    Cel::Map(Map {
        map: Arc::new(entries),
    })
}

/// A JSON value as CEL sees it — as serde would give it: non-negative integers are `uint`,
/// negative ones `int`, the rest `double`.
pub(super) fn cel_value(v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Cel::UInt(u),
            (None, Some(i), _) => Cel::Int(i),
            (None, None, f) => Cel::Float(f.unwrap_or(f64::NAN)),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(cel_value).collect())),
        Value::Object(obj) => map(obj.iter().map(|(k, v)| (key(k), cel_value(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Equal and of the same CEL type all the way down (CEL's `==` takes `uint 1 == int 1`).
    fn same(a: &Cel, b: &Cel) -> bool {
        if std::mem::discriminant(a) != std::mem::discriminant(b) {
            return false;
        }
        match (a, b) {
            (Cel::List(x), Cel::List(y)) => {
                x.len() == y.len() && x.iter().zip(y.iter()).all(|(x, y)| same(x, y))
            }
            (Cel::Map(x), Cel::Map(y)) => {
                x.map.len() == y.map.len()
                    && x.map
                        .iter()
                        .all(|(k, v)| y.map.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    #[test]
    fn same_values_as_serde() {
        let v = json!({
            "text": "Acme – “quoted”",
            "zero": 0, "int": -7, "big": u64::MAX, "min": i64::MIN,
            "float": 250000.0, "neg_float": -1.5,
            "yes": true, "none": null,
            "list": [1, "two", [3.5], {"k": null}],
            "nested": {"a": {"b": [true]}},
        });
        assert!(same(&cel_value(&v), &cel::to_value(&v).unwrap()));
        // The check itself tells the types apart.
        assert!(!same(&Cel::UInt(1), &Cel::Int(1)));
    }

    #[test]
    fn event_and_changed_as_serde_would_give_them() {
        let record: SourceRecord = serde_json::from_value(json!({
            "source": "salesforce.Opportunity", "id": "006A", "event": "update",
            "version": "7", "commit_time": "2026-11-27T12:00:00Z",
            "changed": ["StageName", "BillingAddress.City"], "nulled": ["Amount"],
            "actor": "005X", "fields": {"StageName": "Closed Won"}
        }))
        .unwrap();
        let expected_event = json!({
            "type": "update", "source": "salesforce.Opportunity", "id": "006A", "key": null,
            "actor": "005X", "commit_time": "2026-11-27T12:00:00+00:00",
        });
        assert!(same(
            &event(&record),
            &cel::to_value(&expected_event).unwrap()
        ));
        let expected_changed = json!({
            "StageName": true, "BillingAddress.City": true, "BillingAddress": true, "Amount": true,
        });
        assert!(same(
            &changed(&record),
            &cel::to_value(&expected_changed).unwrap()
        ));
    }
}
