//! `X-Hub-Signature` against Atlassian's published example
//! (https://developer.atlassian.com/cloud/jira/platform/webhooks/#secure-admin-webhooks,
//! quoted in jira-api.md §5): secret `It's a Secret to Everybody`, body `Hello World!`.
//! Independently confirmed with Python: `hmac.new(b"It's a Secret to Everybody", b"Hello World!",
//! hashlib.sha256).hexdigest()`.

use sfjira_sandbox::jira::webhooks::sign::{signature_header, verify};

const SECRET: &str = "It's a Secret to Everybody";

#[test]
fn matches_the_published_vector() {
    assert_eq!(
        signature_header(SECRET, b"Hello World!"),
        "sha256=a4771c39fbe90f317c7824e83ddef3caae9cb3d976c214ace1f2937e133263c9"
    );
}

#[test]
fn verify_parses_the_method_and_rejects_tampering() {
    let h = signature_header(SECRET, b"Hello World!");
    assert!(verify(&h, SECRET, b"Hello World!"));
    assert!(!verify(&h, SECRET, b"Hello World?"));
    assert!(!verify(
        &h.replace("sha256", "sha1"),
        SECRET,
        b"Hello World!"
    ));
    assert!(!verify("sha256=zz", SECRET, b"Hello World!"));
}
