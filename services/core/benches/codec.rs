//! `make bench`: the cost sfjira adds on the hot path, each figure next to a baseline measured
//! in the same run on the same data, so the ratio means something on any machine.
//!
//! - Avro encode: `avro::encode_framed` (Confluent framing around apache-avro) against bare
//!   `GenericDatumWriter::write_value_to_vec` (what `to_avro_datum` does). Target: ratio ≤ 1.2.
//! - DLQ: building a dead-letter record (copy + 14 headers) against cloning the original record.

use std::hint::black_box;
use std::time::{Duration, Instant};

use apache_avro::Schema;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use sfjira_core::avro::{WriterSchema, encode_framed};
use sfjira_core::dlq::{Attempts, DlqRouter, FailedAt, FailedRecord};
use sfjira_core::errors::{ErrorCode, StageError};
use sfjira_core::kafka::OutRecord;

const SCHEMA: &str = r#"{"type":"record","name":"Opportunity","fields":[
  {"name":"Id","type":"string"},{"name":"Name","type":"string"},{"name":"StageName","type":"string"},
  {"name":"Amount","type":["null","double"]},{"name":"CloseDate","type":"string"},
  {"name":"OwnerId","type":"string"},{"name":"Description","type":"string"},
  {"name":"LastModifiedDate","type":"long"},{"name":"IsClosed","type":"boolean"}]}"#;

fn record() -> Value {
    Value::Record(vec![
        ("Id".into(), Value::String("0065g00000XyZabAAB".into())),
        ("Name".into(), Value::String("Acme — 500 seats".into())),
        ("StageName".into(), Value::String("Closed Won".into())),
        (
            "Amount".into(),
            Value::Union(1, Box::new(Value::Double(250_000.0))),
        ),
        ("CloseDate".into(), Value::String("2026-11-27".into())),
        ("OwnerId".into(), Value::String("0055g00000AbCdeAAA".into())),
        ("Description".into(), Value::String("x".repeat(600))),
        ("LastModifiedDate".into(), Value::Long(1_795_000_000_000)),
        ("IsClosed".into(), Value::Boolean(true)),
    ])
}

/// Runs `f` repeatedly for about `budget` and returns nanoseconds per call.
fn measure(budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..1000 {
        f(); // warm-up
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn report(name: &str, ours: f64, baseline: f64, baseline_name: &str) {
    println!(
        "{name:<28} {ours:>10.0} ns/op   baseline ({baseline_name}) {baseline:>10.0} ns/op   ratio {:.2}",
        ours / baseline
    );
}

fn main() {
    let budget = Duration::from_millis(if std::env::args().any(|a| a == "--quick") {
        200
    } else {
        1500
    });
    let schema = Schema::parse_str(SCHEMA).unwrap();
    let writer = WriterSchema::new("salesforce.cdc.Opportunity-value", 42, schema.clone());
    let value = record();

    let baseline = measure(budget, || {
        black_box(
            GenericDatumWriter::builder(&schema)
                .build()
                .unwrap()
                .write_value_to_vec(black_box(value.clone()))
                .unwrap(),
        );
    });
    let ours = measure(budget, || {
        black_box(encode_framed(&writer, black_box(value.clone())).unwrap());
    });
    report("avro encode (framed)", ours, baseline, "apache-avro alone");
    let size = encode_framed(&writer, value.clone()).unwrap().len();
    println!(
        "{:<28} {size} bytes per record, {:.0} records/s per core",
        "",
        1e9 / ours
    );

    let mut original = OutRecord::new("salesforce.cdc.Opportunity")
        .key("0065g00000XyZabAAB")
        .payload(vec![7u8; size]);
    original.set_header(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    let failed = FailedRecord {
        topic: original.topic.clone(),
        partition: 3,
        offset: 1234,
        record: original.clone(),
    };
    let router = DlqRouter::new("transformer", "", "bench");
    let err = StageError::new(ErrorCode::AvroBodyInvalid, "bench");
    let baseline = measure(budget, || {
        black_box(black_box(&original).clone());
    });
    let ours = measure(budget, || {
        black_box(router.dead_letter(
            black_box(&failed),
            &err,
            FailedAt::ValueConverter,
            Attempts::once(),
        ));
    });
    report("dlq dead_letter record", ours, baseline, "clone record");
}
