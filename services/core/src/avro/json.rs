//! Avro records as JSON, the way sfjira's mappings read them: records and maps become objects,
//! unions their branch's value, enums their symbol, and dates and timestamps ISO 8601 text
//! (`2026-12-15`, `2026-11-27T10:00:00.000Z`) so a mapping sees what a person would.
//!
//! Two ways there, with the same result: [`to_json`] converts an already-decoded
//! [`Value`] tree, and [`JsonReader`] reads the Avro body straight into JSON. The reader exists
//! for speed: the transformer decodes one record per source change, and decoding into a value
//! tree, then copying every field name and string into JSON, was a fifth of its CPU per
//! record. It covers the types sfjira's source schemas use; a schema with anything else
//! (fixed, decimal, uuid, times of day, nanosecond timestamps, durations) gets no reader and
//! takes the tree path. `same_json_both_ways` keeps the two in step.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::types::Value;
use chrono::{DateTime, NaiveDate, SecondsFormat};
use serde_json::{Map, Number, Value as Json};

/// An Avro value as JSON (see the module comment).
pub fn to_json(v: Value) -> Json {
    match v {
        Value::Date(days) => date_text(days),
        Value::TimestampMillis(ms) | Value::LocalTimestampMillis(ms) => timestamp_text(ms),
        Value::TimestampMicros(us) | Value::LocalTimestampMicros(us) => timestamp_text(us / 1000),
        Value::Union(_, inner) => to_json(*inner),
        Value::Record(fields) => {
            Json::Object(fields.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
        Value::Map(m) => Json::Object(m.into_iter().map(|(k, v)| (k, to_json(v))).collect()),
        Value::Array(items) => Json::Array(items.into_iter().map(to_json).collect()),
        other => Json::try_from(other).unwrap_or(Json::Null),
    }
}

/// Days since 1970-01-01 as `YYYY-MM-DD`. A day no calendar has stays text that no date
/// conversion accepts (SFJ-5004), never a bare number: a date field would read that as epoch
/// milliseconds (1970-01-02).
fn date_text(days: i32) -> Json {
    let text = days
        .checked_add(719_163)
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("day {days} after 1970-01-01 (out of range)"));
    Json::String(text)
}

/// Epoch milliseconds as RFC 3339 UTC with milliseconds; the number itself when out of range.
fn timestamp_text(ms: i64) -> Json {
    DateTime::from_timestamp_millis(ms)
        .map(|t| Json::String(t.to_rfc3339_opts(SecondsFormat::Millis, true)))
        .unwrap_or_else(|| Json::Number(ms.into()))
}

/// Why a body did not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The body ended before the record did.
    CutShort,
    /// The bytes are not a value of the schema (a bad union branch, enum index, length or
    /// UTF-8).
    Invalid(String),
}

/// A schema compiled for reading bodies straight into JSON. Nodes live in one list and refer
/// to each other by index, so a named type used again (or inside itself) is one node.
#[derive(Debug)]
pub struct JsonReader {
    nodes: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Date,
    TimestampMillis,
    TimestampMicros,
    Enum(Vec<String>),
    Union(Vec<usize>),
    Record(Vec<(String, usize)>),
    Array(usize),
    Map(usize),
}

impl JsonReader {
    /// The reader for `schema`, or `None` when it uses a type this reader leaves to
    /// [`to_json`].
    pub fn for_schema(schema: &Schema) -> Option<JsonReader> {
        let mut compiler = Compiler::default();
        compiler.compile(schema, None)?;
        Some(JsonReader {
            nodes: compiler.nodes,
        })
    }

    /// Reads one value from the front of `body`, leaving the rest in it.
    pub fn read(&self, body: &mut &[u8]) -> Result<Json, ReadError> {
        self.node(0, body, 0)
    }

    fn node(&self, at: usize, b: &mut &[u8], depth: usize) -> Result<Json, ReadError> {
        // Only a recursive schema nests without bound; a body that nests it this deep is an
        // error with a code (the DLQ), not a stack overflow that takes the stage down on every
        // restart.
        if depth > MAX_DEPTH {
            return Err(invalid(format!("values nested deeper than {MAX_DEPTH}")));
        }
        let inner = depth + 1;
        Ok(match &self.nodes[at] {
            Node::Null => Json::Null,
            Node::Boolean => match take(b, 1)?[0] {
                0 => Json::Bool(false),
                1 => Json::Bool(true),
                other => return Err(invalid(format!("{other} is not a boolean"))),
            },
            Node::Int => Json::Number(int(b)?.into()),
            Node::Long => Json::Number(long(b)?.into()),
            Node::Float => {
                let f = f32::from_le_bytes(take(b, 4)?.try_into().expect("4 bytes"));
                Number::from_f64(f64::from(f)).map_or(Json::Null, Json::Number)
            }
            Node::Double => {
                let f = f64::from_le_bytes(take(b, 8)?.try_into().expect("8 bytes"));
                Number::from_f64(f).map_or(Json::Null, Json::Number)
            }
            Node::Bytes => {
                let n = length(b)?;
                Json::Array(take(b, n)?.iter().map(|&x| Json::from(x)).collect())
            }
            Node::String => Json::String(string(b)?),
            Node::Date => date_text(int(b)?),
            Node::TimestampMillis => timestamp_text(long(b)?),
            Node::TimestampMicros => timestamp_text(long(b)? / 1000),
            Node::Enum(symbols) => {
                let i = int(b)?;
                let symbol = usize::try_from(i).ok().and_then(|i| symbols.get(i));
                match symbol {
                    Some(s) => Json::String(s.clone()),
                    None => return Err(invalid(format!("enum index {i} is out of range"))),
                }
            }
            Node::Union(branches) => self.node(union_branch(b, branches)?, b, inner)?,
            Node::Record(fields) => {
                let mut obj = Map::new();
                for (name, at) in fields {
                    obj.insert(name.clone(), self.node(*at, b, inner)?);
                }
                Json::Object(obj)
            }
            Node::Array(items) => {
                let mut out = Vec::new();
                blocks(b, |b| {
                    out.push(self.node(*items, b, inner)?);
                    Ok(())
                })?;
                Json::Array(out)
            }
            Node::Map(values) => {
                let mut obj = Map::new();
                blocks(b, |b| {
                    let key = string(b)?;
                    obj.insert(key, self.node(*values, b, inner)?);
                    Ok(())
                })?;
                Json::Object(obj)
            }
        })
    }
}

/// Deepest nesting read (records, unions, arrays and maps each count one level), here and
/// before apache-avro's tree decoder ([`super::nesting`]). sfjira's schemas nest a handful of
/// levels. On a 2 MB thread stack (tokio's workers) apache-avro's release build overflowed
/// between 400 and 800 levels of a recursive union, a debug build between 40 and 60 (measured
/// once, 2026-11-28): 128 is well inside what the released stages survive.
pub(super) const MAX_DEPTH: usize = 128;

#[derive(Default)]
struct Compiler {
    nodes: Vec<Node>,
    /// Full name of a named type → its node.
    named: HashMap<String, usize>,
}

impl Compiler {
    /// Compiles `schema` (named types resolved in `namespace`) and returns its node's index.
    fn compile(&mut self, schema: &Schema, namespace: Option<&str>) -> Option<usize> {
        let leaf = match schema {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
            Schema::Int => Node::Int,
            Schema::Long => Node::Long,
            Schema::Float => Node::Float,
            Schema::Double => Node::Double,
            Schema::Bytes => Node::Bytes,
            Schema::String => Node::String,
            Schema::Date => Node::Date,
            Schema::TimestampMillis | Schema::LocalTimestampMillis => Node::TimestampMillis,
            Schema::TimestampMicros | Schema::LocalTimestampMicros => Node::TimestampMicros,
            Schema::Enum(e) => {
                let at = self.push(Node::Enum(e.symbols.clone()));
                self.named.insert(e.name.fullname(namespace), at);
                return Some(at);
            }
            Schema::Ref { name } => return self.named.get(&name.fullname(namespace)).copied(),
            Schema::Record(r) => {
                // Registered before its fields, so a field may refer to the record itself.
                let at = self.push(Node::Record(Vec::new()));
                self.named.insert(r.name.fullname(namespace), at);
                let inner = r.name.namespace().or(namespace);
                let mut fields = Vec::with_capacity(r.fields.len());
                for f in &r.fields {
                    fields.push((f.name.clone(), self.compile(&f.schema, inner)?));
                }
                self.nodes[at] = Node::Record(fields);
                return Some(at);
            }
            Schema::Union(u) => {
                let at = self.push(Node::Null);
                let branches = u
                    .variants()
                    .iter()
                    .map(|v| self.compile(v, namespace))
                    .collect::<Option<Vec<_>>>()?;
                self.nodes[at] = Node::Union(branches);
                return Some(at);
            }
            Schema::Array(a) => {
                let at = self.push(Node::Null);
                self.nodes[at] = Node::Array(self.compile(&a.items, namespace)?);
                return Some(at);
            }
            Schema::Map(m) => {
                let at = self.push(Node::Null);
                self.nodes[at] = Node::Map(self.compile(&m.types, namespace)?);
                return Some(at);
            }
            _ => return None,
        };
        Some(self.push(leaf))
    }

    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }
}

pub(super) fn invalid(why: String) -> ReadError {
    ReadError::Invalid(why)
}

pub(super) fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], ReadError> {
    if b.len() < n {
        return Err(ReadError::CutShort);
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

/// A zig-zag varint long (Avro 1.11 spec, "Binary Encoding").
pub(super) fn long(b: &mut &[u8]) -> Result<i64, ReadError> {
    let mut z: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = take(b, 1)?[0];
        if shift == 63 && byte > 1 {
            return Err(invalid("a varint longer than 64 bits".into()));
        }
        z |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
        }
    }
    Err(invalid("a varint longer than 64 bits".into()))
}

fn int(b: &mut &[u8]) -> Result<i32, ReadError> {
    let n = long(b)?;
    i32::try_from(n).map_err(|_| invalid(format!("{n} does not fit an int")))
}

/// A union's branch index, read, and the node of that branch.
pub(super) fn union_branch(b: &mut &[u8], branches: &[usize]) -> Result<usize, ReadError> {
    let i = long(b)?;
    usize::try_from(i)
        .ok()
        .and_then(|i| branches.get(i).copied())
        .ok_or_else(|| invalid(format!("union branch {i} is out of range")))
}

pub(super) fn length(b: &mut &[u8]) -> Result<usize, ReadError> {
    let n = long(b)?;
    usize::try_from(n).map_err(|_| invalid(format!("negative length {n}")))
}

fn string(b: &mut &[u8]) -> Result<String, ReadError> {
    let n = length(b)?;
    let bytes = take(b, n)?;
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|e| invalid(format!("a string is not UTF-8: {e}")))
}

/// An array's or map's blocks: a count, then that many items; a negative count is followed
/// by the block's size in bytes; a zero count ends them.
pub(super) fn blocks(
    b: &mut &[u8],
    mut item: impl FnMut(&mut &[u8]) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    loop {
        let count = long(b)?;
        if count == 0 {
            return Ok(());
        }
        if count < 0 {
            long(b)?; // the block's size in bytes, for readers that skip it
        }
        // Every item but a null takes a byte at least: a count beyond that is a corrupt body,
        // not a reason to loop (or allocate) for ever.
        if count.unsigned_abs() > (b.len() as u64).max(1 << 20) {
            return Err(invalid(format!(
                "a block of {count} items in a body of {} bytes",
                b.len()
            )));
        }
        for _ in 0..count.unsigned_abs() {
            item(b)?;
        }
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
