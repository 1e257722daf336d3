//! The README's schema of the JSON objects (`status`, `state`, their parts) is what the daemon
//! writes: every key documented is written, and every key written is documented.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

/// The keys in the first column of the table under the README heading ``#### `name` ``.
fn documented(readme: &str, name: &str) -> BTreeSet<String> {
    let heading = format!("#### `{name}`");
    let start = readme.lines().position(|l| l.starts_with(&heading)).unwrap_or_else(|| panic!("no {heading}"));
    readme
        .lines()
        .skip(start + 3) // heading, table head, separator
        .take_while(|l| l.starts_with('|'))
        .flat_map(|row| {
            let first = row.split('|').nth(1).unwrap_or("");
            first.split(',').map(|k| k.trim().trim_matches('`').to_string()).collect::<Vec<_>>()
        })
        .collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

#[test]
fn the_readme_schema_matches_what_the_daemon_writes() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let d = Daemon::start(SMALL);
    let status = d.status();
    let watching = parse_json(d.ctl("watch").strip_prefix("ok watching ").expect("ok watching"));
    let mut tap = std::os::unix::net::UnixStream::connect(&d.control).unwrap();
    std::io::Write::write_all(&mut tap, b"tap both every 1000\n").unwrap();
    assert!(wait_until(std::time::Duration::from_secs(10), || !d.status()["taps"].as_array().unwrap().is_empty()));
    let tapped = d.status();
    for (name, value) in [
        ("status", &status),
        ("state", &status["state"]),
        ("state", &watching),
        ("state.eyes[]", &status["state"]["eyes"][0]),
        ("status.eyes[]", &status["eyes"][0]),
        ("status.eyes[].latency_ms", &status["eyes"][0]["latency_ms"]),
        ("status.stereo", &status["stereo"]),
        ("status.taps[]", &tapped["taps"][0]),
    ] {
        assert_eq!(documented(&readme, name), keys(value), "README `{name}` against {value}");
    }
}
