//! How DLQ records are printed: an aligned table for people, JSON for scripts (`--output json`).

use chrono::Utc;
use rdkafka::message::{Headers, Message};
use serde_json::{Value, json};
use sfjira_core::avro::AvroCodec;

use super::backlog::DlqEntry;
use crate::Output;

const MESSAGE_WIDTH: usize = 70;

pub fn list(entries: &[DlqEntry], output: Output) {
    list_refs(&entries.iter().collect::<Vec<_>>(), output)
}

pub fn list_refs(entries: &[&DlqEntry], output: Output) {
    match output {
        Output::Json => {
            let rows: Vec<Value> = entries
                .iter()
                .map(|e| serde_json::to_value(e).expect("entry serialises"))
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
        }
        Output::Table => {
            let rows: Vec<[String; 7]> = entries
                .iter()
                .map(|e| {
                    [
                        e.stage.clone(),
                        format!("{}:{}", e.partition, e.offset),
                        age(e),
                        e.code.clone().unwrap_or_else(|| "-".into()),
                        e.key.clone().unwrap_or_else(|| "-".into()),
                        e.origin_topic.clone().unwrap_or_else(|| "-".into()),
                        shorten(e.message.as_deref().unwrap_or("-"), MESSAGE_WIDTH),
                    ]
                })
                .collect();
            table(
                [
                    "STAGE",
                    "PART:OFFSET",
                    "AGE",
                    "CODE",
                    "KEY",
                    "FROM TOPIC",
                    "MESSAGE",
                ],
                &rows,
            );
            println!("{} record(s)", entries.len());
        }
    }
}

pub fn show(entry: &DlqEntry, value: &Value, output: Output) {
    let headers: Vec<(String, String)> = entry
        .record
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        h.value
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    match output {
        Output::Json => {
            let mut doc = serde_json::to_value(entry).expect("entry serialises");
            doc["headers"] = json!(
                headers
                    .iter()
                    .map(|(k, v)| json!({"key": k, "value": v}))
                    .collect::<Vec<_>>()
            );
            doc["value"] = value.clone();
            println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        }
        Output::Table => {
            println!(
                "{} partition {} offset {} ({} ago)",
                entry.dlq_topic,
                entry.partition,
                entry.offset,
                age(entry)
            );
            println!("key: {}", entry.key.as_deref().unwrap_or("(none)"));
            println!("headers:");
            for (k, v) in &headers {
                // Stack traces span lines; indent their continuation under the value.
                println!("  {k}: {}", v.replace('\n', "\n      "));
            }
            println!(
                "value:\n{}",
                serde_json::to_string_pretty(value).expect("json")
            );
        }
    }
}

/// The record's value for display: decoded Avro (with its schema id) when it is Confluent-framed
/// and the registry knows the schema, else UTF-8 text, else hex.
pub async fn decode_value(codec: &AvroCodec, entry: &DlqEntry) -> Value {
    let Some(bytes) = entry.record.payload() else {
        return Value::Null;
    };
    match codec.decode(bytes).await {
        Ok(decoded) => match Value::try_from(decoded.value) {
            Ok(v) => json!({"schema_id": decoded.schema_id, "record": decoded.name, "avro": v}),
            Err(e) => json!({"schema_id": decoded.schema_id, "undisplayable": e.to_string()}),
        },
        Err(err) => {
            let raw = match std::str::from_utf8(bytes) {
                Ok(text) => json!({"text": text}),
                Err(_) => {
                    json!({"hex": bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()})
                }
            };
            json!({"not_decoded": format!("{}: {}", err.code, err.message), "raw": raw})
        }
    }
}

fn age(e: &DlqEntry) -> String {
    let Some(at) = e.dead_lettered_at else {
        return "-".into();
    };
    let s = (Utc::now() - at).num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn shorten(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() <= max {
        line.to_string()
    } else {
        format!("{}…", line.chars().take(max - 1).collect::<String>())
    }
}

fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
