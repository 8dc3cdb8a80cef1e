//! Times each stage of the transformer's hot path on one ~1 KB record (needs the registry from
//! `make infra-up`): `cargo run --release -p sfjira-transformer --example stage_cost`. The
//! throughput benchmark (`make bench`) says how fast; this says where the time goes.
//! `SFJIRA_STAGE_N` sets the repetitions per stage (default 5 000; 100 000 gives `perf record`
//! enough samples).

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use sfjira_core::avro::AvroCodec;
use sfjira_core::config::RegistryConfig;
use sfjira_transformer::mapping::Mapping;
use std::time::Instant;

include!("../benches/support/opportunity.rs");

/// The transformer's allocator (its main.rs), so the figures are the transformer's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let codec = AvroCodec::new(&RegistryConfig {
        url: "http://127.0.0.1:18081/apis/ccompat/v7".into(),
        username: None,
        password: None,
        timeout_ms: 5000,
    })
    .unwrap();
    let w = codec
        .register("stagecost-topic", &Schema::parse_str(SCHEMA).unwrap())
        .await
        .unwrap();
    let cmdw = codec
        .register("stagecost-cmd", sfjira_core::command::avro::schema())
        .await
        .unwrap();
    let m = Mapping::load(std::path::Path::new("../../config/mapping.yaml")).unwrap();
    let bytes = codec.encode(&w, record(1)).unwrap();
    // Fetches the schema once, outside the timed loops.
    codec.decode(&bytes).await.unwrap();
    let n: usize = std::env::var("SFJIRA_STAGE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(codec.decode(&bytes).await.unwrap());
    }
    println!(
        "decode tree {:>6.1} us  (the value tree, before decode_json)",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        let tree = codec.decode(&bytes).await.unwrap().value;
        std::hint::black_box(sfjira_core::avro::json::to_json(tree));
    }
    println!(
        "tree + json {:>6.1} us  (what decode_json replaces)",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(codec.decode_json(&bytes).await.unwrap());
    }
    println!(
        "decode json {:>6.1} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let v = codec.decode_json(&bytes).await.unwrap().value;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            sfjira_transformer::input::source_record("x", Some("k"), v.clone()).unwrap(),
        );
    }
    println!(
        "input       {:>6.1} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let r = sfjira_transformer::input::source_record("x", Some("k"), v.clone()).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(m.apply(&r));
    }
    println!(
        "apply       {:>6.1} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let cmd = match m.apply(&r) {
        sfjira_transformer::engine::RecordOutcome::Flows(mut o) => match o.remove(0) {
            sfjira_transformer::engine::Outcome::Command(c) => *c,
            x => panic!("{x:?}"),
        },
        x => panic!("{x:?}"),
    };
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(cmd.to_avro());
    }
    println!(
        "to_avro     {:>6.1} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let av = cmd.to_avro();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(codec.encode(&cmdw, av.clone()).unwrap());
    }
    println!(
        "encode      {:>6.1} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(cmd.encode(&cmdw).unwrap());
    }
    println!(
        "serde enc   {:>6.1} us  (to_avro + encode, as the transformer does now)",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let _g =
        sfjira_core::telemetry::init("x", sfjira_core::config::LogFormat::Pretty, "warn").unwrap();
    use rdkafka::message::{OwnedHeaders, OwnedMessage, Timestamp};
    let msg = OwnedMessage::new(
        Some(bytes.clone()),
        Some(b"k".to_vec()),
        "t".into(),
        Timestamp::CreateTime(1),
        0,
        1,
        Some(OwnedHeaders::new()),
    );
    let t = Instant::now();
    for _ in 0..n {
        let span = sfjira_core::telemetry::messaging::process_span_for_message(&msg, "g");
        let _e = span.enter();
        let send = sfjira_core::telemetry::messaging::send_span("out", Some("k"));
        let h = send.in_scope(|| {
            sfjira_core::telemetry::propagation::inject_current_context(OwnedHeaders::new())
        });
        std::hint::black_box(h);
    }
    println!(
        "spans       {:>6.1} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
