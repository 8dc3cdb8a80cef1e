//! The bad-input corpus, end to end (issue #10, item 4): against one running deployment (the
//! sandbox and all five services as processes), every kind of bad input is fed in — some
//! straight onto a stage's topic like a broken producer would write it, some made in the
//! Salesforce sandbox by a sales user, some posted to the webhook endpoint like an attacker —
//! and each must end where the design says, with its catalogued code (docs/errors.md):
//!
//! | input | where | code |
//! |---|---|---|
//! | plain bytes on `salesforce.cdc.Opportunity` | transformer.dlq | SFJ-1001 |
//! | Avro framed with a schema id the registry does not know | transformer.dlq | SFJ-1002 |
//! | Avro cut short (the body does not decode with its schema) | transformer.dlq | SFJ-1003 |
//! | Avro of another schema (registered, framed with its id) | transformer.dlq | SFJ-5005 |
//! | a change whose CloseDate is no representable date (epoch ms, or an Avro `date`) | transformer.dlq | SFJ-5004 |
//! | a StageName missing from the mapping's value table | transformer.dlq | SFJ-5002 |
//! | a summary longer than Jira's 255 characters | jira-sink.dlq (Jira's 400) | SFJ-8004 |
//! | plain bytes on `jira.commands` / `salesforce.commands` | jira-sink.dlq / salesforce-sink.dlq | SFJ-1001 / SFJ-1001 |
//! | Avro of another schema on them | jira-sink.dlq / salesforce-sink.dlq | SFJ-8001 / SFJ-9001 |
//! | a change of an entity no flow maps (Task) | skipped, counted `unmapped`, not dead-lettered | — |
//! | a change event cut short on the Pub/Sub bus | salesforce-source.dlq (recovered by backfill) | SFJ-6001 |
//! | webhook deliveries unsigned / wrongly signed | answered 401, counted `rejected`, nothing published | (SFJ-7003, logged) |
//! | signed deliveries: not JSON / no issue in the event | answered 400, jira-source.dlq | SFJ-7001 / SFJ-7002 |
//!
//! Good records keep flowing around them. Then the mapping is fixed (the value table learns
//! the stage), the transformer restarted on it, and `sfjira dlq replay` puts the transformer's
//! dead letters back: the once-bad opportunity lands in Jira, and every record that is still
//! bad returns to the DLQ with its code and `sfjira.replay.count` 1 — nothing vanishes.
//! Mappings: tests/fixtures/bad_input_mapping.yaml and bad_input_mapping_fixed.yaml.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use apache_avro::types::Value as Avro;
use rdkafka::message::Message;
use serde_json::{Value, json};
use sfjira_core::avro::{AvroCodec, WriterSchema, confluent_schema_id};
use sfjira_tests::demo::corpus::{
    all_records, codes_by_key, counter, dlq_list, metrics_url, post_webhook, post_webhook_raw,
    produce, record_keyed, registry_schema, sfjira, sign, use_mapping, webhook_url, with_avro_date,
    with_field, with_id, with_unrepresentable_date,
};
use sfjira_tests::demo::scenario::SALESFORCE_ID_FIELD;
use sfjira_tests::demo::{Deployment, Engineer, SalesUser, wait_for};
use sfjira_tests::{bootstrap, registry_config, registry_url};

const STEP: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread")]
async fn each_bad_input_is_rejected_or_dead_lettered_with_its_code_and_replays_after_the_fix() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut d = Deployment::start_with_mapping(
        &bootstrap(),
        &registry_url(),
        &fixtures.join("bad_input_mapping.yaml"),
    )
    .await
    .expect("deployment starts");
    let op = d.operator();
    let sales = SalesUser::new(&d.salesforce_url, "Alice");
    let engineer = Engineer::new(&d.jira_url, "bob@example.com");
    let prefix = d.topic_prefix.clone();
    let started = Instant::now();
    eprintln!("deployment logs: {}", d.dir.display());

    // A good opportunity first: the pipeline works, and its change record on the transformer's
    // input topic is the model the forged records are made from.
    let good_before = sales
        .create(
            "Opportunity",
            json!({"Name": "Good before the corpus", "StageName": "Prospecting",
                   "CloseDate": "2026-12-31", "Amount": 1000.0}),
        )
        .await
        .unwrap();
    let story = wait_for(STEP, || story_for(&engineer, &good_before))
        .await
        .unwrap_or_else(|| panic!("no story for {good_before}\n{}", d.all_logs()));
    assert_eq!(
        story["fields"]["customfield_10060"]["value"],
        json!("Bronze")
    );
    assert_eq!(story["fields"]["duedate"], json!("2026-12-31"));

    // --- Straight onto the transformer's input topic, like a broken producer. -------------
    let cdc_topic = format!("{prefix}salesforce.cdc.Opportunity");
    let model = record_keyed(&op.kafka, &cdc_topic, &good_before)
        .await
        .expect("the good opportunity's change record is on its topic");
    let schema_id = confluent_schema_id(&model).unwrap();
    let codec = AvroCodec::new(&registry_config()).unwrap();
    let mut bad: BTreeMap<String, &str> = BTreeMap::new();

    produce(
        &d.bootstrap,
        &cdc_topic,
        "corpus-not-avro",
        br#"{"Name": "JSON, not Avro"}"#,
    )
    .await
    .unwrap();
    bad.insert("corpus-not-avro".into(), "SFJ-1001");

    let mut unknown_id = model.clone();
    unknown_id[1..5].copy_from_slice(&0x7fff_ff00_u32.to_be_bytes());
    produce(
        &d.bootstrap,
        &cdc_topic,
        "corpus-unknown-schema",
        &unknown_id,
    )
    .await
    .unwrap();
    bad.insert("corpus-unknown-schema".into(), "SFJ-1002");

    // A real change record cut short: its last bytes lost on the way.
    produce(
        &d.bootstrap,
        &cdc_topic,
        "corpus-cut-short",
        &model[..model.len() - 4],
    )
    .await
    .unwrap();
    bad.insert("corpus-cut-short".into(), "SFJ-1003");

    let lead = apache_avro::Schema::parse_str(
        r#"{"type": "record", "name": "Lead", "namespace": "corpus",
            "fields": [{"name": "Email", "type": "string"}, {"name": "Company", "type": "string"}]}"#,
    )
    .unwrap();
    let lead_writer = codec
        .register(&format!("{prefix}corpus.leads"), &lead)
        .await
        .unwrap();
    let lead_bytes = codec
        .encode(
            &lead_writer,
            Avro::Record(vec![
                ("Email".into(), Avro::String("ann@example.com".into())),
                ("Company".into(), Avro::String("Initech".into())),
            ]),
        )
        .unwrap();
    produce(&d.bootstrap, &cdc_topic, "corpus-wrong-schema", &lead_bytes)
        .await
        .unwrap();
    bad.insert("corpus-wrong-schema".into(), "SFJ-5005");

    // The model change with a CloseDate no calendar has (the schema's own type, out of range).
    let schema = registry_schema(&registry_url(), schema_id).await.unwrap();
    let decoded = codec.decode(&model).await.unwrap();
    let bad_date = with_unrepresentable_date(decoded.value, "CloseDate");
    let bad_date = with_id(bad_date, "006CORPUSBADDATE01");
    let writer = WriterSchema::new(format!("{cdc_topic}-value"), schema_id, schema);
    let bad_date = codec.encode(&writer, bad_date).unwrap();
    produce(&d.bootstrap, &cdc_topic, "006CORPUSBADDATE01", &bad_date)
        .await
        .unwrap();
    bad.insert("006CORPUSBADDATE01".into(), "SFJ-5004");

    // The same change from a producer whose schema types CloseDate as an Avro date: a day
    // 100 million days out is no calendar date either.
    let dated_schema = with_avro_date(&writer.schema, "CloseDate");
    let dated_writer = codec
        .register(
            &format!("{prefix}corpus.dated-opportunities"),
            &dated_schema,
        )
        .await
        .unwrap();
    let dated = codec.decode(&model).await.unwrap().value;
    let dated = with_field(
        dated,
        "CloseDate",
        Avro::Union(1, Box::new(Avro::Date(100_000_000))),
    );
    let dated = with_id(dated, "006CORPUSAVRODATE1");
    let dated = codec.encode(&dated_writer, dated).unwrap();
    produce(&d.bootstrap, &cdc_topic, "006CORPUSAVRODATE1", &dated)
        .await
        .unwrap();
    bad.insert("006CORPUSAVRODATE1".into(), "SFJ-5004");

    // Not commands, on the sinks' command topics: plain bytes, and Avro of another schema.
    for topic in ["jira.commands", "salesforce.commands"] {
        let topic = format!("{prefix}{topic}");
        produce(&d.bootstrap, &topic, "corpus-not-avro", b"not a command")
            .await
            .unwrap();
        produce(&d.bootstrap, &topic, "corpus-wrong-schema", &lead_bytes)
            .await
            .unwrap();
    }

    // --- Through Salesforce, like a sales user. ----------------------------------------------
    let unknown_stage = sales
        .create(
            "Opportunity",
            json!({"Name": "Stage missing from the table", "StageName": "Qualification",
                   "CloseDate": "2026-11-30", "Amount": 5000.0}),
        )
        .await
        .unwrap();
    bad.insert(unknown_stage.clone(), "SFJ-5002");

    // 250 characters: a valid Account Name (Salesforce allows 255), but the mapping's
    // "Customer: " prefix makes the epic's summary 260, over Jira's 255.
    let long_name = format!("Oversized {}", "x".repeat(240));
    let oversized = sales
        .create("Account", json!({"Name": long_name, "Type": "Customer"}))
        .await
        .unwrap();
    let oversized_ref = format!("salesforce:Account:{oversized}");

    let transformer_metrics = metrics_url(&d, "sfjira-transformer").unwrap();
    let unmapped = |url: String| async move {
        counter(
            &url,
            "sfjira_transformer_discarded_total",
            &[("reason", "unmapped")],
        )
        .await
        .unwrap()
    };
    let unmapped_before = unmapped(transformer_metrics.clone()).await;
    // The good opportunity's record went through: its processing latency was measured.
    let latencies = counter(
        &transformer_metrics,
        "sfjira_transformer_record_latency_seconds_count",
        &[],
    )
    .await
    .unwrap();
    assert!(latencies >= 1.0, "per-record latency observed: {latencies}");
    let task = sales
        .create(
            "Task",
            json!({"Subject": "Call the customer", "Status": "Completed"}),
        )
        .await
        .unwrap();

    // --- Forged webhook deliveries. -------------------------------------------------------
    let jira_source_metrics = metrics_url(&d, "sfjira-jira-source").unwrap();
    let rejected = |url: String| async move {
        counter(
            &url,
            "sfjira_jira_source_deliveries_total",
            &[("outcome", "rejected")],
        )
        .await
        .unwrap()
    };
    let rejected_before = rejected(jira_source_metrics.clone()).await;
    let forged = json!({
        "webhookEvent": "jira:issue_updated",
        "timestamp": chrono::Utc::now().timestamp_millis(),
        "user": {"accountId": "forger"},
        "issue": {"id": "990001", "key": "PROJ-9901",
                  "fields": {"summary": "forged", "project": {"key": "PROJ"}}},
        "changelog": {"id": "1", "items": [{"field": "summary", "toString": "forged"}]}
    });
    let url = webhook_url(&d).unwrap();
    let zeros = format!("sha256={}", "0".repeat(64));
    for signature in [None, Some(zeros.as_str()), Some("sha1=deadbeef")] {
        let status = post_webhook(&url, &forged, signature).await.unwrap();
        assert_eq!(status, 401, "a delivery signed {signature:?} is refused");
    }
    // Correctly signed, but not usable: not JSON at all, and an event with no issue in it.
    let secret = op
        .env
        .iter()
        .find(|(k, _)| k == "SFJIRA_JIRA_WEBHOOK_SECRET")
        .map(|(_, v)| v.clone())
        .unwrap();
    let not_json = b"<html>a proxy's error page</html>".to_vec();
    let no_issue = serde_json::to_vec(&json!({
        "webhookEvent": "jira:issue_created",
        "timestamp": chrono::Utc::now().timestamp_millis(),
        "user": {"accountId": "someone"}
    }))
    .unwrap();
    for (body, what) in [
        (&not_json, "a body that is not JSON"),
        (&no_issue, "an event with no issue"),
    ] {
        let signature = sign(&secret, body);
        let status = post_webhook_raw(&url, body, &signature).await.unwrap();
        assert_eq!(status, 400, "{what}: answered 400 once dead-lettered");
    }

    // --- Good records still flow around the bad ones. ---------------------------------------
    let good_after = sales
        .create(
            "Opportunity",
            json!({"Name": "Good after the corpus", "StageName": "Closed Won",
                   "CloseDate": "2027-01-15", "Amount": 2000.0}),
        )
        .await
        .unwrap();
    let story = wait_for(STEP, || story_for(&engineer, &good_after))
        .await
        .unwrap_or_else(|| panic!("no story for {good_after}\n{}", d.all_logs()));
    assert_eq!(story["fields"]["customfield_10060"]["value"], json!("Gold"));

    // --- Each bad input where it belongs, with its code. ------------------------------------
    let transformer = wait_for(STEP, || async {
        let rows = dlq_list(&op, "transformer").await.ok()?;
        (rows.len() >= bad.len()).then_some(rows)
    })
    .await;
    let Some(transformer) = transformer else {
        // Which bad records went through to Jira instead?
        let mut through = Vec::new();
        for key in bad.keys() {
            if let Some(issue) = story_for(&engineer, key).await {
                through.push(format!("{key}: {}", issue["fields"]));
            }
        }
        panic!(
            "transformer.dlq did not fill: {:#?}\nbad records that reached Jira: {through:#?}\n{}",
            dlq_list(&op, "transformer").await,
            d.all_logs()
        );
    };
    assert_eq!(
        codes_by_key(&transformer),
        bad.iter()
            .map(|(k, c)| (k.clone(), c.to_string()))
            .collect::<BTreeMap<_, _>>(),
        "transformer.dlq: one record per bad input, each with its code: {transformer:#?}"
    );
    for row in &transformer {
        assert_eq!(row["origin_topic"], json!(cdc_topic), "{row}");
        assert_eq!(row["replay_count"], json!(0), "{row}");
    }

    let jira_sink = wait_for(STEP, || async {
        let rows = dlq_list(&op, "jira-sink").await.ok()?;
        (rows.len() >= 3).then_some(rows)
    })
    .await
    .unwrap_or_else(|| panic!("jira-sink.dlq did not fill\n{}", d.all_logs()));
    // Both sinks keep the codec's code for what is not Avro, their own for Avro that is not a
    // command.
    assert_eq!(
        codes_by_key(&jira_sink),
        BTreeMap::from([
            ("corpus-not-avro".to_string(), "SFJ-1001".to_string()),
            ("corpus-wrong-schema".to_string(), "SFJ-8001".to_string()),
            (oversized_ref.clone(), "SFJ-8004".to_string()),
        ]),
        "jira-sink.dlq: {jira_sink:#?}"
    );
    let too_long = jira_sink
        .iter()
        .find(|r| r["key"] == json!(oversized_ref))
        .unwrap();
    assert!(
        too_long["message"]
            .as_str()
            .is_some_and(|m| m.contains("255")),
        "Jira's own reason is in the message: {too_long}"
    );

    let salesforce_sink = wait_for(STEP, || async {
        let rows = dlq_list(&op, "salesforce-sink").await.ok()?;
        (rows.len() >= 2).then_some(rows)
    })
    .await
    .unwrap_or_else(|| panic!("salesforce-sink.dlq did not fill\n{}", d.all_logs()));
    assert_eq!(
        codes_by_key(&salesforce_sink),
        BTreeMap::from([
            ("corpus-not-avro".to_string(), "SFJ-1001".to_string()),
            ("corpus-wrong-schema".to_string(), "SFJ-9001".to_string()),
        ]),
        "salesforce-sink.dlq: {salesforce_sink:#?}"
    );

    // The Task: an entity no flow maps, skipped and counted, never dead-lettered.
    let counted = wait_for(STEP, || async {
        (unmapped(transformer_metrics.clone()).await > unmapped_before).then_some(())
    })
    .await;
    assert!(
        counted.is_some(),
        "the Task's change was not counted as unmapped\n{}",
        d.all_logs()
    );
    assert!(
        !transformer.iter().any(|r| r["key"] == json!(task)),
        "an unmapped entity is not a dead letter"
    );

    // The forged deliveries: counted as rejected, nothing published, nothing dead-lettered.
    assert!(
        rejected(jira_source_metrics.clone()).await >= rejected_before + 3.0,
        "three forged deliveries counted as rejected"
    );
    let issues_topic = format!("{prefix}jira.issues");
    let published = all_records(&op.kafka, &issues_topic).await;
    assert!(
        !published.iter().any(|m| m.key() == Some(b"990001")),
        "a forged delivery reached {issues_topic}"
    );
    // Only the two signed but unusable deliveries are dead letters; the forged ones are not.
    let mut webhook_codes: Vec<String> = dlq_list(&op, "jira-source")
        .await
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap_or("-").to_string())
        .collect();
    webhook_codes.sort();
    assert_eq!(
        webhook_codes,
        ["SFJ-7001", "SFJ-7002"],
        "jira-source.dlq: the unusable deliveries, and no forged one"
    );

    // --- A change event whose payload is cut short on the bus (the sandbox's Pub/Sub fault):
    // the salesforce-source cannot decode it with Salesforce's schema. Made once every earlier
    // change has been seen downstream, so the one-shot fault takes this event and no other.
    let garbled_since = chrono::Utc::now() - chrono::Duration::seconds(1);
    reqwest::Client::new()
        .put(format!("{}/__admin/salesforce/faults", d.salesforce_url))
        .json(&json!({"corruptNextEvents": 1}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let garbled = sales
        .create(
            "Opportunity",
            json!({"Name": "Garbled on the bus", "StageName": "Prospecting",
                   "CloseDate": "2026-10-01", "Amount": 3000.0}),
        )
        .await
        .unwrap();
    let source_dlq = wait_for(STEP, || async {
        let rows = dlq_list(&op, "salesforce-source").await.ok()?;
        (!rows.is_empty()).then_some(rows)
    })
    .await
    .unwrap_or_else(|| panic!("salesforce-source.dlq stayed empty\n{}", d.all_logs()));
    assert_eq!(source_dlq.len(), 1, "{source_dlq:#?}");
    assert_eq!(source_dlq[0]["code"], json!("SFJ-6001"), "{source_dlq:#?}");

    // --- The fix: the value table learns the stage; the transformer restarts on it. ---------
    use_mapping(&d, &fixtures.join("bad_input_mapping_fixed.yaml")).unwrap();
    d.kill("sfjira-transformer").await.unwrap();
    d.start_service("sfjira-transformer").unwrap();
    d.wait_ready("sfjira-transformer").await.unwrap();

    let dry = sfjira(
        &op,
        &["dlq", "replay", "--stage", "transformer", "--dry-run"],
    )
    .await
    .unwrap();
    assert!(
        dry.contains(&unknown_stage),
        "the dry run lists what it would replay: {dry}"
    );
    assert_eq!(
        dlq_list(&op, "transformer").await.unwrap().len(),
        bad.len(),
        "a dry run replays nothing"
    );
    let replayed = sfjira(&op, &["dlq", "replay", "--stage", "transformer"])
        .await
        .unwrap();
    assert!(
        replayed.contains(&format!("replayed {} record(s)", bad.len())),
        "{replayed}"
    );

    // The once-bad opportunity is applied…
    let story = wait_for(STEP, || story_for(&engineer, &unknown_stage))
        .await
        .unwrap_or_else(|| {
            panic!(
                "the replayed opportunity {unknown_stage} did not reach Jira\n{}",
                d.all_logs()
            )
        });
    assert_eq!(
        story["fields"]["summary"],
        json!("Stage missing from the table")
    );
    assert_eq!(
        story["fields"]["customfield_10060"]["value"],
        json!("Bronze")
    );
    assert_eq!(story["fields"]["duedate"], json!("2026-11-30"));

    // …and every record still bad is back in the DLQ, with its code, replayed once.
    let still_bad: BTreeMap<String, String> = bad
        .iter()
        .filter(|(k, _)| **k != unknown_stage)
        .map(|(k, c)| (k.clone(), c.to_string()))
        .collect();
    let back = wait_for(STEP, || async {
        let rows = dlq_list(&op, "transformer").await.ok()?;
        (rows.len() >= still_bad.len()).then_some(rows)
    })
    .await
    .unwrap_or_else(|| panic!("the still-bad records did not return\n{}", d.all_logs()));
    assert_eq!(codes_by_key(&back), still_bad, "{back:#?}");
    for row in &back {
        assert_eq!(row["replay_count"], json!(1), "{row}");
    }

    // A sink-stage dead letter replayed unchanged fails the same way and returns too: the
    // command carries the summary the old mapping made.
    sfjira(
        &op,
        &[
            "dlq",
            "replay",
            "--stage",
            "jira-sink",
            "--code",
            "SFJ-8004",
        ],
    )
    .await
    .unwrap();
    let returned = wait_for(STEP, || async {
        let rows = dlq_list(&op, "jira-sink").await.ok()?;
        rows.into_iter()
            .find(|r| r["key"] == json!(oversized_ref) && r["replay_count"] == json!(1))
    })
    .await
    .unwrap_or_else(|| panic!("the oversized command did not return\n{}", d.all_logs()));
    assert_eq!(returned["code"], json!("SFJ-8004"));

    // The change garbled on the bus is recovered the way the runbook says: a backfill of the
    // entity since the failure re-reads it from Salesforce.
    let since = garbled_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    sfjira(
        &op,
        &[
            "backfill",
            "salesforce",
            "--entity",
            "Opportunity",
            "--since",
            &since,
        ],
    )
    .await
    .unwrap();
    let story = wait_for(STEP, || story_for(&engineer, &garbled))
        .await
        .unwrap_or_else(|| {
            panic!(
                "the backfilled {garbled} did not reach Jira\n{}",
                d.all_logs()
            )
        });
    assert_eq!(story["fields"]["summary"], json!("Garbled on the bus"));

    eprintln!(
        "bad-input corpus done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// The Jira story whose "Salesforce ID" is `id`.
async fn story_for(engineer: &Engineer, id: &str) -> Option<Value> {
    engineer
        .issues()
        .await
        .ok()?
        .into_iter()
        .find(|i| i["fields"][SALESFORCE_ID_FIELD] == json!(id))
}
