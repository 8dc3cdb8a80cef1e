//! Loading real files and environments end to end, through [`load_from`] so the process
//! environment is never touched (tests run in parallel).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::*;

const SECRET: &str = "hunter2-s3cret";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/sfjira.yaml")
}

/// The variables the example's secrets name (`infra/demo/env.sh` sets them for `make demo`).
const EXAMPLE_SECRETS: [(&str, &str); 3] = [
    ("SFJIRA_SALESFORCE_CLIENT_SECRET", "sf-secret"),
    ("SFJIRA_JIRA_API_TOKEN", "jira-token"),
    ("SFJIRA_JIRA_WEBHOOK_SECRET", "hook-secret"),
];

/// `EXAMPLE_SECRETS` plus `more`.
fn example_vars(more: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = vars(&EXAMPLE_SECRETS);
    all.extend(vars(more));
    all
}

/// A file in the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(content: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("sfjira-config-{}-{n}", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(content.as_bytes())
            .unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const MINIMAL: &str = "\
kafka:
  bootstrap_servers: 127.0.0.1:19092
registry:
  url: http://127.0.0.1:18081/apis/ccompat/v7
";

/// `MINIMAL` with `extra` lines added to the `kafka` section (from line 3 on).
fn kafka_extra(extra: &str) -> String {
    let bootstrap = "  bootstrap_servers: 127.0.0.1:19092\n";
    MINIMAL.replace(bootstrap, &format!("{bootstrap}{extra}"))
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_yaml(yaml: &str, env: &[(&str, &str)]) -> Result<SfjiraConfig, ConfigError> {
    let file = TempFile::new(yaml);
    load_from(Some(&file.0), vars(env))
}

fn load_err(yaml: &str, env: &[(&str, &str)]) -> ConfigError {
    let err = load_yaml(yaml, env).expect_err("config should be rejected");
    assert!(
        !err.to_string().contains(SECRET),
        "error leaks the secret: {err}"
    );
    err
}

#[test]
fn loads_the_example_config() {
    let cfg = load_from(Some(&example()), example_vars(&[])).unwrap();
    assert_eq!(cfg.kafka.bootstrap_servers, "127.0.0.1:19092");
    for section in [
        cfg.salesforce_source.is_some(),
        cfg.jira_source.is_some(),
        cfg.jira_sink.is_some(),
        cfg.salesforce_sink.is_some(),
        cfg.transformer.is_some(),
    ] {
        assert!(section, "the example configures every service");
    }
    assert_eq!(cfg.jira_sink.unwrap().api_token.expose(), "jira-token");
    assert_eq!(cfg.registry.url, "http://127.0.0.1:18081/apis/ccompat/v7");
    assert_eq!(cfg.registry.timeout_ms, 10_000);
    assert_eq!(cfg.telemetry.log_format, LogFormat::Pretty);
    assert_eq!(cfg.http.listen.to_string(), "127.0.0.1:9400");
    assert!(!cfg.service.instance_id.is_empty());
}

#[test]
fn config_path_from_sfjira_config() {
    let example = example();
    let cfg = load_from(
        None,
        example_vars(&[("SFJIRA_CONFIG", example.to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(cfg.kafka.bootstrap_servers, "127.0.0.1:19092");
    // No file at all: the environment alone is enough.
    let cfg = load_from(
        None,
        vars(&[
            ("SFJIRA_KAFKA__BOOTSTRAP_SERVERS", "k:9092"),
            (
                "SFJIRA_REGISTRY__URL",
                "https://r.example.com/apis/ccompat/v7",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.kafka.bootstrap_servers, "k:9092");
}

#[test]
fn env_override_wins_over_yaml() {
    let cfg = load_from(
        Some(&example()),
        example_vars(&[
            (
                "SFJIRA_KAFKA__BOOTSTRAP_SERVERS",
                "broker1:9092,broker2:9093",
            ),
            ("SFJIRA_REGISTRY__TIMEOUT_MS", "2500"),
            ("SFJIRA_TELEMETRY__LOG_FORMAT", "json"),
            ("SFJIRA_SERVICE__INSTANCE_ID", "12345"),
            ("SFJIRA_KAFKA__PROPERTIES__SECURITY_PROTOCOL", "SASL_SSL"),
            // Not config keys: no `__` after the prefix.
            ("SFJIRA_TEST_KAFKA", "whatever"),
            ("SFJIRA_LOG", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.kafka.bootstrap_servers, "broker1:9092,broker2:9093");
    assert_eq!(cfg.registry.timeout_ms, 2500);
    assert_eq!(cfg.telemetry.log_format, LogFormat::Json);
    assert_eq!(cfg.service.instance_id, "12345");
    assert_eq!(cfg.kafka.properties["security.protocol"], "SASL_SSL");
    assert_eq!(
        cfg.registry.url, "http://127.0.0.1:18081/apis/ccompat/v7",
        "untouched keys stay"
    );
}

#[test]
fn missing_bootstrap_servers_names_the_key() {
    let err = load_err("kafka: {}\nregistry:\n  url: http://r:1/\n", &[]);
    assert_eq!(err.key, "kafka.bootstrap_servers");
    assert!(err.problem.contains("missing"), "{err}");
    assert!(err.fix.contains("SFJIRA_KAFKA__BOOTSTRAP_SERVERS"), "{err}");
    let err = load_err("registry:\n  url: http://r:1/\n", &[]);
    assert_eq!(err.key, "kafka");
}

#[test]
fn unknown_key_names_itself_and_its_parent() {
    let err = load_err(&format!("{MINIMAL}  timeout: 5\n"), &[]);
    assert_eq!(err.key, "registry.timeout");
    assert!(err.problem.contains("`timeout` in `registry`"), "{err}");
    assert!(
        err.fix.contains("timeout_ms") && err.fix.contains("url"),
        "allowed keys listed: {err}"
    );
    assert!(
        err.location.as_deref().unwrap().ends_with(":5"),
        "line of the key: {err}"
    );

    let err = load_err(MINIMAL, &[("SFJIRA_KAFAK__BOOTSTRAP_SERVERS", "x:1")]);
    assert_eq!(err.key, "kafak");
    assert!(err.problem.contains("the top level"), "{err}");
    assert_eq!(err.location.as_deref(), Some("env SFJIRA_KAFAK"));
}

#[test]
fn wrong_type_names_the_key() {
    let err = load_err(&format!("{MINIMAL}  timeout_ms: soon\n"), &[]);
    assert_eq!(err.key, "registry.timeout_ms");
    assert!(err.problem.contains("expected"), "{err}");
    let err = load_err(MINIMAL, &[("SFJIRA_TELEMETRY__LOG_FORMAT", "xml")]);
    assert_eq!(err.key, "telemetry.log_format");
    assert!(err.fix.contains("pretty, json"), "{err}");
    assert_eq!(
        err.location.as_deref(),
        Some("env SFJIRA_TELEMETRY__LOG_FORMAT")
    );
}

#[test]
fn bad_bootstrap_servers_rejected() {
    for bad in [
        "localhost",
        "host:0",
        "host:99999",
        "host:port",
        ":9092",
        "a:1,,b:2",
        "::1:9092",
    ] {
        let err = load_err(MINIMAL, &[("SFJIRA_KAFKA__BOOTSTRAP_SERVERS", bad)]);
        assert_eq!(err.key, "kafka.bootstrap_servers", "{bad}");
        assert!(err.problem.starts_with("expected host:port"), "{err}");
        assert_eq!(
            err.location.as_deref(),
            Some("env SFJIRA_KAFKA__BOOTSTRAP_SERVERS")
        );
    }
    for good in ["b1:9092, b2:9093", "[::1]:9092", "SSL://b:9093"] {
        load_yaml(MINIMAL, &[("SFJIRA_KAFKA__BOOTSTRAP_SERVERS", good)]).unwrap();
    }
    let err = load_err(&MINIMAL.replace("19092", "nope"), &[]);
    assert!(err.location.as_deref().unwrap().ends_with(":2"), "{err}");
    assert_eq!(
        err.to_string().split(": expected").next().unwrap(),
        format!(
            "config error at kafka.bootstrap_servers ({})",
            err.location.as_deref().unwrap()
        )
    );
}

#[test]
fn other_validation() {
    let check = |env: &[(&str, &str)], key: &str| {
        let err = load_err(MINIMAL, env);
        assert_eq!(err.key, key, "{err}");
    };
    check(&[("SFJIRA_REGISTRY__URL", "ftp://r/")], "registry.url");
    check(&[("SFJIRA_REGISTRY__URL", "not a url")], "registry.url");
    check(&[("SFJIRA_REGISTRY__URL", "http://u:p@r/")], "registry.url");
    check(&[("SFJIRA_REGISTRY__USERNAME", "u")], "registry.password");
    check(&[("SFJIRA_REGISTRY__PASSWORD", "p")], "registry.username");
    check(
        &[("SFJIRA_REGISTRY__TIMEOUT_MS", "0")],
        "registry.timeout_ms",
    );
    check(
        &[("SFJIRA_TELEMETRY__LOG_LEVEL", "info,=[")],
        "telemetry.log_level",
    );
    check(
        &[("SFJIRA_SERVICE__INSTANCE_ID", "a b")],
        "service.instance_id",
    );
    check(
        &[("SFJIRA_SERVICE__STOP_GRACE_SECS", "0")],
        "service.stop_grace_secs",
    );
    check(
        &[("SFJIRA_KAFKA__TOPIC_PREFIX", "acme/")],
        "kafka.topic_prefix",
    );
    check(
        &[("SFJIRA_KAFKA__PROPERTIES__BOOTSTRAP_SERVERS", "x:1")],
        "kafka.properties.bootstrap.servers",
    );
    check(&[("SFJIRA_HTTP__LISTEN", "localhost")], "http.listen");
}

#[test]
fn secret_literal_in_yaml_rejected() {
    let yaml = format!("{MINIMAL}  username: sfjira\n  password: {SECRET}\n");
    let err = load_err(&yaml, &[]);
    assert_eq!(err.key, "registry.password");
    assert!(
        err.problem.contains("cannot be written in the config file"),
        "{err}"
    );
    assert!(
        err.fix.contains("{ env: VAR_NAME }") && err.fix.contains("SFJIRA_REGISTRY__PASSWORD"),
        "{err}"
    );
    assert!(err.location.as_deref().unwrap().ends_with(":6"), "{err}");

    let err = load_err(
        &kafka_extra(&format!(
            "  secret_properties:\n    sasl.password: {SECRET}\n"
        )),
        &[],
    );
    assert_eq!(err.key, "kafka.secret_properties.sasl.password");
    assert!(
        err.fix
            .contains("SFJIRA_KAFKA__SECRET_PROPERTIES__SASL_PASSWORD"),
        "{err}"
    );
}

#[test]
fn secrets_from_env_and_file_resolved() {
    let file = TempFile::new(&format!("{SECRET}-file\n"));
    let yaml = format!(
        "{}  username: sfjira\n  password: {{ file: {} }}\n",
        kafka_extra("  secret_properties:\n    sasl.password: { env: KAFKA_PASSWORD }\n"),
        file.0.display()
    );
    let cfg = load_yaml(&yaml, &[("KAFKA_PASSWORD", SECRET)]).unwrap();
    assert_eq!(
        cfg.kafka.secret_properties["sasl.password"].expose(),
        SECRET
    );
    assert_eq!(
        cfg.registry.password.as_ref().unwrap().expose(),
        format!("{SECRET}-file")
    );
    assert_eq!(
        format!("{:?}", cfg.kafka.secret_properties["sasl.password"]),
        "Secret(env:KAFKA_PASSWORD)"
    );

    let err = load_err(&yaml, &[]);
    assert_eq!(err.key, "kafka.secret_properties.sasl.password");
    assert_eq!(
        err.problem,
        "environment variable KAFKA_PASSWORD is not set"
    );
    assert_eq!(
        err.to_string().split(": environment").next().unwrap(),
        format!(
            "config error at kafka.secret_properties.sasl.password ({})",
            err.location.as_deref().unwrap()
        )
    );

    let err = load_err(
        &yaml.replace(&file.0.display().to_string(), "/nonexistent/secret"),
        &[("KAFKA_PASSWORD", "x")],
    );
    assert_eq!(err.key, "registry.password");
    assert!(
        err.problem
            .contains("cannot read secret file /nonexistent/secret"),
        "{err}"
    );

    let err = load_err(
        &yaml.replace("{ env: KAFKA_PASSWORD }", "{ vault: x }"),
        &[],
    );
    assert!(
        err.problem.contains("expected `{ env: VAR_NAME }`"),
        "{err}"
    );
}

#[test]
fn env_value_is_allowed_as_literal_secret() {
    let cfg = load_yaml(
        MINIMAL,
        &[
            ("SFJIRA_KAFKA__SECRET_PROPERTIES__SASL_PASSWORD", SECRET),
            ("SFJIRA_REGISTRY__USERNAME", "sfjira"),
            ("SFJIRA_REGISTRY__PASSWORD", "12345"),
        ],
    )
    .unwrap();
    assert_eq!(
        cfg.kafka.secret_properties["sasl.password"].expose(),
        SECRET
    );
    assert_eq!(
        cfg.registry.password.as_ref().unwrap().expose(),
        "12345",
        "digits stay a string"
    );
}

#[test]
fn secret_property_in_plain_properties_rejected() {
    for key in [
        "sasl.password",
        "ssl.key.password",
        "sasl.oauthbearer.client.secret",
        "some.new.secret",
    ] {
        let err = load_err(
            &kafka_extra(&format!("  properties:\n    {key}: {SECRET}\n")),
            &[],
        );
        assert_eq!(err.key, format!("kafka.properties.{key}"));
        assert!(err.fix.contains("kafka.secret_properties"), "{err}");
        assert!(err.location.as_deref().unwrap().ends_with(":4"), "{err}");
    }
}

fn config_with_secrets() -> SfjiraConfig {
    load_yaml(
        MINIMAL,
        &[
            ("SFJIRA_KAFKA__SECRET_PROPERTIES__SASL_PASSWORD", SECRET),
            ("SFJIRA_REGISTRY__USERNAME", "sfjira"),
            ("SFJIRA_REGISTRY__PASSWORD", SECRET),
        ],
    )
    .unwrap()
}

#[test]
fn debug_never_shows_a_secret() {
    let cfg = config_with_secrets();
    let debug = format!("{cfg:?} {cfg:#?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("Secret(env:SFJIRA_…)"), "{debug}");
    assert_eq!(format!("{:?}", Secret::new(SECRET)), "Secret([redacted])");
}

#[test]
fn secret_never_reaches_the_logs() {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let cfg = config_with_secrets();
    let buffer = Buffer::default();
    for json in [false, true] {
        let writer = buffer.clone();
        let builder = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone());
        let log = || {
            tracing::info!(?cfg, "configuration loaded");
            tracing::debug!(kafka = ?cfg.kafka, password = ?cfg.registry.password, "sections");
        };
        if json {
            tracing::subscriber::with_default(builder.json().finish(), log);
        } else {
            tracing::subscriber::with_default(builder.finish(), log);
        }
    }
    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("configuration loaded") && logs.contains("bootstrap_servers"),
        "{logs}"
    );
    assert!(!logs.contains(SECRET), "{logs}");
}

#[test]
fn missing_file_is_an_error() {
    let err = load_from(Some(Path::new("/nonexistent/sfjira.yaml")), vars(&[])).unwrap_err();
    assert!(err.problem.contains("cannot read config file"), "{err}");
}

#[test]
fn find_line_follows_indentation() {
    let text = "a:\n  b: 1\n  # c: no\n  \"c.d\": 2\ne:\n  b: 3\n";
    let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(error::find_line(text, &path(&["a", "b"])), Some(2));
    assert_eq!(error::find_line(text, &path(&["a", "c.d"])), Some(4));
    assert_eq!(error::find_line(text, &path(&["e", "b"])), Some(6));
    assert_eq!(
        error::find_line(text, &path(&["e", "zz"])),
        Some(5),
        "deepest ancestor"
    );
    assert_eq!(error::find_line(text, &path(&["x"])), None);
}
