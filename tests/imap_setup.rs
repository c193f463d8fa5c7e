//! `crmproxy init` and `crmproxy doctor` as a user runs them: files and modes written,
//! renewal of an expiring certificate, and doctor against the private Dovecot in all
//! three upstream modes and against a closed port.

mod common;

use common::dovecot;
use common::proxy::{crmproxy_bin, run_init};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_config_and_certs_and_explains_trust() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_init(dir.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Thunderbird",
        "Authorities",
        "certutil -addstore -user Root",
        "security add-trusted-cert",
        "update-ca-certificates",
        "127.0.0.1",
        "SSL/TLS",
        "STARTTLS",
    ] {
        assert!(
            stdout.contains(needle),
            "init output lacks {needle:?}:\n{stdout}"
        );
    }
    let config = dir.path().join("crmproxy.toml");
    let cfg = crmproxy::config::Config::load(&config).unwrap();
    assert_eq!(cfg.data_dir, dir.path().canonicalize().unwrap());
    let certs = dir.path().join("certs");
    assert_eq!(mode(&certs.join("ca-key.pem")), 0o600);
    assert_eq!(mode(&certs.join("localhost-key.pem")), 0o600);
    assert!(certs.join("ca.pem").exists() && certs.join("localhost.pem").exists());

    // Re-running keeps an edited config; --force overwrites it and makes a new CA.
    let edited = format!("{}\n# my edit\n", std::fs::read_to_string(&config).unwrap());
    std::fs::write(&config, &edited).unwrap();
    let ca_before = std::fs::read(certs.join("ca.pem")).unwrap();
    let out = run_init(dir.path(), &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--force"));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
    assert_eq!(std::fs::read(certs.join("ca.pem")).unwrap(), ca_before);

    let out = run_init(dir.path(), &["--force"]);
    assert!(out.status.success());
    assert_ne!(std::fs::read_to_string(&config).unwrap(), edited);
    assert_ne!(std::fs::read(certs.join("ca.pem")).unwrap(), ca_before);
    assert_eq!(mode(&certs.join("ca-key.pem")), 0o600);
}

#[test]
fn init_renews_an_expiring_localhost_certificate_and_keeps_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run_init(dir.path(), &[]).status.success());
    let certs = dir.path().join("certs");
    let ca_pem = std::fs::read_to_string(certs.join("ca.pem")).unwrap();
    // A leaf signed by the same CA that expires in 3 days (< renew_before_days = 30).
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(certs.join("ca-key.pem")).unwrap())
            .unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(certs.join("localhost.pem"), leaf.pem()).unwrap();
    let left = crmproxy::tls::time_to_expiry(&certs.join("localhost.pem")).unwrap();
    assert!(left.as_secs() < 4 * 86_400);

    // doctor warns (not fails) about it ...
    let (code, json) = doctor_json(dir.path());
    let certs_checks: Vec<_> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "certificates")
        .collect();
    assert!(
        certs_checks.iter().any(|c| c["status"] == "warn"),
        "{json:#}"
    );
    let _ = code;

    // ... and init renews it.
    let out = run_init(dir.path(), &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Renewed"));
    let left = crmproxy::tls::time_to_expiry(&certs.join("localhost.pem")).unwrap();
    assert!(left.as_secs() > 300 * 86_400);
    assert_eq!(
        std::fs::read_to_string(certs.join("ca.pem")).unwrap(),
        ca_pem
    );
    assert_eq!(mode(&certs.join("localhost-key.pem")), 0o600);
}

/// Write a config for upstream `host:port` in `tls` mode with free listener ports.
fn write_config(dir: &Path, host: &str, port: u16, tls: &str, ca: Option<&Path>) {
    assert!(run_init(dir, &[]).status.success());
    let mut text = format!(
        "data_dir = {:?}\n[proxy]\nimap = \"127.0.0.1:{}\"\nimaps = \"127.0.0.1:{}\"\n\
         [pane]\naddr = \"127.0.0.1:{}\"\n[upstream]\nhost = \"{host}\"\nport = {port}\ntls = \"{tls}\"\n\
         connect_timeout_secs = 2\n",
        dir.display().to_string(),
        common::free_port(),
        common::free_port(),
        common::free_port()
    );
    if let Some(ca) = ca {
        text.push_str(&format!("ca_file = {:?}\n", ca.display().to_string()));
    }
    std::fs::write(dir.join("crmproxy.toml"), text).unwrap();
}

fn doctor_json(dir: &Path) -> (i32, serde_json::Value) {
    let out = Command::new(crmproxy_bin())
        .args(["doctor", "--json", "--data-dir"])
        .arg(dir)
        .env_remove("CRMPROXY_CONFIG")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), json)
}

#[test]
fn doctor_passes_against_dovecot_in_every_upstream_mode() {
    let dv = dovecot();
    for (host, port, tls) in [
        ("127.0.0.1", dv.imap_port, "plain"),
        ("localhost", dv.imaps_port, "implicit"),
        ("localhost", dv.imap_port, "starttls"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), host, port, tls, Some(&dv.ca_file));
        let (code, json) = doctor_json(dir.path());
        assert_eq!(code, 0, "doctor failed for {tls}: {json:#}");
        assert_eq!(json["ok"], true);
        let caps = json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "upstream capabilities")
            .unwrap_or_else(|| panic!("{json:#}"));
        let detail = caps["detail"].as_str().unwrap();
        assert!(
            detail.contains("IMAP4REV1") && detail.contains("IDLE"),
            "{detail}"
        );
        assert!(
            json["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == "upstream TLS" && c["status"] == "ok"),
            "{json:#}"
        );
    }
}

#[test]
fn doctor_fails_with_advice_on_a_closed_port_and_an_untrusted_certificate() {
    let dv = dovecot();
    // Closed port: nothing listens on a port we just released.
    let dir = tempfile::tempdir().unwrap();
    let closed = common::free_port();
    write_config(dir.path(), "127.0.0.1", closed, "implicit", None);
    let out = Command::new(crmproxy_bin())
        .args(["doctor", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("[FAIL] upstream reachable"), "{text}");
    assert!(
        text.contains("fix: check [upstream] host and port"),
        "{text}"
    );

    // Dovecot's certificate without its CA: the TLS check fails and says why.
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "localhost", dv.imaps_port, "implicit", None);
    let (code, json) = doctor_json(dir.path());
    assert_eq!(code, 4, "{json:#}");
    let tls = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "fail")
        .unwrap()
        .clone();
    assert!(tls["fix"].as_str().unwrap().contains("ca_file"), "{tls:#}");

    // TLS spoken to the plain port: a clear failure, not a hang.
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        "localhost",
        dv.imap_port,
        "implicit",
        Some(&dv.ca_file),
    );
    let (code, json) = doctor_json(dir.path());
    assert_eq!(code, 4, "{json:#}");

    // Plain spoken to the TLS port.
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "127.0.0.1", dv.imaps_port, "plain", None);
    let (code, json) = doctor_json(dir.path());
    assert_eq!(code, 4, "{json:#}");
}

#[test]
fn doctor_reports_an_invalid_config_and_loose_key_permissions() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run_init(dir.path(), &[]).status.success());
    let key = dir.path().join("certs/localhost-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, json) = doctor_json(dir.path());
    assert_eq!(code, 4);
    let perm = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "key permissions" && c["status"] == "fail")
        .unwrap_or_else(|| panic!("{json:#}"))
        .clone();
    assert_eq!(
        perm["fix"].as_str().unwrap(),
        format!("chmod 600 {}", key.canonicalize().unwrap().display())
    );

    std::fs::write(dir.path().join("crmproxy.toml"), "[proxy]\nimapp = 1\n").unwrap();
    let (code, json) = doctor_json(dir.path());
    assert_eq!(code, 4);
    assert_eq!(json["checks"][0]["name"], "config");
    assert!(
        json["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("imapp"),
        "{json:#}"
    );
}
