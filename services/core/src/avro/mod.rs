//! Avro records through the schema registry, in the Confluent wire format (magic byte `0`, the
//! schema id as 4 bytes big-endian, then the Avro binary body), so any Confluent-compatible
//! consumer can read sfjira's topics.
//!
//! Subjects follow the topic name strategy (`<topic>-value`). Each subject is set to BACKWARD
//! compatibility before its first registration: Apicurio enforces no rule until one is set
//! (reference/kafka-stack.md §2.3), and BACKWARD is what lets a reader on the new schema read
//! records written with the old one.
//!
//! The hot path makes no registry call:
//! - writing: [`AvroCodec::register`] is called once per (subject, schema) — typically at start,
//!   or when a source sees a new upstream schema version — and returns a [`WriterSchema`];
//!   [`AvroCodec::encode`] is then pure computation. (schema_registry_converter's encoder caches
//!   by subject only, so a second version of a schema on the same subject would be served the
//!   first one; registering ourselves keys the cache by the schema itself.)
//! - reading: schema_registry_converter's `AvroDecoder` fetches each schema id once
//!   (`GET /schemas/ids/{id}`) and caches it; the body is read here, through a reader that
//!   notices a body cut short — apache-avro reads a string or union index that meets the end
//!   of the input as a null instead of failing, so a truncated record would otherwise decode as
//!   one with empty fields. [`AvroCodec::decode_json`] reads the body straight into JSON
//!   ([`json`]) with the same checks, for stages that work on JSON anyway (the transformer).
//! - both refuse a body of a recursive schema nested past [`json`]'s depth limit (SFJ-1003),
//!   the tree decoder after a walk over the body ([`nesting`]): apache-avro's recursion has no
//!   bound of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use serde::Deserialize;

use crate::config::RegistryConfig;
use crate::errors::{ErrorCode, StageError};

pub mod json;
mod nesting;
use json::{JsonReader, ReadError};
use nesting::NestingLimit;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A schema registered under a subject: what a writer needs to encode without the registry.
pub struct WriterSchema {
    pub subject: String,
    pub id: u32,
    pub schema: Schema,
    /// The schema resolved for writing, built on first use. Resolving costs more than encoding
    /// a record, so it is done once per schema, not per record. It needs a `'static` schema:
    /// a copy is leaked, once per registered schema version (a handful per process).
    resolved: OnceLock<GenericDatumWriter<'static>>,
    /// The schema's 64-bit Rabin fingerprint, computed on first use: writers of a fixed layout
    /// check their schema by it on every record, so the check is one integer comparison.
    fingerprint: OnceLock<u64>,
}

impl WriterSchema {
    pub fn new(subject: impl Into<String>, id: u32, schema: Schema) -> Self {
        WriterSchema {
            subject: subject.into(),
            id,
            schema,
            resolved: OnceLock::new(),
            fingerprint: OnceLock::new(),
        }
    }

    /// The 64-bit Rabin fingerprint of the schema's Parsing Canonical Form (Avro spec): equal
    /// for schemas that write the same bytes, whatever their docs, defaults or key order.
    pub fn fingerprint(&self) -> u64 {
        *self
            .fingerprint
            .get_or_init(|| rabin_fingerprint(&self.schema))
    }

    fn writer(&self) -> Result<&GenericDatumWriter<'static>, apache_avro::Error> {
        if let Some(w) = self.resolved.get() {
            return Ok(w);
        }
        let schema: &'static Schema = Box::leak(Box::new(self.schema.clone()));
        let writer = GenericDatumWriter::builder(schema).build()?;
        Ok(self.resolved.get_or_init(|| writer))
    }
}

impl std::fmt::Debug for WriterSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterSchema")
            .field("subject", &self.subject)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A decoded record: an Avro [`Value`] ([`AvroCodec::decode`]) or JSON
/// ([`AvroCodec::decode_json`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<V = Value> {
    pub schema_id: u32,
    /// The writer's record name (`namespace.Name`), when the schema is a named type.
    pub name: Option<String>,
    pub value: V,
}

pub struct AvroCodec {
    http: reqwest::Client,
    base_url: String,
    auth: Option<(String, String)>,
    decoder: AvroDecoder,
    /// (subject, schema JSON) → registered schema.
    writers: Mutex<HashMap<(String, String), Arc<WriterSchema>>>,
    /// Schema id → its resolved reader (resolving costs more than decoding a record; the schema
    /// is leaked once per id, a handful per process, as for writers).
    readers: Mutex<HashMap<u32, Arc<SchemaReader>>>,
}

/// A fetched schema ready for reading, and its record name.
struct SchemaReader {
    /// apache-avro's reader of the schema; `None` when it cannot resolve the schema on its own
    /// (registry references): the converter's decoder is used then.
    tree: Option<GenericDatumReader<'static>>,
    name: Option<String>,
    /// Reads bodies straight into JSON, when the schema's types allow ([`json`]).
    json: Option<JsonReader>,
    /// For a recursive schema: the depth check run before the tree decoder ([`nesting`]).
    nesting: Option<NestingLimit>,
}

impl AvroCodec {
    pub fn new(cfg: &RegistryConfig) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let base_url = cfg.url.trim_end_matches('/').to_string();
        let auth = match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.expose().to_string())),
            _ => None,
        };
        let mut settings = SrSettings::new_builder(base_url.clone());
        settings.set_timeout(timeout);
        if let Some((u, p)) = &auth {
            settings.set_basic_authorization(u, Some(p));
        }
        let settings = settings
            .build()
            .map_err(|e| anyhow::anyhow!("schema registry client for {base_url}: {e}"))?;
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(AvroCodec {
            http,
            base_url,
            auth,
            decoder: AvroDecoder::new(settings),
            writers: Mutex::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
        })
    }

    /// The value subject of `topic` (topic name strategy).
    pub fn value_subject(topic: &str) -> String {
        format!("{topic}-value")
    }

    /// Registers `schema` as the value schema of `topic` (idempotent: the registry answers the
    /// existing id for a schema it already has). Cached: one registry call per schema.
    pub async fn register(
        &self,
        topic: &str,
        schema: &Schema,
    ) -> Result<Arc<WriterSchema>, StageError> {
        let subject = Self::value_subject(topic);
        // The full JSON, not the Parsing Canonical Form: that form drops field defaults, and
        // defaults are what make an added field BACKWARD-compatible.
        let schema_json = serde_json::to_string(schema).map_err(|e| {
            StageError::caused_by(
                ErrorCode::RecordDoesNotMatchSchema,
                format!("serialising the schema for {subject}"),
                e,
            )
        })?;
        let cache_key = (subject.clone(), schema_json);
        if let Some(w) = self.writers.lock().expect("writer cache").get(&cache_key) {
            return Ok(w.clone());
        }
        self.set_compatibility(&subject, "BACKWARD").await?;
        let id = self.post_schema(&subject, &cache_key.1).await?;
        let writer = Arc::new(WriterSchema::new(subject, id, schema.clone()));
        self.writers
            .lock()
            .expect("writer cache")
            .insert(cache_key, writer.clone());
        Ok(writer)
    }

    /// Encodes `value` in the Confluent wire format with a registered schema. No I/O.
    pub fn encode(&self, writer: &WriterSchema, value: Value) -> Result<Vec<u8>, StageError> {
        encode_framed(writer, value)
    }

    /// Decodes a Confluent-framed Avro value, fetching its writer schema once per id.
    pub async fn decode(&self, bytes: &[u8]) -> Result<Decoded, StageError> {
        let schema_id = confluent_schema_id(bytes)?;
        let reader = self.reader(schema_id).await?;
        self.decode_tree(schema_id, &reader, bytes).await
    }

    /// [`Self::decode`] into JSON ([`json::to_json`]'s shape), read straight from the body when
    /// the schema allows: the same value and the same errors, without the value tree.
    pub async fn decode_json(
        &self,
        bytes: &[u8],
    ) -> Result<Decoded<serde_json::Value>, StageError> {
        let schema_id = confluent_schema_id(bytes)?;
        let reader = self.reader(schema_id).await?;
        let Some(json) = reader.json.as_ref() else {
            let d = self.decode_tree(schema_id, &reader, bytes).await?;
            return Ok(Decoded {
                schema_id,
                name: d.name,
                value: json::to_json(d.value),
            });
        };
        let mut body = &bytes[5..];
        let value = json
            .read(&mut body)
            .map_err(|e| read_error(schema_id, bytes, e))?;
        whole_body_read(schema_id, body.len())?;
        Ok(Decoded {
            schema_id,
            name: reader.name.clone(),
            value,
        })
    }

    /// The body as an Avro value tree, with the schema's reader when this codec could resolve
    /// it, else with the converter's decoder.
    async fn decode_tree(
        &self,
        schema_id: u32,
        r: &SchemaReader,
        bytes: &[u8],
    ) -> Result<Decoded, StageError> {
        if let Some(limit) = &r.nesting {
            limit
                .check(&bytes[5..])
                .map_err(|e| read_error(schema_id, bytes, e))?;
        }
        let Some(tree) = &r.tree else {
            // The converter's decoder, without the check for a body cut short.
            return match self.decoder.decode(Some(bytes)).await {
                Ok(d) => Ok(Decoded {
                    schema_id,
                    name: d.name.map(|n| n.fullname(None)),
                    value: d.value,
                }),
                Err(e) => Err(undecodable(schema_id, e.to_string())),
            };
        };
        let mut body = EndWatch::new(&bytes[5..]);
        let value = tree
            .read_value(&mut body)
            .map_err(|e| undecodable(schema_id, e.to_string()))?;
        if body.hit_end {
            return Err(cut_short(schema_id, bytes));
        }
        whole_body_read(schema_id, body.left())?;
        Ok(Decoded {
            schema_id,
            name: r.name.clone(),
            value,
        })
    }

    /// Schema `id`'s reader, fetched on first use.
    async fn reader(&self, id: u32) -> Result<Arc<SchemaReader>, StageError> {
        let cached = self.readers.lock().expect("reader cache").get(&id).cloned();
        match cached {
            Some(r) => Ok(r),
            None => self.fetch_reader(id).await,
        }
    }

    /// Fetches schema `id` (once: the decoder caches it) and caches its reader. Registry
    /// failures map to catalogued errors: unreachable is retryable, unknown is not.
    async fn fetch_reader(&self, id: u32) -> Result<Arc<SchemaReader>, StageError> {
        let schema = match self.decoder.get_schema(id).await {
            Ok(s) => s,
            Err(e) if e.retriable => {
                return Err(StageError::new(
                    ErrorCode::RegistryUnavailable,
                    format!("fetching schema {id} from {}: {e}", self.base_url),
                ));
            }
            Err(e) => {
                // Not cached as a permanent failure: the operator may fix the registry and
                // replay.
                self.decoder.remove_errors_from_cache();
                return Err(StageError::new(
                    ErrorCode::SchemaNotFound,
                    format!(
                        "schema id {id} is not in the registry at {}: {e}",
                        self.base_url
                    ),
                ));
            }
        };
        let name = match &schema.parsed {
            Schema::Record(r) => Some(r.name.fullname(None)),
            _ => None,
        };
        let leaked: &'static Schema = Box::leak(Box::new(schema.parsed.clone()));
        let tree = GenericDatumReader::builder(leaked).build().ok();
        let reader = Arc::new(SchemaReader {
            json: tree.as_ref().and_then(|_| JsonReader::for_schema(leaked)),
            nesting: NestingLimit::for_schema(leaked),
            tree,
            name,
        });
        self.readers
            .lock()
            .expect("reader cache")
            .insert(id, reader.clone());
        Ok(reader)
    }

    /// Sets the compatibility level of `subject` (`PUT /config/{subject}`).
    pub async fn set_compatibility(&self, subject: &str, level: &str) -> Result<(), StageError> {
        let url = format!("{}/config/{}", self.base_url, subject);
        let body = serde_json::json!({ "compatibility": level });
        self.call(self.http.put(&url).json(&body), &url)
            .await
            .map(|_| ())
    }

    /// The compatibility level the registry reports for `subject` (`GET /config/{subject}`).
    pub async fn compatibility(&self, subject: &str) -> Result<String, StageError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Config {
            compatibility_level: String,
        }
        let url = format!("{}/config/{}", self.base_url, subject);
        let text = self.call(self.http.get(&url), &url).await?;
        let cfg: Config = serde_json::from_str(&text).map_err(|e| {
            StageError::caused_by(
                ErrorCode::RegistryUnavailable,
                format!("unexpected answer from {url}"),
                e,
            )
        })?;
        Ok(cfg.compatibility_level)
    }

    async fn post_schema(&self, subject: &str, schema_json: &str) -> Result<u32, StageError> {
        #[derive(Deserialize)]
        struct Registered {
            id: u32,
        }
        let url = format!("{}/subjects/{}/versions", self.base_url, subject);
        let body = serde_json::json!({ "schema": schema_json, "schemaType": "AVRO" });
        let text = self.call(self.http.post(&url).json(&body), &url).await?;
        let reg: Registered = serde_json::from_str(&text).map_err(|e| {
            StageError::caused_by(
                ErrorCode::RegistryUnavailable,
                format!("unexpected answer from {url}"),
                e,
            )
        })?;
        Ok(reg.id)
    }

    /// Sends a registry request; maps failures to catalogued errors. Returns the body.
    async fn call(&self, req: reqwest::RequestBuilder, url: &str) -> Result<String, StageError> {
        let mut req = req
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(reqwest::header::ACCEPT, CONTENT_TYPE);
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await.map_err(|e| {
            StageError::caused_by(ErrorCode::RegistryUnavailable, format!("calling {url}"), e)
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(text);
        }
        let code = match status.as_u16() {
            409 => ErrorCode::SchemaIncompatible,
            s if s >= 500 || s == 429 => ErrorCode::RegistryUnavailable,
            _ => ErrorCode::SchemaIncompatible,
        };
        Err(StageError::new(
            code,
            format!("{url} answered {status}: {}", truncate(&text, 500)),
        ))
    }
}

impl std::fmt::Debug for AvroCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroCodec")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// A reader over an Avro body that remembers whether the decoder asked for bytes past its end:
/// a complete record never does, so that means the body was cut short.
struct EndWatch<'a> {
    rest: &'a [u8],
    hit_end: bool,
}

impl<'a> EndWatch<'a> {
    fn new(body: &'a [u8]) -> Self {
        EndWatch {
            rest: body,
            hit_end: false,
        }
    }

    fn left(&self) -> usize {
        self.rest.len()
    }
}

impl std::io::Read for EndWatch<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.len() > self.rest.len() {
            self.hit_end = true;
        }
        let n = buf.len().min(self.rest.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

/// [`WriterSchema::fingerprint`] of any schema.
pub fn rabin_fingerprint(schema: &Schema) -> u64 {
    let bytes = schema.fingerprint::<apache_avro::rabin::Rabin>().bytes;
    u64::from_le_bytes(bytes.try_into().expect("a Rabin fingerprint is 8 bytes"))
}

/// What a body read here ([`json`], [`nesting`]) went wrong with, as the codec's error.
fn read_error(schema_id: u32, framed: &[u8], e: ReadError) -> StageError {
    match e {
        ReadError::CutShort => cut_short(schema_id, framed),
        ReadError::Invalid(why) => undecodable(schema_id, why),
    }
}

fn undecodable(schema_id: u32, why: String) -> StageError {
    StageError::new(
        ErrorCode::AvroBodyInvalid,
        format!("the body does not decode with schema {schema_id}: {why}"),
    )
}

fn cut_short(schema_id: u32, framed: &[u8]) -> StageError {
    undecodable(
        schema_id,
        format!(
            "the body ends before the record does ({} bytes): cut short",
            framed.len() - 5
        ),
    )
}

/// Bytes after the record mean it was written with another schema.
fn whole_body_read(schema_id: u32, left: usize) -> Result<(), StageError> {
    if left > 0 {
        return Err(undecodable(
            schema_id,
            format!("{left} bytes are left after the record: not a record of this schema"),
        ));
    }
    Ok(())
}

/// `value` in the Confluent wire format: magic byte, schema id, Avro body.
pub fn encode_framed(writer: &WriterSchema, value: Value) -> Result<Vec<u8>, StageError> {
    let encoding_error = |e: apache_avro::Error| {
        StageError::caused_by(
            ErrorCode::RecordDoesNotMatchSchema,
            format!(
                "encoding a record with schema {} of {}",
                writer.id, writer.subject
            ),
            e,
        )
    };
    let mut out = Vec::with_capacity(256);
    out.push(0);
    out.extend_from_slice(&writer.id.to_be_bytes());
    // Written straight after the 5-byte prefix: no second buffer, no copy.
    writer
        .writer()
        .and_then(|w| w.write_value(&mut out, value))
        .map_err(encoding_error)?;
    Ok(out)
}

/// The schema id of a Confluent-framed value, or [`ErrorCode::NotConfluentAvro`].
pub fn confluent_schema_id(bytes: &[u8]) -> Result<u32, StageError> {
    match bytes {
        [0, a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        [] => Err(StageError::new(ErrorCode::NotConfluentAvro, "empty value")),
        [m, ..] if *m != 0 => Err(StageError::new(
            ErrorCode::NotConfluentAvro,
            format!("first byte is {m:#04x}, expected the magic byte 0x00"),
        )),
        _ => Err(StageError::new(
            ErrorCode::NotConfluentAvro,
            format!(
                "{} bytes: too short for magic byte + schema id",
                bytes.len()
            ),
        )),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_is_checked_before_any_registry_call() {
        assert_eq!(confluent_schema_id(&[0, 0, 0, 1, 2, 9]).unwrap(), 258);
        for bad in [&b""[..], &b"{\"json\":1}"[..], &[0, 0, 1][..]] {
            assert_eq!(
                confluent_schema_id(bad).unwrap_err().code,
                ErrorCode::NotConfluentAvro
            );
        }
    }
}
