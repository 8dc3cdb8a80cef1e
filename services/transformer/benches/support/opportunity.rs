// The ~1 KB Opportunity change record the transformer benchmark uses (shared with
// examples/stage_cost.rs, which times each stage of the hot path).

const SCHEMA: &str = r#"{"type":"record","name":"OpportunityChangeEvent","namespace":"com.sforce.eventbus","fields":[
 {"name":"ChangeEventHeader","type":{"type":"record","name":"ChangeEventHeader","fields":[
   {"name":"entityName","type":"string"},{"name":"recordIds","type":{"type":"array","items":"string"}},
   {"name":"changeType","type":"string"},{"name":"changeOrigin","type":"string"},{"name":"transactionKey","type":"string"},
   {"name":"sequenceNumber","type":"int"},{"name":"commitTimestamp","type":"long"},{"name":"commitNumber","type":"long"},
   {"name":"commitUser","type":"string"},{"name":"nulledFields","type":{"type":"array","items":"string"}},
   {"name":"diffFields","type":{"type":"array","items":"string"}},{"name":"changedFields","type":{"type":"array","items":"string"}}]}},
 {"name":"replay_id","type":"string"},
 {"name":"Id","type":["null","string"]},{"name":"Name","type":["null","string"]},{"name":"StageName","type":["null","string"]},
 {"name":"Amount","type":["null","double"]},{"name":"CloseDate","type":["null","string"]},{"name":"AccountId","type":["null","string"]},
 {"name":"Description","type":["null","string"]}]}"#;

fn record(i: usize) -> Avro {
    let s = |v: &str| Avro::Union(1, Box::new(Avro::String(v.into())));
    let id = format!("0065g{i:013}");
    Avro::Record(vec![
        (
            "ChangeEventHeader".into(),
            Avro::Record(vec![
                ("entityName".into(), Avro::String("Opportunity".into())),
                (
                    "recordIds".into(),
                    Avro::Array(vec![Avro::String(id.clone())]),
                ),
                ("changeType".into(), Avro::String("UPDATE".into())),
                (
                    "changeOrigin".into(),
                    Avro::String("com/salesforce/api/soap/62.0;client=SfdcInternalAPI/".into()),
                ),
                (
                    "transactionKey".into(),
                    Avro::String(format!("00051a2b-{i:08}")),
                ),
                ("sequenceNumber".into(), Avro::Int(1)),
                (
                    "commitTimestamp".into(),
                    Avro::Long(1_795_780_800_000 + i as i64),
                ),
                ("commitNumber".into(), Avro::Long(i as i64)),
                (
                    "commitUser".into(),
                    Avro::String("0055g00000HumanAAA".into()),
                ),
                ("nulledFields".into(), Avro::Array(vec![])),
                ("diffFields".into(), Avro::Array(vec![])),
                (
                    "changedFields".into(),
                    Avro::Array(vec![
                        Avro::String("StageName".into()),
                        Avro::String("Amount".into()),
                    ]),
                ),
            ]),
        ),
        ("replay_id".into(), Avro::String(format!("{i:016x}"))),
        ("Id".into(), s(&id)),
        (
            "Name".into(),
            s(&format!("Acme Corporation — {i} seats, multi-year")),
        ),
        ("StageName".into(), s("Closed Won")),
        (
            "Amount".into(),
            Avro::Union(1, Box::new(Avro::Double(250_000.0 + i as f64))),
        ),
        ("CloseDate".into(), s("2026-12-15")),
        ("AccountId".into(), s("0015g00000AcmeAAA")),
        (
            "Description".into(),
            s(&"Rollout in two waves; EMEA first, then the Americas. ".repeat(14)),
        ),
    ])
}
