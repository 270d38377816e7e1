//! The README's "Try it" section, run as written: every `sh` block, in order, in one shell,
//! against the test stack. Only what differs between `make dev` and `make test` is put in:
//! the API's address and port, the receiver's port, the stack's folder, and `cargo run -q --bin
//! webhooks-admin`, which runs the built binary (cargo's lock is held while the tests run).
//! Every `curl` fails on an HTTP error, and the shell stops at the first failing command.
use std::{net::TcpListener, process::Command};

use tests::{repo_root, stack_var, target_bin};

/// The `sh` blocks of the README's "Try it" section.
fn try_it_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme.find("\n## Try it\n").expect("a Try it section");
    let rest = &readme[start + 1..];
    let section = &rest[..rest[3..].find("\n## ").map(|i| i + 3).unwrap_or(rest.len())];
    section.split("```sh\n").skip(1).map(|b| b.split("\n```").next().unwrap().to_owned()).collect()
}

#[test]
fn the_readme_examples_run_as_written() {
    let blocks = try_it_blocks();
    assert!(blocks.len() >= 7, "the Try it section has its examples: {}", blocks.len());
    let api = stack_var("WEBHOOKS_API_URL");
    let api_port = api.rsplit(':').next().unwrap().to_owned();
    let receiver_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = blocks
        .join("\n")
        .replace("http://127.0.0.1:9000", &api)
        .replace("--invoke-port 9000", &format!("--invoke-port {api_port}"))
        .replace("8765", &receiver_port.to_string())
        .replace(".stack/", &format!("{}/", stack_var("STACK_DIR")));
    let prelude = r#"set -euo pipefail
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
curl() { command curl --fail-with-body "$@"; }
cargo() {
  if [ "${1:-} ${2:-} ${3:-} ${4:-}" = "run -q --bin webhooks-admin" ]; then
    shift 4; [ "${1:-}" = "--" ] && shift; "$WEBHOOKS_ADMIN" "$@"
  else command cargo "$@"; fi
}
"#;
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .current_dir(repo_root())
        .env("WEBHOOKS_ADMIN", target_bin("webhooks-admin"))
        .env(
            "PATH",
            format!("{}:{}", repo_root().join(".venv/bin").display(), std::env::var("PATH").unwrap()),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a README example failed ({}):\n{stdout}\n{stderr}", out.status);
    for expected in [
        r#""secret":"whsec_"#,            // an eComNow registration
        r#""message":"Webhook created""#, // a Ventiapp one
        r#""username":"acme""#,           // the CLI made a vendor
        r#""token":"vwt_"#,               // and a token
        "signature OK",                   // the receiver got the published event, signed
        r#""eventId":"order-1000-4612""#, // the publish answer
        "Subject: New order 1000-4700",   // the order email
    ] {
        assert!(
            stdout.contains(expected),
            "{expected} missing from what the examples printed:\n{stdout}\n{stderr}"
        );
    }
}

/// The Deploy section's first vendor, run as written against the test stack's table (the AWS
/// settings and the table's name are the stack's; the username is made unique).
#[test]
fn the_deploy_sections_first_vendor_runs_as_written() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme.find("\n## Deploy\n").expect("a Deploy section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map(|i| i + 3).unwrap_or(section.len())];
    let block = section
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("\n```").next().unwrap())
        .find(|b| b.lines().any(|l| l.starts_with("webhooks-admin vendor create")))
        .expect("an example that creates the first vendor");
    let username = tests::unique("acme");
    let password = "a-deploy-example-password-42";
    tests::record_secret(password);
    let script: String = block
        .lines()
        .filter(|l| !l.starts_with("export "))
        .map(|l| l.replace("acme", &username) + "\n")
        .collect();
    let prelude = "set -euo pipefail\nwebhooks-admin() { \"$WEBHOOKS_ADMIN\" \"$@\"; }\n";
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .env("WEBHOOKS_ADMIN", target_bin("webhooks-admin"))
        .envs(
            ["AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "TABLE_NAME"]
                .map(|k| (k, stack_var(k))),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Deploy example failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains(&format!(r#""username":"{username}""#)), "{stdout}");
    assert!(stdout.contains(r#""token":"vwt_"#), "{stdout}");
}
