//! The CEL variables one record's expressions see: `record`, `event`, and the changed-field
//! map `changed("X")` reads, in a child scope of a per-thread root context.
//!
//! Values are built as the interpreter's own values ([`val`], `Box<dyn Val>`) straight from the
//! record's JSON and added with `add_variable_as_val`. Through `add_variable` a serde serializer
//! ran per field; through `add_variable_from_value` each map was built as a `cel::Value`, then
//! cloned and rebuilt entry by entry into the interpreter's map (perf: a twentieth of the
//! transformer's CPU). The values are the same as serde gives (`same_values_as_serde`).

use std::collections::HashMap;

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::Val;
use serde_json::Value;

use super::{EventType, SourceRecord};
use crate::mapping::ScopeNeeds;

/// A value of the interpreter's, owning its data (the root context lives for the thread).
type CelVal = Box<dyn Val + 'static>;

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
    let fields: HashMap<CelMapKey, CelVal> = if needs.whole_record {
        record
            .fields
            .iter()
            .map(|(k, v)| (key(k), val(v)))
            .collect()
    } else {
        // A field the record lacks stays absent, so reading it fails as before.
        needs
            .fields
            .iter()
            .filter_map(|f| Some((key(f), val(record.fields.get(f)?))))
            .collect()
    };
    scope.add_variable_as_val("record", map(fields));
    if needs.event {
        scope.add_variable_as_val("event", event(record));
    }
    if needs.changed {
        scope.add_variable_as_val(CHANGED_VAR, changed(record));
    }
    scope
}

fn event(record: &SourceRecord) -> CelVal {
    let opt = |s: &Option<String>| {
        s.as_deref()
            .map_or_else(|| Box::new(CelNull) as CelVal, text)
    };
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

fn changed(record: &SourceRecord) -> CelVal {
    let yes = || Box::new(CelBool::from(true)) as CelVal;
    let names: HashMap<CelMapKey, CelVal> = match record.event {
        EventType::Create | EventType::Undelete => record
            .fields
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| (key(k), yes()))
            .collect(),
        EventType::Update | EventType::Delete => record
            .changed
            .iter()
            .chain(&record.nulled)
            .flat_map(|f| [f.as_str(), f.split('.').next().unwrap_or(f)])
            .map(|f| (key(f), yes()))
            .collect(),
    };
    map(names)
}

fn key(name: &str) -> CelMapKey<'static> {
    CelMapKey::String(CelString::from(name.to_string()))
}

fn text(s: &str) -> CelVal {
    Box::new(CelString::from(s.to_string()))
}

fn map(entries: HashMap<CelMapKey<'static>, CelVal>) -> CelVal {
    Box::new(CelMap::from(entries))
}

/// A JSON value as CEL sees it — as serde would give it: non-negative integers are `uint`,
/// negative ones `int`, the rest `double`.
pub(super) fn val(v: &Value) -> CelVal {
    match v {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Box::new(CelUInt::from(u)),
            (None, Some(i), _) => Box::new(CelInt::from(i)),
            (None, None, f) => Box::new(CelDouble::from(f.unwrap_or(f64::NAN))),
        },
        Value::String(s) => text(s),
        Value::Array(items) => Box::new(CelList::from(items.iter().map(val).collect::<Vec<_>>())),
        Value::Object(obj) => map(obj.iter().map(|(k, v)| (key(k), val(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use cel::Value as Cel;
    use serde_json::json;

    use super::*;

    /// The interpreter's value as a `cel::Value`, as expressions' results come out.
    fn value(v: &CelVal) -> Cel {
        Cel::try_from(&**v).expect("a plain value converts")
    }

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
        assert!(same(&value(&val(&v)), &cel::to_value(&v).unwrap()));
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
            &value(&event(&record)),
            &cel::to_value(&expected_event).unwrap()
        ));
        let expected_changed = json!({
            "StageName": true, "BillingAddress.City": true, "BillingAddress": true, "Amount": true,
        });
        assert!(same(
            &value(&changed(&record)),
            &cel::to_value(&expected_changed).unwrap()
        ));
    }
}
