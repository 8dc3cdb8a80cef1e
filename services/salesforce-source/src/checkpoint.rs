//! The channel's position in `sfjira.checkpoints` (compacted): key
//! `salesforce-source:<channel>`, value a small JSON document with the replay id in hex.
//! It is written in the same Kafka transaction as the records it covers, so the committed
//! position and the committed records always agree; on start the source reads the topic to
//! its end (`read_committed`, after its transactional producer has fenced any predecessor) and
//! resumes after the last committed position.

use rdkafka::config::ClientConfig;
use rdkafka::message::Message;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sfjira_core::kafka::{OutRecord, latest_by_key};

/// The checkpoint topic's base name (before `kafka.topic_prefix`).
pub const TOPIC: &str = "sfjira.checkpoints";

/// The checkpoint key of `channel`.
pub fn key(channel: &str) -> String {
    format!("salesforce-source:{channel}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub channel: String,
    /// Hex of the replay id bytes.
    pub replay_id: String,
}

impl Position {
    pub fn new(channel: &str, replay_id: &[u8]) -> Self {
        Position {
            channel: channel.to_string(),
            replay_id: hex(replay_id),
        }
    }

    pub fn replay_bytes(&self) -> Option<Vec<u8>> {
        unhex(&self.replay_id)
    }

    /// The checkpoint record (goes into the data's transaction).
    pub fn record(&self, topic: &str) -> OutRecord {
        OutRecord::new(topic)
            .key(key(&self.channel))
            .payload(serde_json::to_vec(self).expect("a position serialises"))
    }
}

/// The last committed position of `channel`, if any.
pub fn load(base: &ClientConfig, topic: &str, channel: &str) -> anyhow::Result<Option<Position>> {
    load_json(base, topic, &key(channel))
}

/// The last committed JSON value under `wanted` in `topic`, if any (a tombstone resets it).
pub fn load_json<T: DeserializeOwned>(
    base: &ClientConfig,
    topic: &str,
    wanted: &str,
) -> anyhow::Result<Option<T>> {
    let latest = latest_by_key(base, topic)
        .map_err(|e| anyhow::anyhow!("reading checkpoints from {topic}: {e}"))?;
    let Some(m) = latest.get(wanted) else {
        return Ok(None); // never written, or reset by a tombstone
    };
    let payload = m.payload().unwrap_or_default();
    serde_json::from_slice::<T>(payload).map(Some).map_err(|e| {
        anyhow::anyhow!(
            "checkpoint {wanted} at offset {} is not readable: {e}",
            m.offset()
        )
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_record_shape() {
        let p = Position::new("/data/AccountChangeEvent", &[0, 0, 0, 0, 0, 0, 0x12, 0xab]);
        assert_eq!(p.replay_id, "00000000000012ab");
        assert_eq!(
            p.replay_bytes().unwrap(),
            vec![0, 0, 0, 0, 0, 0, 0x12, 0xab]
        );
        let r = p.record("sfjira.checkpoints");
        assert_eq!(
            r.key.as_deref(),
            Some(&b"salesforce-source:/data/AccountChangeEvent"[..])
        );
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("abc"), None);
    }
}
