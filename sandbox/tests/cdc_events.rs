//! Change Data Capture without the gRPC layer: schemas, bitmaps (every field position, the
//! documented example), payloads, overflow, merging and gap events.

use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::types::Value;
use chrono::Utc;
use proptest::prelude::*;
use serde_json::json;
use sfjira_sandbox::clock::SandboxClock;
use sfjira_sandbox::salesforce::cdc::log::StoredEvent;
use sfjira_sandbox::salesforce::cdc::{
    ALL_CHANGE_EVENTS, BusSettings, ChangeEventSchema, EventBus, bitmap,
};
use sfjira_sandbox::salesforce::changes::{
    ChangeSink, ChangeType, CommittedTransaction, RecordChange,
};
use sfjira_sandbox::salesforce::meta::{CompoundComponent, FieldMeta, FieldType, ObjectMeta};

const ADDRESS_PARTS: [&str; 8] = [
    "Street",
    "City",
    "State",
    "PostalCode",
    "Country",
    "Latitude",
    "Longitude",
    "GeocodeAccuracy",
];

fn address(fields: &mut Vec<FieldMeta>, prefix: &str) {
    let mut compound = FieldMeta::new(&format!("{prefix}Address"), FieldType::Address);
    compound.components = ADDRESS_PARTS
        .iter()
        .map(|p| CompoundComponent {
            name: p.to_string(),
            field: format!("{prefix}{p}"),
        })
        .collect();
    fields.push(compound);
    for p in ADDRESS_PARTS {
        let ty = if p.starts_with('L') {
            FieldType::Double
        } else {
            FieldType::String
        };
        let mut f = FieldMeta::new(&format!("{prefix}{p}"), ty);
        f.compound_parent = Some(format!("{prefix}Address"));
        fields.push(f);
    }
}

fn object(name: &str, prefix: &str, fields: Vec<FieldMeta>) -> ObjectMeta {
    ObjectMeta {
        name: name.into(),
        label: name.into(),
        key_prefix: prefix.into(),
        custom: name.ends_with("__c"),
        fields,
    }
}

/// Fixtures shaped like the org's catalog: several types, compound fields, a custom object.
fn objects() -> Vec<ObjectMeta> {
    let mut account = vec![
        FieldMeta::new("Id", FieldType::Id),
        FieldMeta::new("Name", FieldType::String),
        FieldMeta::new("Type", FieldType::Picklist),
    ];
    address(&mut account, "Billing");
    account.push(FieldMeta::new("AnnualRevenue", FieldType::Currency));
    address(&mut account, "Shipping");
    account.push(FieldMeta::new("NumberOfEmployees", FieldType::Int));
    account.push(FieldMeta::new("LastModifiedDate", FieldType::DateTime));
    let mut contact = vec![
        FieldMeta::new("Id", FieldType::Id),
        FieldMeta::new("LastName", FieldType::String),
    ];
    address(&mut contact, "Mailing");
    contact.push(FieldMeta::new("Birthdate", FieldType::Date));
    contact.push(FieldMeta::new("DoNotCall", FieldType::Boolean));
    let mut wide = vec![FieldMeta::new("Id", FieldType::Id)];
    wide.extend((0..70).map(|i| FieldMeta::new(&format!("F{i}__c"), FieldType::String)));
    vec![
        object("Account", "001", account),
        object("Contact", "003", contact),
        object("Escalation__c", "a01", wide),
    ]
}

/// Every name a bitmap can carry for `schema`: top-level fields and compound parts.
fn all_names(s: &ChangeEventSchema) -> Vec<String> {
    let mut out = Vec::new();
    for f in &s.fields {
        out.push(f.name.clone());
        out.extend(
            f.components
                .iter()
                .map(|c| format!("{}.{}", f.name, c.name)),
        );
    }
    out
}

/// The org's real catalog plus the fixtures above.
fn every_object() -> Vec<ObjectMeta> {
    let mut all = sfjira_sandbox::salesforce::catalog::objects();
    all.extend(objects());
    all
}

#[test]
fn every_field_position_round_trips() {
    for meta in every_object() {
        let s = ChangeEventSchema::build(&meta).unwrap();
        for name in all_names(&s) {
            let bits = bitmap::encode(&s.schema, &[&name]).unwrap();
            assert_eq!(
                bitmap::decode(&s.schema, &bits).unwrap(),
                std::slice::from_ref(&name),
                "{} {bits:?}",
                meta.name
            );
        }
    }
}

proptest! {
    #[test]
    fn any_field_set_round_trips(object in any::<prop::sample::Index>(), picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..40)) {
        let all = every_object();
        let s = ChangeEventSchema::build(&all[object.index(all.len())]).unwrap();
        let names = all_names(&s);
        let mut chosen: Vec<String> = picks.iter().map(|i| names[i.index(names.len())].clone()).collect();
        chosen.sort_by_key(|n| names.iter().position(|m| m == n));
        chosen.dedup();
        let bits = bitmap::encode(&s.schema, &chosen).unwrap();
        // Schema order is position order: top-level fields, compound parts after their parent.
        prop_assert_eq!(bitmap::decode(&s.schema, &bits).unwrap(), chosen);
    }
}

/// The documented example (reference §2.4), standalone from an Avro schema as
/// salesforce-source will use it: `['0x650004E0','4-0x10','7-0x06']`.
#[test]
fn documented_example_decodes() {
    let address = r#"{"type":"record","name":"Address","fields":[{"name":"Street","type":["null","string"]},{"name":"City","type":["null","string"]},{"name":"State","type":["null","string"]},{"name":"PostalCode","type":["null","string"]},{"name":"Country","type":["null","string"]}]}"#;
    let mut fields = vec![r#"{"name":"ChangeEventHeader","type":"string"}"#.to_string()];
    for i in 1..31 {
        fields.push(match i {
            4 => format!(r#"{{"name":"BillingAddress","type":["null",{address}]}}"#),
            7 => r#"{"name":"ShippingAddress","type":["null","Address"]}"#.to_string(),
            26 => r#"{"name":"LastModifiedDate","type":["null","long"]}"#.to_string(),
            _ => format!(r#"{{"name":"F{i}","type":["null","string"]}}"#),
        });
    }
    let json = format!(
        r#"{{"type":"record","name":"AccountChangeEvent","namespace":"com.sforce.eventbus","fields":[{}]}}"#,
        fields.join(",")
    );
    let schema = Schema::parse_str(&json).unwrap();
    let names = bitmap::decode(&schema, &["0x650004E0", "4-0x10", "7-0x06"]).unwrap();
    assert!(names.contains(&"LastModifiedDate".to_string()));
    assert!(names.contains(&"BillingAddress.Country".to_string()));
    assert!(names.contains(&"ShippingAddress.City".to_string()));
    assert!(names.contains(&"ShippingAddress.State".to_string()));
    assert_eq!(names.len(), 11);
    assert_eq!(
        bitmap::encode(&schema, &names).unwrap(),
        ["0x650004E0", "4-0x10", "7-0x06"]
    );
}

fn bus(threshold: usize) -> Arc<EventBus> {
    let settings = BusSettings {
        overflow_threshold: threshold,
        ..BusSettings::default()
    };
    Arc::new(EventBus::new(&objects(), settings, SandboxClock::real_time()).unwrap())
}

fn create(entity: &str, id: &str, name: &str) -> RecordChange {
    let field = if entity == "Account" {
        "Name"
    } else {
        "LastName"
    };
    RecordChange {
        entity: entity.into(),
        record_id: id.into(),
        change_type: ChangeType::Create,
        changed_fields: vec![field.into()],
        nulled_fields: vec![],
        values: json!({ field: name }).as_object().unwrap().clone(),
    }
}

fn txn(changes: Vec<RecordChange>) -> CommittedTransaction {
    CommittedTransaction {
        changes,
        commit_timestamp: Utc::now(),
        commit_user: "005000000000001AAA".into(),
        change_origin: "com/salesforce/api/rest/64.0;client=sfjira".into(),
    }
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    let Value::Record(fields) = v else {
        panic!("not a record: {v:?}")
    };
    &fields
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1
}

fn strings(v: &Value) -> Vec<String> {
    let Value::Array(items) = v else {
        panic!("not an array")
    };
    items
        .iter()
        .map(|i| match i {
            Value::String(s) => s.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Decodes an event with the schema its id names.
fn decode(bus: &EventBus, e: &StoredEvent) -> (Value, Arc<ChangeEventSchema>) {
    let schema = bus.schema_by_id(&e.schema_id).unwrap();
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema.schema)
        .build()
        .unwrap();
    (reader.read_value(&mut &e.payload[..]).unwrap(), schema)
}

fn header(v: &Value) -> (String, String, Vec<String>, i32) {
    let h = field(v, "ChangeEventHeader");
    let Value::Enum(_, t) = field(h, "changeType") else {
        panic!()
    };
    let Value::String(entity) = field(h, "entityName") else {
        panic!()
    };
    let Value::Int(seq) = field(h, "sequenceNumber") else {
        panic!()
    };
    (
        entity.clone(),
        t.clone(),
        strings(field(h, "recordIds")),
        *seq,
    )
}

#[test]
fn overflow_yields_header_only_gap_overflow_per_entity() {
    let bus = bus(3);
    let mut changes: Vec<RecordChange> = (0..5)
        .map(|i| create("Account", &format!("001{i:015}"), &format!("A{i}")))
        .collect();
    changes.extend((0..2).map(|i| create("Contact", &format!("003{i:015}"), &format!("C{i}"))));
    bus.committed(txn(changes));
    let events = bus.read(ALL_CHANGE_EVENTS, 0, 100).unwrap();
    let headers: Vec<_> = events.iter().map(|e| header(&decode(&bus, e).0)).collect();
    let kinds: Vec<(&str, &str)> = headers
        .iter()
        .map(|(e, t, _, _)| (e.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("Account", "CREATE"),
            ("Account", "CREATE"),
            ("Account", "CREATE"),
            ("Account", "GAP_OVERFLOW"),
            ("Contact", "GAP_OVERFLOW")
        ]
    );
    for (i, (_, t, ids, seq)) in headers.iter().enumerate() {
        assert_eq!(
            *seq,
            i as i32 + 1,
            "sequence numbers run 1.. in the transaction"
        );
        assert_eq!(ids.is_empty(), t == "GAP_OVERFLOW");
    }
    let (overflow, _) = decode(&bus, &events[3]);
    let h = field(&overflow, "ChangeEventHeader");
    assert!(strings(field(h, "changedFields")).is_empty());
    assert_eq!(
        field(&overflow, "Name"),
        &Value::Union(0, Box::new(Value::Null))
    );
    assert_eq!(bus.retained("/data/AccountChangeEvent"), 4);
    assert_eq!(bus.retained("/data/ContactChangeEvent"), 1);
}

#[test]
fn identical_changes_merge_and_gaps_can_be_injected() {
    let bus = bus(100_000);
    let mut a = create("Account", "001000000000000001", "Same");
    a.change_type = ChangeType::Update;
    let mut b = a.clone();
    b.record_id = "001000000000000002".into();
    bus.committed(txn(vec![a, b]));
    bus.inject_gap(
        "Contact",
        ChangeType::GapUpdate,
        vec!["003000000000000009".into()],
        "005000000000001AAA",
    )
    .unwrap();
    assert!(
        bus.inject_gap("Contact", ChangeType::Update, vec![], "005000000000001AAA")
            .is_err()
    );
    let events = bus.read(ALL_CHANGE_EVENTS, 0, 100).unwrap();
    assert_eq!(events.len(), 2);
    let (entity, t, ids, _) = header(&decode(&bus, &events[0]).0);
    assert_eq!(
        (entity.as_str(), t.as_str(), ids.len()),
        ("Account", "UPDATE", 2)
    );
    let (entity, t, ids, _) = header(&decode(&bus, &events[1]).0);
    assert_eq!((entity.as_str(), t.as_str()), ("Contact", "GAP_UPDATE"));
    assert_eq!(ids, ["003000000000000009"]);
}

#[test]
fn payload_carries_changed_values_dates_and_compound_parts() {
    let bus = bus(100_000);
    let mut c = create("Account", "001000000000000001", "Acme");
    c.change_type = ChangeType::Update;
    c.changed_fields = vec![
        "Name".into(),
        "BillingCity".into(),
        "LastModifiedDate".into(),
        "NumberOfEmployees".into(),
    ];
    c.nulled_fields = vec!["Type".into()];
    c.values.insert("BillingCity".into(), json!("Paris"));
    c.values.insert("BillingState".into(), json!("IDF"));
    c.values.insert(
        "LastModifiedDate".into(),
        json!("2024-01-02T03:04:05.000+0000"),
    );
    c.values.insert("NumberOfEmployees".into(), json!(12));
    c.values.insert("AnnualRevenue".into(), json!(5.0));
    bus.committed(txn(vec![c]));
    let events = bus.read("/data/AccountChangeEvent", 0, 10).unwrap();
    let (v, schema) = decode(&bus, &events[0]);
    let h = field(&v, "ChangeEventHeader");
    let changed = bitmap::decode(&schema.schema, &strings(field(h, "changedFields"))).unwrap();
    assert_eq!(
        changed,
        [
            "Name",
            "Type",
            "BillingAddress.City",
            "NumberOfEmployees",
            "LastModifiedDate"
        ]
    );
    assert_eq!(
        bitmap::decode(&schema.schema, &strings(field(h, "nulledFields"))).unwrap(),
        ["Type"]
    );
    assert_eq!(
        field(&v, "Name"),
        &Value::Union(1, Box::new(Value::String("Acme".into())))
    );
    assert_eq!(
        field(&v, "LastModifiedDate"),
        &Value::Union(1, Box::new(Value::Long(1_704_164_645_000)))
    );
    assert_eq!(
        field(&v, "AnnualRevenue"),
        &Value::Union(0, Box::new(Value::Null)),
        "unchanged fields are null"
    );
    let Value::Union(1, billing) = field(&v, "BillingAddress") else {
        panic!("no BillingAddress")
    };
    assert_eq!(
        field(billing, "City"),
        &Value::Union(1, Box::new(Value::String("Paris".into())))
    );
    assert_eq!(
        field(billing, "State"),
        &Value::Union(0, Box::new(Value::Null)),
        "unchanged part"
    );
}
