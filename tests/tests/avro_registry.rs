//! Avro through the real registry and broker: the Confluent wire format, schemas registered
//! under `<topic>-value` with BACKWARD compatibility, evolution that old readers survive.

use std::time::Duration;

use apache_avro::Schema;
use apache_avro::types::Value;
use rdkafka::message::Message;
use sfjira_core::avro::AvroCodec;
use sfjira_core::errors::ErrorCode;
use sfjira_core::kafka::{IdempotentProducer, OutRecord};
use sfjira_tests::*;

const V1: &str = r#"{"type":"record","name":"Opportunity","namespace":"test.sfjira","fields":[
  {"name":"Id","type":"string"},{"name":"Amount","type":["null","double"],"default":null}]}"#;
const V2: &str = r#"{"type":"record","name":"Opportunity","namespace":"test.sfjira","fields":[
  {"name":"Id","type":"string"},{"name":"Amount","type":["null","double"],"default":null},
  {"name":"StageName","type":"string","default":"Prospecting"}]}"#;
/// Adds a field without a default: a reader on this schema cannot read v2 records.
const V3_INCOMPATIBLE: &str = r#"{"type":"record","name":"Opportunity","namespace":"test.sfjira","fields":[
  {"name":"Id","type":"string"},{"name":"Amount","type":["null","double"],"default":null},
  {"name":"StageName","type":"string","default":"Prospecting"},{"name":"CloseDate","type":"string"}]}"#;

fn v1_record(id: &str) -> Value {
    Value::Record(vec![
        ("Id".into(), Value::String(id.into())),
        (
            "Amount".into(),
            Value::Union(1, Box::new(Value::Double(250000.0))),
        ),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn avro_round_trip_through_kafka_and_the_registry() {
    let topic = fresh_topic("avro-rt", 1).await;
    let codec = AvroCodec::new(&registry_config()).unwrap();
    let writer = codec
        .register(&topic, &Schema::parse_str(V1).unwrap())
        .await
        .unwrap();
    assert_eq!(writer.subject, format!("{topic}-value"));
    assert_eq!(
        codec.compatibility(&writer.subject).await.unwrap(),
        "BACKWARD"
    );

    let bytes = codec.encode(&writer, v1_record("006A")).unwrap();
    assert_eq!(bytes[0], 0, "Confluent magic byte");
    assert_eq!(
        u32::from_be_bytes(bytes[1..5].try_into().unwrap()),
        writer.id,
        "schema id, big-endian"
    );

    let producer = IdempotentProducer::new(&client_config()).unwrap();
    producer
        .send(&OutRecord::new(&topic).key("006A").payload(bytes.clone()))
        .await
        .unwrap();

    let got = read_all(&topic, 1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].payload(),
        Some(&bytes[..]),
        "bytes unchanged through Kafka"
    );
    // A codec that has never seen the schema fetches it by id from the registry.
    let fresh = AvroCodec::new(&registry_config()).unwrap();
    let decoded = fresh.decode(got[0].payload().unwrap()).await.unwrap();
    assert_eq!(decoded.schema_id, writer.id);
    assert_eq!(decoded.name.as_deref(), Some("test.sfjira.Opportunity"));
    assert_eq!(decoded.value, v1_record("006A"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backward_compatible_version_registers_and_old_readers_still_decode() {
    let topic = fresh_topic("avro-evolve", 1).await;
    let codec = AvroCodec::new(&registry_config()).unwrap();
    let (v1, v2) = (
        Schema::parse_str(V1).unwrap(),
        Schema::parse_str(V2).unwrap(),
    );
    let w1 = codec.register(&topic, &v1).await.unwrap();
    let w2 = codec.register(&topic, &v2).await.unwrap();
    assert_ne!(w1.id, w2.id, "a new version gets a new id");
    // Registering the same schema again is answered from the cache with the same id.
    assert_eq!(codec.register(&topic, &v1).await.unwrap().id, w1.id);

    let old = codec.encode(&w1, v1_record("006OLD")).unwrap();
    let new_value = Value::Record(vec![
        ("Id".into(), Value::String("006NEW".into())),
        ("Amount".into(), Value::Union(0, Box::new(Value::Null))),
        ("StageName".into(), Value::String("Closed Won".into())),
    ]);
    let new = codec.encode(&w2, new_value.clone()).unwrap();

    // A reader deployed before v2 existed (its codec knows nothing yet) decodes both versions,
    // each with its writer schema from the registry.
    let old_reader = AvroCodec::new(&registry_config()).unwrap();
    assert_eq!(
        old_reader.decode(&old).await.unwrap().value,
        v1_record("006OLD")
    );
    assert_eq!(old_reader.decode(&new).await.unwrap().value, new_value);
    // And a reader that resolves into its own v1 schema reads v2 data (the extra field dropped).
    let as_v1 = apache_avro::reader::datum::GenericDatumReader::builder(&v2)
        .reader_schema(&v1)
        .build()
        .unwrap()
        .read_value(&mut &new[5..])
        .unwrap();
    assert_eq!(
        as_v1,
        Value::Record(vec![
            ("Id".into(), Value::String("006NEW".into())),
            ("Amount".into(), Value::Union(0, Box::new(Value::Null)))
        ])
    );

    // An incompatible version is refused under BACKWARD, with the catalogued code.
    let err = codec
        .register(&topic, &Schema::parse_str(V3_INCOMPATIBLE).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::SchemaIncompatible, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn undecodable_values_get_their_catalogued_codes() {
    let codec = AvroCodec::new(&registry_config()).unwrap();
    let not_avro = codec.decode(br#"{"Id":"006"}"#).await.unwrap_err();
    assert_eq!(not_avro.code, ErrorCode::NotConfluentAvro);
    let unknown_id = codec
        .decode(&[0, 0x7f, 0xff, 0xff, 0xf0, 2, b'a'])
        .await
        .unwrap_err();
    assert_eq!(unknown_id.code, ErrorCode::SchemaNotFound, "{unknown_id}");

    let topic = unique("avro-bad-body");
    let writer = codec
        .register(&topic, &Schema::parse_str(V1).unwrap())
        .await
        .unwrap();
    let mut framed = vec![0];
    framed.extend_from_slice(&writer.id.to_be_bytes());
    framed.extend_from_slice(&[0x80, 0x80, 0x80]); // a varint that never ends
    let bad_body = codec.decode(&framed).await.unwrap_err();
    assert_eq!(bad_body.code, ErrorCode::AvroBodyInvalid, "{bad_body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_unreachable_is_retryable() {
    let mut cfg = registry_config();
    cfg.url = "http://127.0.0.1:1/apis/ccompat/v7".into();
    let codec = AvroCodec::new(&cfg).unwrap();
    let err = codec
        .register("nowhere", &Schema::parse_str(V1).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::RegistryUnavailable);
    assert!(err.retryable());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_cut_short_or_with_bytes_left_over_does_not_decode() {
    let topic = fresh_topic("avro-cut", 1).await;
    let codec = AvroCodec::new(&registry_config()).unwrap();
    let writer = codec
        .register(&topic, &Schema::parse_str(V2).unwrap())
        .await
        .unwrap();
    let record = Value::Record(vec![
        ("Id".into(), Value::String("006B".into())),
        ("Amount".into(), Value::Union(0, Box::new(Value::Null))),
        ("StageName".into(), Value::String("Closed Won".into())),
    ]);
    let bytes = codec.encode(&writer, record.clone()).unwrap();
    assert_eq!(codec.decode(&bytes).await.unwrap().value, record);

    // Every cut inside the body: apache-avro alone reads some of these as records with nulls.
    for len in 5..bytes.len() {
        let err = codec
            .decode(&bytes[..len])
            .await
            .expect_err(&format!("{len} of {} bytes must not decode", bytes.len()));
        assert_eq!(err.code, ErrorCode::AvroBodyInvalid, "{len} bytes: {err}");
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"junk");
    let err = codec.decode(&longer).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AvroBodyInvalid);
    assert!(err.to_string().contains("4 bytes are left"), "{err}");
}

/// A schema that contains itself lets a body nest without bound; apache-avro's decoder would
/// recurse until the stack overflows (the stage crashing on the record at every restart).
/// The codec refuses a body nested past its limit with a code, through either decoder.
#[tokio::test(flavor = "multi_thread")]
async fn a_body_nested_past_the_limit_is_refused_not_a_stack_overflow() {
    const NODE: &str = r#"{"type": "record", "name": "Node", "namespace": "test.sfjira",
        "fields": [{"name": "next", "type": ["null", "Node"]}]}"#;
    let codec = AvroCodec::new(&registry_config()).unwrap();
    let writer = codec
        .register(&unique("avro-nested"), &Schema::parse_str(NODE).unwrap())
        .await
        .unwrap();
    // `nodes` nodes: union branch 1 (a Node) for each, then branch 0 (null).
    let framed = |nodes: usize| {
        let mut b = vec![0];
        b.extend_from_slice(&writer.id.to_be_bytes());
        b.extend(std::iter::repeat_n(2u8, nodes));
        b.push(0);
        b
    };
    // A few levels decode (a debug build's stack holds ~20 nodes of apache-avro's recursion).
    let shallow = codec.decode(&framed(10)).await.unwrap();
    let mut depth = 0;
    let mut at = &shallow.value;
    while let Value::Record(fields) = at {
        match &fields[0].1 {
            Value::Union(1, next) => {
                depth += 1;
                at = next;
            }
            _ => break,
        }
    }
    assert_eq!(depth, 10, "{:?}", shallow.value);
    assert!(codec.decode_json(&framed(10)).await.is_ok());
    for decoded in [
        codec.decode(&framed(200_000)).await.map(|_| ()),
        codec.decode_json(&framed(200_000)).await.map(|_| ()),
    ] {
        let err = decoded.unwrap_err();
        assert_eq!(err.code, ErrorCode::AvroBodyInvalid, "{err}");
        assert!(err.to_string().contains("nested deeper"), "{err}");
    }
}
