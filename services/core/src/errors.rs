//! The error catalog: every error that can send a record to a DLQ has a stable code here, with
//! whether it is worth retrying and a one-line remediation for the operator who finds it in
//! `<stage>.dlq` (header `sfjira.error.code`) or in the logs. `sfjira errors` prints this table,
//! and `docs/errors.md` is generated from it, so the code and the docs cannot drift apart.
//!
//! Codes are never renumbered or reused: operators filter DLQ replays and alerts on them.

use std::fmt;

/// Who has to act on an error (after Arroyo's user / external / internal split).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDomain {
    /// The data or the configuration is wrong: fix it, then replay.
    User,
    /// A system we talk to (Kafka, the registry, Salesforce, Jira) failed or refused.
    External,
    /// A defect in sfjira: report it.
    Internal,
}

impl ErrorDomain {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorDomain::User => "user",
            ErrorDomain::External => "external",
            ErrorDomain::Internal => "internal",
        }
    }
}

macro_rules! catalog {
    ($( $variant:ident = $code:literal, $domain:ident, retryable: $retry:literal,
        $summary:literal, fix: $fix:literal; )*) => {
        /// A catalogued error code. See the module comment.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $( $variant, )* }

        impl ErrorCode {
            /// Every code, in catalog order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The stable code, e.g. `SFJ-1001`.
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $code, )* }
            }
            pub fn domain(self) -> ErrorDomain {
                match self { $( ErrorCode::$variant => ErrorDomain::$domain, )* }
            }
            /// Whether the failing operation may succeed if tried again unchanged.
            pub fn retryable(self) -> bool {
                match self { $( ErrorCode::$variant => $retry, )* }
            }
            /// What went wrong, in a few words.
            pub fn summary(self) -> &'static str {
                match self { $( ErrorCode::$variant => $summary, )* }
            }
            /// What the operator should do about it, in one line.
            pub fn remediation(self) -> &'static str {
                match self { $( ErrorCode::$variant => $fix, )* }
            }
        }
    };
}

catalog! {
    // 1xxx: reading and writing records (Avro, schema registry).
    NotConfluentAvro = "SFJ-1001", User, retryable: false,
        "value is not in the Confluent Avro wire format (magic byte 0 + schema id)",
        fix: "find the producer writing raw bytes to this topic; replay once it writes through the registry";
    SchemaNotFound = "SFJ-1002", User, retryable: false,
        "the schema id in the record is unknown to the schema registry",
        fix: "point the stage at the registry the producer used (registry.url), then replay";
    AvroBodyInvalid = "SFJ-1003", User, retryable: false,
        "the Avro body does not decode with the schema its id names",
        fix: "the producer wrote bytes that do not match its schema; fix the producer, then replay";
    RegistryUnavailable = "SFJ-1004", External, retryable: true,
        "the schema registry did not answer or answered 5xx",
        fix: "check the registry is up and reachable from the service (registry.url); records replay on their own once it answers";
    RecordDoesNotMatchSchema = "SFJ-1005", Internal, retryable: false,
        "a record could not be encoded with its own schema",
        fix: "a defect in sfjira: report it with the DLQ record attached";
    SchemaIncompatible = "SFJ-1006", User, retryable: false,
        "the registry refused a new schema version as not BACKWARD-compatible",
        fix: "make the change compatible (add fields with defaults, do not remove required ones) or register it under a new subject";

    // 2xxx: Kafka.
    KafkaProduceFailed = "SFJ-2001", External, retryable: true,
        "Kafka did not accept a record",
        fix: "check broker health and topic existence (sfjira topics apply); retried automatically";
    KafkaTransactionAborted = "SFJ-2002", External, retryable: true,
        "a Kafka transaction was aborted; its batch is re-processed",
        fix: "usually a rebalance or broker restart; if it repeats, check transaction.timeout.ms against the batch time";
    KafkaFatal = "SFJ-2003", External, retryable: false,
        "the Kafka client hit a fatal error (e.g. fenced by another instance with the same transactional id)",
        fix: "make sure each instance has its own service.instance_id; the service restarts its producer";
    TopicMissing = "SFJ-2004", User, retryable: false,
        "a topic the service needs does not exist",
        fix: "run `sfjira topics apply` (topics are declared in infra/topics.yaml)";

    // 3xxx: configuration.
    ConfigInvalid = "SFJ-3001", User, retryable: false,
        "the configuration is invalid",
        fix: "the start-up message names the key and the expected value; fix the YAML or the SFJIRA_ variable";

    MappingInvalid = "SFJ-3002", User, retryable: false,
        "the mapping file is invalid",
        fix: "the start-up message lists each problem with file:line and a fix; `sfjira mapping check` shows the same";

    // 4xxx: talking to Salesforce or Jira over HTTP.
    RateLimited = "SFJ-4001", External, retryable: true,
        "the target API answered 429 (rate limited)",
        fix: "none needed: retried after the server's Retry-After; if frequent, lower the sink's concurrency";
    TargetUnavailable = "SFJ-4002", External, retryable: true,
        "the target API answered 5xx or did not answer",
        fix: "check the target's status; retried with backoff, then dead-lettered for replay";
    AuthExpired = "SFJ-4003", External, retryable: true,
        "the access token expired or was revoked",
        fix: "none needed if re-authentication succeeds; otherwise check the integration user's credentials";
    RequestRejected = "SFJ-4004", User, retryable: false,
        "the target API rejected the request as invalid (4xx)",
        fix: "read sfjira.error message for the API's own error text; fix the mapping or the data, then replay";

    // 5xxx: mapping a record (the transformer).
    MappingExpressionFailed = "SFJ-5001", User, retryable: false,
        "a CEL expression of the mapping failed on this record",
        fix: "the message names the flow, field and expression; fix the expression (or guard it), then replay";
    ValueNotInTable = "SFJ-5002", User, retryable: false,
        "the source value has no entry in the field's value table",
        fix: "add the value (or a `default`) to the table named in the message, then replay";
    RequiredFieldEmpty = "SFJ-5003", User, retryable: false,
        "a field the mapping marks required came out empty",
        fix: "fill the field at the source, or relax `required` in the mapping, then replay";
    ValueNotConvertible = "SFJ-5004", User, retryable: false,
        "a value cannot be converted to the target field's type",
        fix: "fix the value at the source or the field's `type` in the mapping, then replay";
    SourceFieldMissing = "SFJ-5005", User, retryable: false,
        "the record lacks a field the mapping reads",
        fix: "if the field name is wrong, correct it in the mapping; if the record came from another producer or schema (`sfjira dlq show` shows it), fix that producer; then `sfjira dlq replay --stage transformer`";

    // 6xxx: salesforce-source.
    SalesforcePayloadUndecodable = "SFJ-6001", External, retryable: false,
        "a Change Data Capture event does not decode with the schema Salesforce named for it",
        fix: "the DLQ record holds the raw payload and schema id; report it to Salesforce support, then backfill the record";
    SalesforceReplayInvalid = "SFJ-6002", User, retryable: false,
        "Salesforce rejected the stored replay id (older than the 72 h retention, or the org moved)",
        fix: "run a backfill of the entity, then restart with salesforce_source.on_invalid_replay: latest (or earliest)";
    SalesforceLoginFailed = "SFJ-6003", User, retryable: false,
        "Salesforce refused the OAuth login of the source",
        fix: "check salesforce_source.login_url and auth (consumer key, secret or key, run-as user, connected app policies)";
    SalesforceSchemaUnusable = "SFJ-6004", External, retryable: false,
        "a change-event schema from GetSchema cannot be parsed or registered",
        fix: "the DLQ record names the schema id; check the registry's compatibility rule for the subject, then backfill";
    SalesforceSchemaUnavailable = "SFJ-6005", External, retryable: true,
        "GetSchema kept failing (not for the session) until salesforce_source.schema_retry was spent",
        fix: "check Salesforce's status page; the DLQ record holds the raw payload and schema id: replay it once GetSchema answers, or backfill the record";

    // 7xxx: jira-source (Jira webhooks and JQL polling).
    JiraWebhookMalformed = "SFJ-7001", User, retryable: false,
        "a Jira webhook delivery's body is not a JSON object",
        fix: "the raw body is in jira-source.dlq; check what posts to /webhooks/jira (a proxy rewriting bodies?)";
    JiraEventUnusable = "SFJ-7002", User, retryable: false,
        "a Jira event lacks what the canonical record needs (issue id, key, project, type or timestamps)",
        fix: "the delivery is in jira-source.dlq; check the webhook is not registered with excludeBody, then replay";
    JiraSignatureInvalid = "SFJ-7003", User, retryable: false,
        "a webhook delivery was unsigned or its X-Hub-Signature did not match (answered 401)",
        fix: "set jira_source.webhook_secret to the admin webhook's secret; repeated failures from unknown senders are probes";
    JiraPollFailed = "SFJ-7004", External, retryable: true,
        "a JQL poll cycle failed (Jira unreachable, 5xx, or the 429 retry budget spent)",
        fix: "check the site's status; the next cycle resumes from the watermark committed with the last records";
    JiraAuthRejected = "SFJ-7005", User, retryable: false,
        "Jira answered 401 or 403 to the integration account",
        fix: "check jira_source.email and jira_source.api_token (API tokens expire after at most a year)";

    // 8xxx: jira-sink (applying commands to Jira). Add codes above the salesforce-sink block.
    JiraCommandUndecodable = "SFJ-8001", User, retryable: false,
        "a record of jira.commands is Avro but not a command (written with another schema, or missing what a command must carry)",
        fix: "the raw record is in jira-sink.dlq; check what else produces to jira.commands, then drop or fix it and replay";
    JiraCommandInvalid = "SFJ-8002", User, retryable: false,
        "a command cannot be applied to Jira as written (no project or issue type for a create, no attach_to for a comment, a Salesforce target)",
        fix: "the message names what is missing; fix the flow in the mapping so its commands carry it, then replay";
    JiraFieldUnknown = "SFJ-8003", User, retryable: false,
        "a command names a field the Jira site does not have (neither an id nor a name listed by GET /field)",
        fix: "correct the field name in the mapping (custom fields by their exact name on the site), or create the field, then replay";
    JiraWriteRejected = "SFJ-8004", User, retryable: false,
        "Jira rejected the write as invalid (400/422); its errorMessages and errors are in the message",
        fix: "read the field errors in the message; a screen/field configuration fix: replay from jira-sink.dlq; a mapping or data fix: the dead command still holds the old value, so replay the source record (sfjira dlq replay --stage transformer, or sfjira backfill)";
    JiraWriteForbidden = "SFJ-8005", User, retryable: false,
        "Jira answered 401 or 403 to the integration account's write",
        fix: "check jira_sink.email and jira_sink.api_token, and that the account may create/edit/transition issues in the project, then replay";
    JiraTargetNotFound = "SFJ-8006", User, retryable: false,
        "Jira answered 404: the project, issue type or linked issue does not exist (or is not visible to the account)",
        fix: "check the flow's project and issue type and the account's browse permission; a deleted issue needs its link cleared, then replay";
    JiraLimitReached = "SFJ-8007", User, retryable: false,
        "Jira answered 413: a per-issue limit (comments, worklogs, links, attachments) is reached",
        fix: "the issue is full; archive or move content off it, or stop the flow for this record, then replay";
    JiraStatusUnreachable = "SFJ-8008", User, retryable: false,
        "no path of transitions leads from the issue's status to the command's target status",
        fix: "add the transition to the workflow (or a status table entry the workflow can reach) and replay";
    JiraLinkNotReady = "SFJ-8009", External, retryable: true,
        "the issue a comment, worklog or child belongs to has no link within jira_sink.link_wait_ms",
        fix: "the parent's own command failed or is far behind: look for it in jira-sink.dlq, replay it first, then replay this";
    JiraRetriesExhausted = "SFJ-8010", External, retryable: true,
        "Jira kept answering 429/5xx/409 (or timing out) for the whole retry budget",
        fix: "check the site's status and rate limits; replay from jira-sink.dlq once Jira answers again";

    // 9xxx: salesforce-sink (applying commands to Salesforce). Add codes above the closing brace.
    SalesforceCommandUndecodable = "SFJ-9001", User, retryable: false,
        "a record of salesforce.commands is Avro but not a command (written with another schema, or missing what a command must carry)",
        fix: "the raw record is in salesforce-sink.dlq; check what else produces to salesforce.commands, then drop or fix it and replay";
    SalesforceCommandUnsupported = "SFJ-9002", User, retryable: false,
        "the command cannot be applied to Salesforce (a kind Salesforce has no use for, or no link and no external id to upsert by)",
        fix: "give the flow a target.external_id_field (an External ID field of the object), or map the kind to one Salesforce supports, then replay";
    SalesforceFieldInvalid = "SFJ-9003", User, retryable: false,
        "Salesforce does not know a field of the command or refuses to write it (INVALID_FIELD, INVALID_FIELD_FOR_INSERT_UPDATE)",
        fix: "the sfjira.salesforce.fields header names the field: correct the mapping's field name or the integration user's field-level security, then replay";
    SalesforceValueInvalid = "SFJ-9004", User, retryable: false,
        "Salesforce refused a value (STRING_TOO_LONG, restricted picklist, wrong type, bad reference, validation rule)",
        fix: "the sfjira.salesforce.message header has Salesforce's text: fix the value at the source or the mapping's conversion, then replay";
    SalesforceRequiredFieldMissing = "SFJ-9005", User, retryable: false,
        "creating the record needs a field the command does not carry (REQUIRED_FIELD_MISSING)",
        fix: "map the field named in sfjira.salesforce.fields (or give it a default in the mapping), then replay";
    SalesforceRecordGone = "SFJ-9006", User, retryable: false,
        "the linked record is deleted or does not exist (ENTITY_IS_DELETED, INVALID_CROSS_REFERENCE_KEY)",
        fix: "undelete the record, or remove its row from sfjira.links so the next change creates it again, then replay";
    SalesforceRowLocked = "SFJ-9007", External, retryable: true,
        "the record stayed locked by other work through the whole retry budget (UNABLE_TO_LOCK_ROW)",
        fix: "find what holds the lock (bulk jobs, long Apex); replay the record once it is done, or raise salesforce_sink.retry.max_elapsed_ms";
    SalesforceDuplicate = "SFJ-9008", User, retryable: false,
        "the external id matches several records, or a unique field clashes with another record (DUPLICATE_EXTERNAL_ID, DUPLICATE_VALUE)",
        fix: "clean up the duplicate records named in the message so the external id is unique, then replay";
    SalesforceRowRejected = "SFJ-9009", User, retryable: false,
        "Salesforce rejected the row with a status code sfjira has no finer code for",
        fix: "read sfjira.salesforce.statusCode and sfjira.salesforce.message; fix the data, the mapping or the org's configuration, then replay";
    SalesforceApiLimitExceeded = "SFJ-9010", External, retryable: true,
        "the org's API request allocation is used up (REQUEST_LIMIT_EXCEEDED); the sink pauses instead of dropping",
        fix: "none needed: the sink resumes after salesforce_sink.limit_pause_secs; if frequent, raise the org's allocation or lower salesforce_sink.limit_share_threshold";
    SalesforceAttachTargetMissing = "SFJ-9011", User, retryable: true,
        "the record the command attaches to (target.attach_to) has no link after the bounded wait",
        fix: "make sure the parent's own command is applied (check salesforce-sink.dlq for it), then replay this one";
    SalesforceSinkLoginFailed = "SFJ-9012", User, retryable: false,
        "Salesforce refused the OAuth login of the sink",
        fix: "check salesforce_sink.login_url and salesforce_sink.auth (consumer key, secret or key, run-as user, connected app policies)";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown error code '{s}' (see `sfjira errors`)"))
    }
}

/// An error a stage could not get past for one record: a catalogued code plus the specific
/// message. This is what the DLQ router records. `class` names the Rust error type that caused
/// it (the DLQ's `exception.class.name`), so operators can group failures finer than the code.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct StageError {
    pub code: ErrorCode,
    pub message: String,
    pub class: &'static str,
    #[source]
    pub source: Option<anyhow::Error>,
}

impl StageError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        StageError {
            code,
            message: message.into(),
            class: "sfjira::StageError",
            source: None,
        }
    }

    /// Wraps a lower-level error, keeping its type name and chain.
    pub fn caused_by<E>(code: ErrorCode, message: impl Into<String>, err: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        StageError {
            code,
            message: message.into(),
            class: std::any::type_name::<E>(),
            source: Some(anyhow::Error::new(err)),
        }
    }

    pub fn retryable(&self) -> bool {
        self.code.retryable()
    }

    /// The same code and message for another subject (the cause chain is not cloneable, so it
    /// is kept as text).
    pub fn clone_for(&self, subject: &str) -> StageError {
        StageError {
            code: self.code,
            message: format!("{subject}: {}", self.chain()),
            class: self.class,
            source: None,
        }
    }

    /// The cause chain, one line per cause: the DLQ's `exception.stacktrace` (Rust has no
    /// stack trace worth shipping; the chain of contexts is what explains the failure).
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            out.push_str("\ncaused by: ");
            out.push_str(&cause.to_string());
            next = cause.source();
        }
        out
    }
}

/// The catalog as a Markdown table (for `sfjira errors --markdown` and docs/errors.md).
pub fn catalog_markdown() -> String {
    let mut out = String::from(
        "| code | domain | retryable | what happened | what to do |\n|---|---|---|---|---|\n",
    );
    for c in ErrorCode::ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            c.as_str(),
            c.domain().as_str(),
            if c.retryable() { "yes" } else { "no" },
            c.summary(),
            c.remediation()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {}", c.as_str());
            let digits = c
                .as_str()
                .strip_prefix("SFJ-")
                .expect("codes start with SFJ-");
            assert!(
                digits.len() == 4 && digits.chars().all(|d| d.is_ascii_digit()),
                "{c}"
            );
            assert!(
                !c.remediation().is_empty() && !c.remediation().contains('\n'),
                "{c}"
            );
        }
    }

    #[test]
    fn codes_parse_back() {
        for c in ErrorCode::ALL {
            assert_eq!(c.as_str().parse::<ErrorCode>().unwrap(), *c);
        }
        assert!("SFJ-9999".parse::<ErrorCode>().is_err());
    }

    #[test]
    fn chain_lists_causes() {
        let io = std::io::Error::other("disk on fire");
        let e = StageError::caused_by(ErrorCode::KafkaProduceFailed, "send failed", io);
        assert_eq!(e.class, "std::io::error::Error");
        assert_eq!(e.chain(), "SFJ-2001: send failed\ncaused by: disk on fire");
        assert!(e.retryable());
    }
}
