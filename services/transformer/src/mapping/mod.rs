//! The mapping language: which source records become which commands, written in YAML with CEL
//! expressions (see `docs/mapping.md` for the user's guide).
//!
//! - `raw.rs`: the file as written (serde types keeping positions).
//! - `compile.rs`: checks everything and compiles the CEL expressions once, so a record never
//!   meets a mistake the loader could have caught.
//! - `model.rs`: the compiled flows the engine runs.
//! - `reads.rs`: what a flow's expressions read of a record (so the engine converts only that).
//! - `error.rs`: errors that name file, line, column, path, the problem and the fix.

mod compile;
mod error;
mod model;
mod raw;
mod reads;

pub use error::{MappingError, MappingErrors};
pub use model::*;
pub use reads::{ScopeNeeds, record_fields};

use std::path::Path;

impl Mapping {
    /// Reads and validates a mapping file.
    pub fn load(path: &Path) -> Result<Mapping, MappingErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            MappingErrors(vec![MappingError {
                file: file.clone(),
                line: 0,
                column: 0,
                path: String::new(),
                problem: format!("cannot read the file: {e}"),
                fix: "check the path (the transformer's `--mapping`, or SFJIRA_MAPPING)".into(),
            }])
        })?;
        Self::parse(&text, &file)
    }

    /// Validates mapping text; `file` is only used in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Mapping, MappingErrors> {
        compile::compile(text, file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(yaml: &str) -> Vec<String> {
        match Mapping::parse(yaml, "m.yaml") {
            Ok(_) => panic!("expected errors"),
            Err(MappingErrors(errs)) => errs.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn the_demo_mapping_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/mapping.yaml");
        let m = Mapping::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.flows.len(), 6);
    }

    #[test]
    fn errors_name_file_line_path_and_fix() {
        let yaml = "version: 1
flows:
  - name: f
    from: salesforce.Opportunity
    to: jira.issue
    when: 'record.StageName =='
    target: { project: P }
    fields:
      summary: { from: Name, expr: 'record.Name' }
      owner_only: { from: X, owner: jira }
      bad_type: { from: Y, type: multipicklist }
      table_default: { from: Z, default: d }
";
        let errs = errors(yaml);
        let expect = [
            "m.yaml:6:11: flows[0].when: invalid CEL `record.StageName ==`",
            "m.yaml:5:9: flows[0].target.issue_type: a flow to jira.issue needs target.issue_type; fix: name the issue type",
            "m.yaml:9:7: flows[0].fields.summary: needs exactly one of from, expr, value (has 2)",
            "m.yaml:10:37: flows[0].fields.owner_only.owner: the field is owned by jira but this flow comes from salesforce; fix: only flows from the owner write a field",
            "m.yaml:11:34: flows[0].fields.bad_type.type: type 'multipicklist' cannot be written to jira",
            "flows[0].fields.table_default.default: `default` without a `table`",
        ];
        for e in expect {
            assert!(
                errs.iter().any(|x| x.contains(e)),
                "missing `{e}` in:\n{}",
                errs.join("\n")
            );
        }
        assert_eq!(errs.len(), expect.len(), "{}", errs.join("\n"));
    }

    #[test]
    fn structural_errors_point_at_the_key() {
        let errs = errors(
            "version: 1\nflows:\n  - name: f\n    from: salesforce.Account\n    to: jira.issue\n    tagret: {}\n",
        );
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("m.yaml:6:")
                && errs[0].contains("unknown key 'tagret'")
                && errs[0].contains("target"),
            "{}",
            errs[0]
        );
        let errs = errors(
            "version: 2\nflows:\n  - name: f\n    from: jira.issue\n    to: jira.comment\n    target: {attach_to: 'x'}\n",
        );
        assert!(
            errs.iter().any(|e| e.contains("unsupported version 2")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("must go to the other system")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.contains("unknown variable x")),
            "{errs:?}"
        );
        let errs = errors(
            "version: 1\nflows:\n  - {name: a, from: salesforce.A, to: jira.issue, target: {project: P, issue_type: T}}\n  - {name: a, from: salesforce.A, to: jira.issue, target: {project: P, issue_type: T}}\n",
        );
        assert!(errs[0].contains("flow name 'a' is used twice"), "{errs:?}");
    }

    #[test]
    fn delivery_modes() {
        let flow = |d: &str| {
            format!(
                "version: 1\nflows:\n  - {{name: a, from: jira.issue, to: salesforce.Opportunity, delivery: '{d}', target: {{external_id_field: K}}}}\n"
            )
        };
        assert_eq!(
            Mapping::parse(&flow("batched 5m"), "m").unwrap().flows[0].delivery,
            Delivery::Batched(std::time::Duration::from_secs(300))
        );
        assert!(errors(&flow("sometimes"))[0].contains("is not a delivery mode"));
    }
}
