//! `sfjira doctor`: proves, step by step and out loud, that this deployment's Kafka and schema
//! registry work together the way sfjira needs — metadata answered, a schema registered under
//! BACKWARD compatibility, an Avro record produced and read back `read_committed` and decoded.
//! It works on a scratch topic it creates and deletes, so it never touches pipeline data.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use apache_avro::Schema;
use apache_avro::types::Value;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::Message;
use sfjira_core::avro::AvroCodec;
use sfjira_core::config::SfjiraConfig;
use sfjira_core::kafka::{IdempotentProducer, KafkaConsumer, OutRecord, client_config, topic_name};

const PROBE_SCHEMA: &str = include_str!("../../../schemas/sfjira/Probe.avsc");
const READ_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(cfg: &SfjiraConfig) -> anyhow::Result<ExitCode> {
    let base = client_config(&cfg.kafka);
    let admin: AdminClient<DefaultClientContext> = base.create()?;
    let md = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .with_context(|| {
            format!(
                "Kafka at {} does not answer metadata requests",
                cfg.kafka.bootstrap_servers
            )
        })?;
    println!(
        "kafka     {} answers: {} broker(s), {} topic(s)",
        cfg.kafka.bootstrap_servers,
        md.brokers().len(),
        md.topics().len()
    );

    let probe_id = uuid_like();
    let topic = topic_name(&cfg.kafka, &format!("sfjira.doctor.{probe_id}"));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in admin
        .create_topics(
            [&NewTopic::new(&topic, 1, TopicReplication::Fixed(-1))],
            &opts,
        )
        .await?
    {
        r.map_err(|(t, e)| anyhow::anyhow!("creating scratch topic {t}: {e}"))?;
    }
    println!("topic     created scratch topic {topic}");
    let outcome = round_trip(cfg, &base, &topic, &probe_id).await;
    for r in admin.delete_topics(&[&topic], &opts).await? {
        if let Err((t, e)) = r {
            eprintln!("warning: could not delete scratch topic {t}: {e}");
        }
    }
    println!("topic     deleted {topic}");
    outcome?;
    println!("doctor    all checks passed");
    Ok(ExitCode::SUCCESS)
}

async fn round_trip(
    cfg: &SfjiraConfig,
    base: &rdkafka::ClientConfig,
    topic: &str,
    probe_id: &str,
) -> anyhow::Result<()> {
    let codec = AvroCodec::new(&cfg.registry)?;
    let schema = Schema::parse_str(PROBE_SCHEMA).context("schemas/sfjira/Probe.avsc")?;
    let writer = codec.register(topic, &schema).await?;
    let level = codec.compatibility(&writer.subject).await?;
    println!(
        "registry  {} registered {} as schema id {} (compatibility {level})",
        cfg.registry.url, writer.subject, writer.id
    );

    let sent_at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let instance_id = cfg.service.instance_id.clone();
    let value = Value::Record(vec![
        ("probe_id".into(), Value::String(probe_id.into())),
        ("sent_at".into(), Value::TimestampMillis(sent_at)),
        ("instance_id".into(), Value::String(instance_id)),
    ]);
    let bytes = codec.encode(&writer, value.clone())?;
    let producer = IdempotentProducer::new(base)?;
    let (partition, offset) = producer
        .send(&OutRecord::new(topic).key(probe_id).payload(bytes.clone()))
        .await?;
    println!(
        "produce   {} bytes (magic {:#04x}, schema id {}, {} Avro bytes) -> {topic} partition {partition} offset {offset}",
        bytes.len(),
        bytes[0],
        u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]),
        bytes.len() - 5
    );

    let consumer = KafkaConsumer::new(base, &format!("sfjira-doctor-{probe_id}"), &[topic])?;
    let msg = tokio::time::timeout(READ_TIMEOUT, consumer.recv())
        .await
        .with_context(|| format!("nothing read back from {topic} within {READ_TIMEOUT:?}"))??;
    let decoded = codec.decode(msg.payload().unwrap_or_default()).await?;
    println!(
        "consume   read_committed partition {} offset {}; decoded {:?}",
        msg.partition(),
        msg.offset(),
        decoded.value
    );
    if decoded.value != value {
        bail!(
            "the record read back differs from the one written: {:?}",
            decoded.value
        );
    }
    println!("roundtrip the record read back equals the record written");
    Ok(())
}

fn uuid_like() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}
