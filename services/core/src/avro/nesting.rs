//! A bound on how deep a body of a recursive schema nests, checked before apache-avro's tree
//! decoder reads it.
//!
//! apache-avro decodes by recursion and sets no limit: a schema that contains itself (a linked
//! list, a tree of comments) lets a body nest as deep as its bytes allow, and a few thousand
//! levels overflow the thread's stack — the stage crashes on the record on every restart and
//! it never reaches the DLQ. [`json::JsonReader`](super::json) counts its own depth; this walk
//! does the same for the tree decoder (every stage but the transformer, and the transformer's
//! fallback for types the JSON reader does not cover), without building any value.
//!
//! Only recursive schemas get a walk: any other schema nests no deeper than it is written.

use std::collections::{HashMap, HashSet};

use apache_avro::Schema;
use apache_avro::schema::{FixedSchema, InnerDecimalSchema, UuidSchema};

use super::json::{MAX_DEPTH, ReadError, blocks, invalid, length, long, take, union_branch};

/// A recursive schema compiled to the shapes of its encoding (Avro 1.11 spec, "Binary
/// Encoding"): enough to step over a body, level by level.
#[derive(Debug)]
pub struct NestingLimit {
    shapes: Vec<Shape>,
}

#[derive(Debug)]
enum Shape {
    /// A fixed number of bytes: null 0, boolean 1, float 4, double 8, a `fixed` its size.
    Sized(usize),
    /// A zig-zag varint: int, long, enum and the logical types over them.
    Varint,
    /// A length, then that many bytes: bytes, string.
    Prefixed,
    Union(Vec<usize>),
    Record(Vec<usize>),
    Array(usize),
    /// Values after their string keys.
    Map(usize),
}

impl NestingLimit {
    /// The walk for `schema` when it refers to itself (or one of its named types to an
    /// enclosing one); `None` otherwise.
    pub fn for_schema(schema: &Schema) -> Option<NestingLimit> {
        let mut compiler = Compiler::default();
        compiler.compile(schema, None);
        compiler.recursive.then_some(NestingLimit {
            shapes: compiler.shapes,
        })
    }

    /// Steps over the body: `Invalid` when it nests deeper than [`MAX_DEPTH`] (or is not a
    /// value of the schema), `CutShort` when it ends early. What follows the value is left to
    /// the decoder's own checks.
    pub fn check(&self, mut body: &[u8]) -> Result<(), ReadError> {
        self.step(0, &mut body, 0)
    }

    fn step(&self, at: usize, b: &mut &[u8], depth: usize) -> Result<(), ReadError> {
        if depth > MAX_DEPTH {
            return Err(invalid(format!("values nested deeper than {MAX_DEPTH}")));
        }
        let inner = depth + 1;
        match &self.shapes[at] {
            Shape::Sized(n) => {
                take(b, *n)?;
            }
            Shape::Varint => {
                long(b)?;
            }
            Shape::Prefixed => {
                let n = length(b)?;
                take(b, n)?;
            }
            Shape::Union(branches) => self.step(union_branch(b, branches)?, b, inner)?,
            Shape::Record(fields) => {
                for &field in fields {
                    self.step(field, b, inner)?;
                }
            }
            Shape::Array(items) => blocks(b, |b| self.step(*items, b, inner))?,
            Shape::Map(values) => blocks(b, |b| {
                let n = length(b)?;
                take(b, n)?;
                self.step(*values, b, inner)
            })?,
        }
        Ok(())
    }
}

#[derive(Default)]
struct Compiler {
    shapes: Vec<Shape>,
    /// Full name of a named type → its shape.
    named: HashMap<String, usize>,
    /// Records whose fields are being compiled: a reference to one of them is recursion.
    open: HashSet<String>,
    recursive: bool,
}

impl Compiler {
    /// Compiles `schema` (names resolved in `namespace`) and returns its shape's index. A
    /// reference to a name the schema never defined (apache-avro refuses such a schema before
    /// this is built) becomes an empty record.
    fn compile(&mut self, schema: &Schema, namespace: Option<&str>) -> usize {
        let leaf = match schema {
            Schema::Null => Shape::Sized(0),
            Schema::Boolean => Shape::Sized(1),
            Schema::Float => Shape::Sized(4),
            Schema::Double => Shape::Sized(8),
            Schema::Int
            | Schema::Long
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Shape::Varint,
            Schema::Bytes
            | Schema::String
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::String | UuidSchema::Bytes) => Shape::Prefixed,
            Schema::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => Shape::Prefixed,
                InnerDecimalSchema::Fixed(f) => return self.fixed(f, namespace),
            },
            Schema::Uuid(UuidSchema::Fixed(f)) | Schema::Fixed(f) | Schema::Duration(f) => {
                return self.fixed(f, namespace);
            }
            Schema::Enum(e) => {
                let at = self.push(Shape::Varint);
                self.named.insert(e.name.fullname(namespace), at);
                return at;
            }
            Schema::Ref { name } => {
                let full = name.fullname(namespace);
                self.recursive |= self.open.contains(&full);
                return match self.named.get(&full) {
                    Some(&at) => at,
                    None => self.push(Shape::Record(Vec::new())),
                };
            }
            Schema::Record(r) => {
                // Registered before its fields, so a field may refer to the record itself.
                let full = r.name.fullname(namespace);
                let at = self.push(Shape::Record(Vec::new()));
                self.named.insert(full.clone(), at);
                self.open.insert(full.clone());
                let inner = r.name.namespace().or(namespace);
                let fields = r
                    .fields
                    .iter()
                    .map(|f| self.compile(&f.schema, inner))
                    .collect();
                self.open.remove(&full);
                self.shapes[at] = Shape::Record(fields);
                return at;
            }
            Schema::Union(u) => {
                let branches = u
                    .variants()
                    .iter()
                    .map(|v| self.compile(v, namespace))
                    .collect();
                Shape::Union(branches)
            }
            Schema::Array(a) => Shape::Array(self.compile(&a.items, namespace)),
            Schema::Map(m) => Shape::Map(self.compile(&m.types, namespace)),
        };
        self.push(leaf)
    }

    /// A `fixed` (also under a decimal, uuid or duration): registered by name, since a later
    /// field may refer to it.
    fn fixed(&mut self, f: &FixedSchema, namespace: Option<&str>) -> usize {
        let at = self.push(Shape::Sized(f.size));
        self.named.insert(f.name.fullname(namespace), at);
        at
    }

    fn push(&mut self, shape: Shape) -> usize {
        self.shapes.push(shape);
        self.shapes.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::types::Value;
    use apache_avro::writer::datum::GenericDatumWriter;

    use super::*;

    const LINKED_LIST: &str = r#"{"type": "record", "name": "Node", "fields": [
        {"name": "next", "type": ["null", "Node"]}]}"#;

    /// A linked list `levels` nodes long: union branch 1 (a Node) per node, then branch 0.
    fn nested(levels: usize) -> Vec<u8> {
        let mut body = vec![2u8; levels];
        body.push(0);
        body
    }

    fn limit(schema: &str) -> Option<NestingLimit> {
        NestingLimit::for_schema(&Schema::parse_str(schema).unwrap())
    }

    #[test]
    fn only_recursive_schemas_get_a_limit() {
        let flat = r#"{"type": "record", "name": "Opp", "fields": [
            {"name": "a", "type": {"type": "record", "name": "Addr", "fields": [{"name": "c", "type": "string"}]}},
            {"name": "b", "type": ["null", "Addr"]},
            {"name": "c", "type": {"type": "array", "items": "Addr"}}]}"#;
        assert!(
            limit(flat).is_none(),
            "a named type used twice is not recursion"
        );
        assert!(limit(LINKED_LIST).is_some());
        let through_array = r#"{"type": "record", "name": "Tree", "fields": [
            {"name": "children", "type": {"type": "array", "items": "Tree"}}]}"#;
        assert!(limit(through_array).is_some());
        let mutual = r#"{"type": "record", "name": "A", "fields": [
            {"name": "b", "type": {"type": "record", "name": "B", "fields": [
                {"name": "a", "type": {"type": "map", "values": ["null", "A"]}}]}}]}"#;
        assert!(limit(mutual).is_some());
    }

    #[test]
    fn nesting_past_the_limit_is_invalid() {
        let limit = limit(LINKED_LIST).unwrap();
        // 60 nodes, a record and a union each: 120 levels, under the limit.
        assert!(limit.check(&nested(60)).is_ok());
        for levels in [65, 100_000] {
            match limit.check(&nested(levels)) {
                Err(ReadError::Invalid(msg)) => assert!(msg.contains("nested deeper"), "{msg}"),
                other => panic!("{levels}: {other:?}"),
            }
        }
    }

    /// Steps over a value of every type, exactly to its end; every shorter body is cut short.
    #[test]
    fn steps_over_every_type_to_the_end() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "All", "namespace": "t", "fields": [
            {"name": "n", "type": "null"}, {"name": "b", "type": "boolean"},
            {"name": "i", "type": "int"}, {"name": "l", "type": "long"},
            {"name": "f", "type": "float"}, {"name": "d", "type": "double"},
            {"name": "by", "type": "bytes"}, {"name": "s", "type": "string"},
            {"name": "fx", "type": {"type": "fixed", "name": "Three", "size": 3}},
            {"name": "fx_again", "type": "Three"},
            {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
            {"name": "decf", "type": {"type": "fixed", "name": "D5", "size": 5, "logicalType": "decimal", "precision": 9}},
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "dur", "type": {"type": "fixed", "name": "Dur", "size": 12, "logicalType": "duration"}},
            {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "tu", "type": {"type": "long", "logicalType": "time-micros"}},
            {"name": "ns", "type": {"type": "long", "logicalType": "timestamp-nanos"}},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X", "Y"]}},
            {"name": "m", "type": {"type": "map", "values": "long"}},
            {"name": "next", "type": ["null", "All"]}]}"#,
        )
        .unwrap();
        let node = |next: Value| {
            Value::Record(vec![
                ("n".into(), Value::Null),
                ("b".into(), Value::Boolean(true)),
                ("i".into(), Value::Int(-300)),
                ("l".into(), Value::Long(1 << 40)),
                ("f".into(), Value::Float(1.5)),
                ("d".into(), Value::Double(-2.25)),
                ("by".into(), Value::Bytes(vec![1, 2, 3, 4])),
                ("s".into(), Value::String("Straße".into())),
                ("fx".into(), Value::Fixed(3, vec![7, 8, 9])),
                ("fx_again".into(), Value::Fixed(3, vec![1, 1, 1])),
                ("dec".into(), Value::Decimal(vec![0x30, 0x39].into())),
                (
                    "decf".into(),
                    Value::Decimal(vec![0, 0, 0, 0x30, 0x39].into()),
                ),
                (
                    "id".into(),
                    Value::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap()),
                ),
                (
                    "dur".into(),
                    Value::Duration(apache_avro::Duration::new(
                        apache_avro::Months::new(1),
                        apache_avro::Days::new(2),
                        apache_avro::Millis::new(3),
                    )),
                ),
                ("tm".into(), Value::TimeMillis(1000)),
                ("tu".into(), Value::TimeMicros(1_000_000)),
                ("ns".into(), Value::TimestampNanos(-5)),
                ("e".into(), Value::Enum(1, "Y".into())),
                (
                    "m".into(),
                    Value::Map([("k".to_string(), Value::Long(-1))].into_iter().collect()),
                ),
                ("next".into(), next),
            ])
        };
        let value = node(Value::Union(
            1,
            Box::new(node(Value::Union(0, Box::new(Value::Null)))),
        ));
        let mut body = Vec::new();
        GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value(&mut body, value)
            .unwrap();
        let limit = NestingLimit::for_schema(&schema).unwrap();
        let mut rest = &body[..];
        limit.step(0, &mut rest, 0).unwrap();
        assert!(rest.is_empty(), "{} bytes left", rest.len());
        for len in 0..body.len() {
            let mut short = &body[..len];
            assert!(
                matches!(limit.step(0, &mut short, 0), Err(ReadError::CutShort)),
                "{len} of {} bytes",
                body.len()
            );
        }
    }
}
