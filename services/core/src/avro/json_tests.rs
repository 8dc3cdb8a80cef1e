//! [`JsonReader`] against apache-avro's decoder followed by [`to_json`]: the same JSON for
//! every value, and an error wherever the body is not a whole value.

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use serde_json::json;

use super::*;

/// Every type the reader covers, a named record used twice (once by reference), a recursive
/// record, an enum reused by reference, and a nested namespace.
const ALL_TYPES: &str = r#"{
  "type": "record", "name": "Everything", "namespace": "test.outer",
  "fields": [
    {"name": "n", "type": "null"},
    {"name": "b", "type": "boolean"},
    {"name": "i", "type": "int"},
    {"name": "l", "type": "long"},
    {"name": "f", "type": "float"},
    {"name": "d", "type": "double"},
    {"name": "bytes", "type": "bytes"},
    {"name": "s", "type": "string"},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "local_ms", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
    {"name": "local_us", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
    {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
    {"name": "color_again", "type": "Color"},
    {"name": "maybe", "type": ["null", "string", "long", {"type": "array", "items": "Color"}]},
    {"name": "inner", "type": {"type": "record", "name": "Inner", "namespace": "test.inner",
      "fields": [{"name": "x", "type": "long"}, {"name": "tags", "type": {"type": "map", "values": "string"}}]}},
    {"name": "inner_again", "type": ["null", "test.inner.Inner"]},
    {"name": "tree", "type": {"type": "record", "name": "Tree", "fields": [
      {"name": "label", "type": "string"},
      {"name": "children", "type": {"type": "array", "items": "Tree"}}]}},
    {"name": "last", "type": "string"}
  ]
}"#;

fn to_avro_datum(schema: &Schema, value: Value) -> Vec<u8> {
    let mut out = Vec::new();
    GenericDatumWriter::builder(schema)
        .build()
        .unwrap()
        .write_value(&mut out, value)
        .unwrap();
    out
}

fn from_avro_datum(schema: &Schema, body: &[u8]) -> Value {
    GenericDatumReader::builder(schema)
        .build()
        .unwrap()
        .read_value(&mut &body[..])
        .unwrap()
}

fn all_types() -> Schema {
    Schema::parse_str(ALL_TYPES).unwrap()
}

fn tree(label: &str, children: Vec<Value>) -> Value {
    Value::Record(vec![
        ("label".into(), Value::String(label.into())),
        ("children".into(), Value::Array(children)),
    ])
}

fn inner(x: i64, tags: &[(&str, &str)]) -> Value {
    Value::Record(vec![
        ("x".into(), Value::Long(x)),
        (
            "tags".into(),
            Value::Map(
                tags.iter()
                    .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                    .collect(),
            ),
        ),
    ])
}

/// One value of [`ALL_TYPES`]; `seed` varies every field, through the edges of each type.
fn everything(seed: i64) -> Value {
    let longs = [
        0,
        1,
        -1,
        63,
        -64,
        64,
        8191,
        -8193,
        i64::MAX,
        i64::MIN,
        1_795_780_800_123,
    ];
    let l = longs[seed as usize % longs.len()];
    let floats = [0.0, -1.5, f64::NAN, f64::INFINITY, 1e300, 3.25];
    let d = floats[seed as usize % floats.len()];
    let days = [0, 20_784, -719_162, 100_000_000, i32::MAX, i32::MIN][seed as usize % 6];
    let maybe = match seed % 4 {
        0 => Value::Union(0, Box::new(Value::Null)),
        1 => Value::Union(1, Box::new(Value::String("é\"\\\n".repeat(seed as usize)))),
        2 => Value::Union(2, Box::new(Value::Long(l / -3))),
        _ => Value::Union(
            3,
            Box::new(Value::Array(vec![Value::Enum(2, "BLUE".into()); 200])),
        ),
    };
    Value::Record(vec![
        ("n".into(), Value::Null),
        ("b".into(), Value::Boolean(seed % 2 == 0)),
        ("i".into(), Value::Int((l % i64::from(i32::MAX)) as i32)),
        ("l".into(), Value::Long(l)),
        ("f".into(), Value::Float(d as f32)),
        ("d".into(), Value::Double(d)),
        (
            "bytes".into(),
            Value::Bytes((0..seed * 40).map(|x| x as u8).collect()),
        ),
        ("s".into(), Value::String("x".repeat(seed as usize * 70))),
        ("day".into(), Value::Date(days)),
        ("ms".into(), Value::TimestampMillis(l)),
        ("us".into(), Value::TimestampMicros(l)),
        ("local_ms".into(), Value::LocalTimestampMillis(l / -7)),
        ("local_us".into(), Value::LocalTimestampMicros(l / 5)),
        (
            "color".into(),
            Value::Enum(
                (seed % 3) as u32,
                ["RED", "GREEN", "BLUE"][seed as usize % 3].into(),
            ),
        ),
        ("color_again".into(), Value::Enum(0, "RED".into())),
        ("maybe".into(), maybe),
        ("inner".into(), inner(l, &[("a", "1"), ("b", "two")])),
        (
            "inner_again".into(),
            if seed % 2 == 0 {
                Value::Union(0, Box::new(Value::Null))
            } else {
                Value::Union(1, Box::new(inner(l.wrapping_neg(), &[])))
            },
        ),
        (
            "tree".into(),
            tree(
                "root",
                vec![tree("a", vec![tree("a1", vec![])]), tree("b", vec![])],
            ),
        ),
        ("last".into(), Value::String(format!("end {seed}"))),
    ])
}

fn read_all(reader: &JsonReader, body: &[u8]) -> Result<serde_json::Value, ReadError> {
    let mut rest = body;
    let v = reader.read(&mut rest)?;
    assert!(rest.is_empty(), "{} bytes left", rest.len());
    Ok(v)
}

#[test]
fn same_json_both_ways() {
    let schema = all_types();
    let reader = JsonReader::for_schema(&schema).expect("every type here is covered");
    for seed in 0..24 {
        let value = everything(seed);
        let body = to_avro_datum(&schema, value);
        let tree = from_avro_datum(&schema, &body);
        let expected = to_json(tree);
        assert_eq!(read_all(&reader, &body).unwrap(), expected, "seed {seed}");
    }
}

#[test]
fn dates_and_timestamps_read_as_iso() {
    assert_eq!(to_json(Value::Date(20_784)), json!("2026-11-27"));
    assert_eq!(
        to_json(Value::TimestampMillis(1_795_780_800_123)),
        json!("2026-11-27T12:00:00.123Z")
    );
    assert_eq!(
        to_json(Value::TimestampMicros(1_795_780_800_123_456)),
        json!("2026-11-27T12:00:00.123Z")
    );
    assert_eq!(
        to_json(Value::Union(1, Box::new(Value::String("x".into())))),
        json!("x")
    );
}

#[test]
fn a_date_no_calendar_has_does_not_convert() {
    for days in [100_000_000, i32::MAX] {
        // Text, not a number an epoch-milliseconds reading would turn into 1970-01-02.
        let v = to_json(Value::Date(days));
        assert!(
            v.as_str().is_some_and(|s| s.contains("out of range")),
            "{v}"
        );
    }
}

/// sfjira's own record schemas (the Jira events, the probe) all get a reader.
#[test]
fn sfjiras_schemas_are_covered() {
    for file in [
        "jira/JiraIssueEvent.avsc",
        "jira/JiraCommentEvent.avsc",
        "jira/JiraWorklogEvent.avsc",
        "sfjira/Probe.avsc",
        "commands/Command.avsc",
    ] {
        let path = format!("{}/../../schemas/{file}", env!("CARGO_MANIFEST_DIR"));
        let schema = Schema::parse_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(JsonReader::for_schema(&schema).is_some(), "{file}");
    }
}

#[test]
fn types_it_leaves_to_the_tree_get_no_reader() {
    for t in [
        r#"{"type": "fixed", "name": "F", "size": 4}"#,
        r#"{"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}"#,
        r#"{"type": "string", "logicalType": "uuid"}"#,
        r#"{"type": "int", "logicalType": "time-millis"}"#,
        r#"{"type": "long", "logicalType": "timestamp-nanos"}"#,
    ] {
        let schema = Schema::parse_str(&format!(
            r#"{{"type": "record", "name": "R", "fields": [{{"name": "ok", "type": "string"}}, {{"name": "x", "type": {t}}}]}}"#
        ))
        .unwrap();
        assert!(JsonReader::for_schema(&schema).is_none(), "{t}");
    }
}

/// Writers may split an array or map into several blocks, and give a block a negative count
/// followed by its size in bytes; apache-avro writes one block, so these bytes are made here.
#[test]
fn arrays_and_maps_in_several_blocks() {
    let schema = Schema::parse_str(
        r#"{"type": "record", "name": "R", "fields": [
            {"name": "a", "type": {"type": "array", "items": "long"}},
            {"name": "m", "type": {"type": "map", "values": "boolean"}}]}"#,
    )
    .unwrap();
    let reader = JsonReader::for_schema(&schema).unwrap();
    // a: [1, 2] then a block of -1 item (size 1 byte) holding 3, then the end;
    // m: {"k": true} then {"j": false} in a second block.
    let body = [
        4, 2, 4, 1, 2, 6, 0, //
        2, 2, b'k', 1, 2, 2, b'j', 0, 0,
    ];
    let v = read_all(&reader, &body).unwrap();
    assert_eq!(v, json!({"a": [1, 2, 3], "m": {"k": true, "j": false}}));
    assert_eq!(v, to_json(from_avro_datum(&schema, &body)));
}

#[test]
fn every_shorter_body_is_cut_short() {
    let schema = all_types();
    let reader = JsonReader::for_schema(&schema).unwrap();
    let body = to_avro_datum(&schema, everything(5));
    for len in 0..body.len() {
        assert_eq!(
            reader.read(&mut &body[..len]),
            Err(ReadError::CutShort),
            "{len} of {} bytes",
            body.len()
        );
    }
}

#[test]
fn bytes_that_are_no_value_of_the_schema_are_invalid() {
    let schema = Schema::parse_str(
        r#"{"type": "record", "name": "R", "fields": [
            {"name": "u", "type": ["null", "string"]},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A"]}},
            {"name": "b", "type": "boolean"},
            {"name": "s", "type": "string"},
            {"name": "a", "type": {"type": "array", "items": "null"}}]}"#,
    )
    .unwrap();
    let reader = JsonReader::for_schema(&schema).unwrap();
    let cases: [(&[u8], &str); 6] = [
        (&[4], "union branch 2"),
        (&[0, 2], "enum index 1"),
        (&[0, 0, 7], "7 is not a boolean"),
        (&[0, 0, 1, 1], "negative length"),
        (&[0, 0, 1, 2, 0xff], "not UTF-8"),
        (&[0, 0, 1, 0, 0xfe, 0xff, 0xff, 0xff, 0x0f], "a block of"),
    ];
    for (body, why) in cases {
        match reader.read(&mut &body[..]) {
            Err(ReadError::Invalid(msg)) => assert!(msg.contains(why), "{msg} / {why}"),
            other => panic!("{body:?}: {other:?}"),
        }
    }
    let too_long = [0xffu8; 11];
    assert!(matches!(
        JsonReader::for_schema(&Schema::Long)
            .unwrap()
            .read(&mut &too_long[..]),
        Err(ReadError::Invalid(_))
    ));
}

/// A recursive schema lets a body nest as deep as its bytes allow; past the limit it is an
/// invalid body, not a stack overflow.
#[test]
fn nesting_past_the_limit_is_invalid() {
    let schema = Schema::parse_str(
        r#"{"type": "record", "name": "Node", "fields": [
            {"name": "next", "type": ["null", "Node"]}]}"#,
    )
    .unwrap();
    let reader = JsonReader::for_schema(&schema).unwrap();
    // Each level: union branch 1 (the Node); the last: branch 0 (null).
    let nested = |levels: usize| {
        let mut body = vec![2u8; levels];
        body.push(0);
        body
    };
    // 60 Nodes, each a record and a union: 120 levels, under the limit. (Built by hand:
    // apache-avro's own decoder overflows a debug build's stack on this body.)
    let mut expected = json!({"next": null});
    for _ in 0..60 {
        expected = json!({ "next": expected });
    }
    assert_eq!(read_all(&reader, &nested(60)).unwrap(), expected);
    match reader.read(&mut &nested(100_000)[..]) {
        Err(ReadError::Invalid(msg)) => assert!(msg.contains("nested deeper"), "{msg}"),
        other => panic!("{other:?}"),
    }
}
