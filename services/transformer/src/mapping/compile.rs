//! From the file as written to the flows the engine runs: every check happens here, once, and
//! every problem found is reported (not just the first), each with its position and a fix.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use marked_yaml::{LoaderOptions, Spanned};

use super::error::{MappingError, MappingErrors};
use super::model::*;
use super::raw::*;

/// Variables a mapping expression may read.
pub(crate) const VARIABLES: &[&str] = &["record", "event"];

const JIRA_ENTITIES: &[&str] = &["issue", "comment", "worklog"];

struct Compiler<'a> {
    file: &'a str,
    errors: Vec<MappingError>,
}

pub(super) fn compile(text: &str, file: &str) -> Result<Mapping, MappingErrors> {
    let mut c = Compiler {
        file,
        errors: Vec::new(),
    };
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let raw: RawMapping = match marked_yaml::from_yaml_with_options(0, text, options) {
        Ok(raw) => raw,
        Err(e) => {
            c.yaml_error(e);
            return Err(MappingErrors(c.errors));
        }
    };
    if *raw.version != 1 {
        c.error_at(
            raw.version.span(),
            "version",
            format!("unsupported version {}", *raw.version),
            "write `version: 1`",
        );
    }
    let echo = EchoRules {
        salesforce_client_id: raw.echo.salesforce_client_id.map(|s| s.to_string()),
        jira_integration_account: raw.echo.jira_integration_account.map(|s| s.to_string()),
        jira_history_marker: raw.echo.jira_history_marker.map(|s| s.to_string()),
    };
    if raw.flows.is_empty() {
        c.error_plain(
            "flows",
            "the mapping has no flows",
            "add at least one flow under `flows:`",
        );
    }
    let mut names = HashSet::new();
    let mut flows = Vec::new();
    for (i, f) in raw.flows.into_iter().enumerate() {
        let path = format!("flows[{i}]");
        if !names.insert(f.name.to_string()) {
            c.error_at(
                f.name.span(),
                &format!("{path}.name"),
                format!("flow name '{}' is used twice", *f.name),
                "give every flow its own name (command ids are derived from it)",
            );
        }
        if let Some(flow) = c.flow(f, &path) {
            flows.push(flow);
        }
    }
    if c.errors.is_empty() {
        Ok(Mapping {
            file: file.to_string(),
            echo,
            flows,
        })
    } else {
        Err(MappingErrors(c.errors))
    }
}

impl Compiler<'_> {
    fn flow(&mut self, f: RawFlow, path: &str) -> Option<Flow> {
        let before = self.errors.len();
        let name = f.name.to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.error_at(
                f.name.span(),
                &format!("{path}.name"),
                format!("'{name}' is not a valid flow name"),
                "use letters, digits, '-' and '_' only",
            );
        }
        let from = self.endpoint(&f.from, &format!("{path}.from"));
        let to = self.endpoint(&f.to, &format!("{path}.to"));
        let (from, to) = (from?, to?);
        if from.system == to.system {
            self.error_at(
                f.to.span(),
                &format!("{path}.to"),
                format!("a flow from {from} must go to the other system"),
                "flows go from salesforce.* to jira.* or from jira.* to salesforce.*",
            );
        }
        let when = f
            .when
            .as_ref()
            .and_then(|w| self.expr(w, &format!("{path}.when")));
        let on_change = f.on_change.iter().map(|s| s.to_string()).collect();
        let on_delete = match f.on_delete.as_ref().map(|s| s.as_str()) {
            None | Some("ignore") => OnDelete::Ignore,
            Some("delete") => OnDelete::Delete,
            Some("close") if to.system == System::Jira => OnDelete::Close,
            Some(other) => {
                let s = f.on_delete.as_ref().expect("matched Some");
                self.error_at(
                    s.span(),
                    &format!("{path}.on_delete"),
                    format!("'{other}' is not a delete rule here"),
                    "use ignore, delete, or close (Jira targets only)",
                );
                OnDelete::Ignore
            }
        };
        let delivery = match &f.delivery {
            None => Delivery::Realtime,
            Some(d) => self.delivery(d, &format!("{path}.delivery")),
        };
        let target = self.target(f.target, &to, path, f.to.span());
        let mut fields = Vec::new();
        for (target_field, raw) in f.fields {
            let fpath = format!("{path}.fields.{}", *target_field);
            if let Some(rule) = self.field(&target_field, raw, &from, &to, &fpath) {
                fields.push(rule);
            }
        }
        let status = match f.status {
            Some(raw) if to.system == System::Jira && to.entity == "issue" => {
                let at = Spanned::new(*f.name.span(), "status".to_string());
                self.field(&at, raw, &from, &to, &format!("{path}.status"))
            }
            Some(_) => {
                self.error_at(
                    f.to.span(),
                    &format!("{path}.status"),
                    "`status` only applies to flows to jira.issue".into(),
                    "remove it, or map the status to a field",
                );
                None
            }
            None => None,
        };
        if self.errors.len() > before {
            return None;
        }
        let mut flow = Flow {
            name,
            from,
            to,
            when,
            on_change,
            on_delete,
            delivery,
            target,
            fields,
            status,
            scope: Default::default(),
        };
        flow.scope = super::ScopeNeeds::of(flow.exprs().map(|e| e.source.as_str()));
        Some(flow)
    }

    fn endpoint(&mut self, s: &S, path: &str) -> Option<Endpoint> {
        let fix = "write salesforce.<Object> (e.g. salesforce.Opportunity) or jira.issue, jira.comment, jira.worklog";
        match s.split_once('.') {
            Some(("salesforce", obj))
                if !obj.is_empty()
                    && obj.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Some(Endpoint {
                    system: System::Salesforce,
                    entity: obj.to_string(),
                })
            }
            Some(("jira", e)) if JIRA_ENTITIES.contains(&e) => Some(Endpoint {
                system: System::Jira,
                entity: e.to_string(),
            }),
            _ => {
                self.error_at(
                    s.span(),
                    path,
                    format!("'{}' is not a source or target", s.as_str()),
                    fix,
                );
                None
            }
        }
    }

    fn target(
        &mut self,
        t: RawTarget,
        to: &Endpoint,
        path: &str,
        to_span: &marked_yaml::Span,
    ) -> Target {
        let tpath = format!("{path}.target");
        let compiled = Target {
            project: t.project.as_ref().map(|s| s.to_string()),
            issue_type: t.issue_type.as_ref().map(|s| s.to_string()),
            parent: t
                .parent
                .as_ref()
                .and_then(|e| self.expr(e, &format!("{tpath}.parent"))),
            attach_to: t
                .attach_to
                .as_ref()
                .and_then(|e| self.expr(e, &format!("{tpath}.attach_to"))),
            external_id_field: t.external_id_field.as_ref().map(|s| s.to_string()),
            external_id: t
                .external_id
                .as_ref()
                .and_then(|e| self.expr(e, &format!("{tpath}.external_id"))),
            update_only: t.update_only,
        };
        // Reported at the flow's `to:`, which is what asks for the key.
        let mut require = |ok: bool, key: &str, fix: &str| {
            if !ok {
                self.error_at(
                    to_span,
                    &format!("{tpath}.{key}"),
                    format!("a flow to {to} needs target.{key}"),
                    fix,
                );
            }
        };
        match (to.system, to.entity.as_str()) {
            (System::Jira, "issue") => {
                require(
                    compiled.project.is_some(),
                    "project",
                    "name the Jira project key, e.g. `project: PROJ`",
                );
                require(
                    compiled.issue_type.is_some(),
                    "issue_type",
                    "name the issue type, e.g. `issue_type: Story`",
                );
            }
            (System::Jira, _) => require(
                t.attach_to.is_some(),
                "attach_to",
                "give a CEL expression for the issue's external reference, e.g. `'salesforce:Opportunity:' + record.WhatId`",
            ),
            (System::Salesforce, _) => require(
                compiled.external_id_field.is_some(),
                "external_id_field",
                "name the external-id field used for upserts, e.g. `external_id_field: Jira_Key__c`",
            ),
        }
        if to.system == System::Salesforce
            && (t.project.is_some() || t.issue_type.is_some() || t.parent.is_some())
        {
            self.error_at(
                to_span,
                &tpath,
                "project, issue_type and parent only apply to Jira targets".into(),
                "remove them from this flow's target",
            );
        }
        compiled
    }

    fn field(
        &mut self,
        target: &S,
        raw: RawField,
        from: &Endpoint,
        to: &Endpoint,
        path: &str,
    ) -> Option<FieldRule> {
        let at = self.position(target.span());
        let sources = [raw.from.is_some(), raw.expr.is_some(), raw.value.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if sources != 1 {
            self.error_at(target.span(), path, format!("needs exactly one of from, expr, value (has {sources})"), "say where the value comes from: `from: Field`, `expr: <CEL>` or `value: <constant>`");
            return None;
        }
        let source = if let Some(f) = &raw.from {
            ValueSource::Field(f.to_string())
        } else if let Some(e) = &raw.expr {
            ValueSource::Expr(self.expr(e, &format!("{path}.expr"))?)
        } else {
            ValueSource::Const(raw.value.as_ref().expect("one source").to_string())
        };
        if raw.default.is_some() && raw.table.is_none() {
            self.error_at(
                target.span(),
                &format!("{path}.default"),
                "`default` without a `table`".into(),
                "add a value table, or drop `default`",
            );
        }
        if raw.table.is_some() && raw.value.is_some() {
            self.error_at(
                target.span(),
                &format!("{path}.table"),
                "a table on a constant never changes anything".into(),
                "use `from:` or `expr:` with a table, or drop the table",
            );
        }
        let ty = match &raw.ty {
            None => None,
            Some(t) => match TargetType::parse(t) {
                Some(ty) if ty.fits(to.system) => Some(ty),
                Some(_) => {
                    self.error_at(
                        t.span(),
                        &format!("{path}.type"),
                        format!("type '{}' cannot be written to {}", t.as_str(), to.system),
                        "pick a type of the target system",
                    );
                    None
                }
                None => {
                    self.error_at(
                        t.span(),
                        &format!("{path}.type"),
                        format!("unknown type '{}'", t.as_str()),
                        &format!("use one of: {}", TargetType::NAMES),
                    );
                    None
                }
            },
        };
        let owner = match raw.owner.as_ref().map(|s| s.as_str()) {
            None => match from.system {
                System::Salesforce => Owner::Salesforce,
                System::Jira => Owner::Jira,
            },
            Some("salesforce") => Owner::Salesforce,
            Some("jira") => Owner::Jira,
            Some("both") => Owner::Both,
            Some(other) => {
                let s = raw.owner.as_ref().expect("matched Some");
                self.error_at(
                    s.span(),
                    &format!("{path}.owner"),
                    format!("unknown owner '{other}'"),
                    "use salesforce, jira or both",
                );
                return None;
            }
        };
        let writes_against_owner = matches!(
            (owner, from.system),
            (Owner::Salesforce, System::Jira) | (Owner::Jira, System::Salesforce)
        );
        if writes_against_owner {
            let s = raw.owner.as_ref().expect("an explicit owner");
            self.error_at(
                s.span(),
                &format!("{path}.owner"),
                format!("the field is owned by {} but this flow comes from {}", s.as_str(), from.system),
                &format!("only flows from the owner write a field: set owner to {} or both, or remove the field from this flow", from.system),
            );
            return None;
        }
        let table = raw.table.map(|t| {
            t.into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        });
        Some(FieldRule {
            target: target.to_string(),
            source,
            table,
            default: raw.default.map(|d| d.to_string()),
            ty,
            owner,
            required: raw.required,
            at,
        })
    }

    fn delivery(&mut self, d: &S, path: &str) -> Delivery {
        let fix = "write `realtime`, or `batched <interval>` such as `batched 30s`, `batched 5m`";
        if d.as_str() == "realtime" {
            return Delivery::Realtime;
        }
        let parsed = d.strip_prefix("batched ").and_then(parse_duration);
        match parsed {
            Some(interval) if interval >= Duration::from_secs(1) => Delivery::Batched(interval),
            _ => {
                self.error_at(
                    d.span(),
                    path,
                    format!("'{}' is not a delivery mode", d.as_str()),
                    fix,
                );
                Delivery::Realtime
            }
        }
    }

    fn expr(&mut self, s: &S, path: &str) -> Option<Expr> {
        let at = self.position(s.span());
        let rewritten = match rewrite_changed_calls(s) {
            Ok(r) => r,
            Err(problem) => {
                self.error_at(
                    s.span(),
                    path,
                    problem,
                    "write the field name in quotes: changed(\"StageName\")",
                );
                return None;
            }
        };
        match cel::Program::compile(&rewritten) {
            Ok(program) => {
                let refs = program.references();
                let unknown_vars: Vec<&str> = refs
                    .variables()
                    .into_iter()
                    .filter(|v| !VARIABLES.contains(v) && *v != crate::engine::CHANGED_VAR)
                    .collect();
                if !unknown_vars.is_empty() {
                    self.error_at(s.span(), path, format!("unknown variable {} in `{}`", unknown_vars.join(", "), s.as_str()), "read source fields as record.<Field>; event.type, event.actor, event.source are also available");
                    return None;
                }
                let source = s.to_string();
                Some(Expr {
                    reads: super::record_fields(&source).0,
                    opaque: source.contains("event.") || source.contains("record["),
                    source,
                    program,
                    at,
                })
            }
            Err(e) => {
                let msg = e
                    .errors
                    .iter()
                    .map(|e| format!("{} (at {}:{} of the expression)", e.msg, e.pos.0, e.pos.1))
                    .collect::<Vec<_>>()
                    .join("; ");
                self.error_at(s.span(), path, format!("invalid CEL `{}`: {msg}", s.as_str()), "fix the expression (https://cel.dev); strings are quoted, e.g. record.StageName == \"Closed Won\"");
                None
            }
        }
    }

    fn position(&self, span: &marked_yaml::Span) -> String {
        match span.start() {
            Some(m) => format!("{}:{}:{}", self.file, m.line(), m.column()),
            None => self.file.to_string(),
        }
    }

    fn error_at(&mut self, span: &marked_yaml::Span, path: &str, problem: String, fix: &str) {
        let (line, column) = span
            .start()
            .map(|m| (m.line(), m.column()))
            .unwrap_or((0, 0));
        self.errors.push(MappingError {
            file: self.file.to_string(),
            line,
            column,
            path: path.to_string(),
            problem,
            fix: fix.to_string(),
        });
    }

    fn error_plain(&mut self, path: &str, problem: &str, fix: &str) {
        self.errors.push(MappingError {
            file: self.file.to_string(),
            line: 0,
            column: 0,
            path: path.to_string(),
            problem: problem.to_string(),
            fix: fix.to_string(),
        });
    }

    fn yaml_error(&mut self, e: marked_yaml::FromYamlError) {
        let (line, column, path, problem) = match &e {
            marked_yaml::FromYamlError::ParseYaml(load) => {
                let text = load.to_string();
                (0, 0, String::new(), text)
            }
            marked_yaml::FromYamlError::FromNode(node) => {
                let (l, c) = node
                    .start_mark()
                    .map(|m| (m.line(), m.column()))
                    .unwrap_or((0, 0));
                let problem = match &**node {
                    marked_yaml::Error::UnknownFieldError(field, expected, _) => {
                        format!(
                            "unknown key '{field}' (expected one of: {})",
                            expected.join(", ")
                        )
                    }
                    other => other.to_string(),
                };
                (l, c, node.path().unwrap_or_default().to_string(), problem)
            }
        };
        let fix = "see docs/mapping.md for the keys each section takes".to_string();
        self.errors.push(MappingError {
            file: self.file.to_string(),
            line,
            column,
            path,
            problem,
            fix,
        });
    }
}

/// `changed("X")` → `("X" in __sfjira_changed)`: a membership test against a per-record
/// variable is far cheaper than a custom function, which would need its own CEL context per
/// record. The argument must be a quoted field name.
pub(crate) fn rewrite_changed_calls(expr: &str) -> Result<String, String> {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(i) = rest.find("changed(") {
        let before = &rest[..i];
        let is_call = !before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.');
        out.push_str(before);
        let after = &rest[i + "changed(".len()..];
        if !is_call {
            out.push_str("changed(");
            rest = after;
            continue;
        }
        let arg = after.trim_start();
        let quote = arg.chars().next().filter(|c| *c == '"' || *c == '\'');
        let parsed = quote.and_then(|q| {
            let inner = &arg[1..];
            let end = inner.find(q)?;
            let name = &inner[..end];
            let tail = inner[end + 1..].trim_start();
            tail.strip_prefix(')').map(|t| (name, t))
        });
        match parsed {
            Some((name, tail)) if !name.is_empty() && !name.contains('"') => {
                out.push_str(&format!("(\"{name}\" in {})", crate::engine::CHANGED_VAR));
                rest = tail;
            }
            _ => return Err("changed() takes one field name in quotes".into()),
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `30s`, `5m`, `2h`.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}
