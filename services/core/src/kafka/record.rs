//! [`OutRecord`]: a record to produce, owning its bytes.
//!
//! rdkafka's `FutureRecord` borrows everything; sfjira often builds a record in one place and
//! sends it later (inside a transaction, after a retry, into a DLQ), so stages pass this owned
//! form around and borrow it only at the moment of sending.

use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutRecord {
    pub topic: String,
    /// `None` lets the partitioner choose (by key).
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    /// `None` is a tombstone (deletes the key in a compacted topic).
    pub payload: Option<Vec<u8>>,
    /// Header order is kept; duplicate names are allowed, as in Kafka.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Milliseconds since the epoch; `None` = the producer's clock.
    pub timestamp: Option<i64>,
}

impl OutRecord {
    pub fn new(topic: impl Into<String>) -> Self {
        OutRecord {
            topic: topic.into(),
            ..Default::default()
        }
    }

    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn payload(mut self, payload: impl Into<Vec<u8>>) -> Self {
        self.payload = Some(payload.into());
        self
    }

    /// Adds a header, replacing any existing header of the same name.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.set_header(name, value);
        self
    }

    pub fn set_header(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        let name = name.into();
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, Some(value.into())));
    }

    /// The last value of header `name`, if any.
    pub fn header_value(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// A copy of a consumed message (key, value, headers, timestamp), addressed to `topic`.
    pub fn copy_of<M: Message>(msg: &M, topic: impl Into<String>) -> Self {
        OutRecord {
            topic: topic.into(),
            partition: None,
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().map(<[u8]>::to_vec),
            headers: msg.headers().map(Self::header_list).unwrap_or_default(),
            timestamp: msg.timestamp().to_millis(),
        }
    }

    /// Kafka headers as this record keeps them (name, value), in order.
    pub fn header_list<H: Headers>(headers: &H) -> Vec<(String, Option<Vec<u8>>)> {
        headers
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
            .collect()
    }

    /// The headers in rdkafka's form.
    pub fn owned_headers(&self) -> OwnedHeaders {
        self.headers.iter().fold(
            OwnedHeaders::new_with_capacity(self.headers.len()),
            |hs, (k, v)| {
                hs.insert(Header {
                    key: k,
                    value: v.as_deref(),
                })
            },
        )
    }

    /// Borrows this record as an rdkafka record, with `headers` built by [`Self::owned_headers`].
    pub(crate) fn as_future_record<'a>(
        &'a self,
        headers: OwnedHeaders,
    ) -> FutureRecord<'a, [u8], [u8]> {
        let mut rec = FutureRecord::to(&self.topic).headers(headers);
        if let Some(p) = self.partition {
            rec = rec.partition(p);
        }
        if let Some(k) = &self.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &self.payload {
            rec = rec.payload(v.as_slice());
        }
        if let Some(ts) = self.timestamp {
            rec = rec.timestamp(ts);
        }
        rec
    }
}
