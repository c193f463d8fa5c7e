//! `crmproxy doctor`: checks of config, certificates, the upstream server and the
//! listener ports, as data. Each failed check says what to fix; `cli::setup` prints
//! them (as text or JSON) and turns a failure into the exit code. With a mailbox
//! login, `folders` checks what tracking needs of the mailbox.

use crate::config::{Config, UpstreamConfig, UpstreamTls};
use crate::tls::pinning::CertFacts;
use crate::tls::CertPaths;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod folders;
mod store;
pub use folders::MailboxLogin;
pub use store::check_store;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, but worth knowing (e.g. a certificate renewed at the next start).
    Warn,
    Fail,
}

/// One check: what was checked, how it went, and for a problem what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// What the check found, as data (e.g. the folder layout) for `--json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facts: Option<serde_json::Value>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
            facts: None,
        }
    }
    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
            facts: None,
        }
    }
    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
            facts: None,
        }
    }
}

/// All checks of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(checks: Vec<Check>) -> Report {
        Report {
            ok: checks.iter().all(|c| c.status != Status::Fail),
            checks,
        }
    }
}

/// A config that could not be loaded: the only check there is to report.
pub fn config_failed(error: &str) -> Report {
    Report::new(vec![Check::fail(
        "config",
        error.to_string(),
        "fix the named setting in the config file (every setting is documented in \
         config/crmproxy.example.toml), or pass --config FILE",
    )])
}

/// Run every check against a loaded config. `config_source` names where it came
/// from; `mailbox`: a login whose mailbox is checked too.
pub async fn run(cfg: &Config, config_source: &str, mailbox: Option<&MailboxLogin>) -> Report {
    let mut checks = vec![Check::ok("config", config_source.to_string())];
    checks.extend(check_certificates(cfg));
    checks.extend(check_upstream(cfg).await);
    if let Some(login) = mailbox {
        checks.extend(folders::check_mailbox(cfg, login).await);
    }
    let store_cfg = cfg.clone();
    match tokio::task::spawn_blocking(move || check_store(&store_cfg)).await {
        Ok(c) => checks.extend(c),
        Err(e) => checks.push(Check::fail(
            "store",
            format!("the store check stopped: {e}"),
            "run `crmproxy doctor` again; report it if it persists",
        )),
    }
    checks.extend(check_listeners(cfg));
    Report::new(checks)
}

/// Certificates present, not expiring, keys not readable by others.
pub fn check_certificates(cfg: &Config) -> Vec<Check> {
    let paths = CertPaths::in_dir(&cfg.cert_dir());
    let mut out = Vec::new();
    let missing: Vec<_> = [&paths.ca_cert, &paths.ca_key, &paths.cert, &paths.key]
        .into_iter()
        .filter(|p| !p.exists())
        .collect();
    if !missing.is_empty() {
        out.push(Check::fail(
            "certificates",
            format!(
                "missing: {}",
                missing
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "run `crmproxy init` to create the local CA and localhost certificate, then trust the CA in your mail client",
        ));
        return out;
    }
    let margin = Duration::from_secs(86_400 * u64::from(cfg.tls.renew_before_days));
    for (what, path, fix_soon) in [
        (
            "CA certificate",
            &paths.ca_cert,
            "run `crmproxy init --force` to make a new CA, then trust it again in your mail client",
        ),
        (
            "localhost certificate",
            &paths.cert,
            "run `crmproxy init` (or restart `crmproxy serve`): it renews the localhost certificate",
        ),
    ] {
        match crate::tls::time_to_expiry(path) {
            Err(e) => out.push(Check::fail("certificates", format!("{what}: {e}"), fix_soon)),
            Ok(left) if left.is_zero() => out.push(Check::fail(
                "certificates",
                format!("{what} {} has expired", path.display()),
                fix_soon,
            )),
            Ok(left) if left < margin => out.push(Check::warn(
                "certificates",
                format!("{what} {} expires in {} days", path.display(), left.as_secs() / 86_400),
                fix_soon,
            )),
            Ok(left) => out.push(Check::ok(
                "certificates",
                format!("{what} valid for {} more days", left.as_secs() / 86_400),
            )),
        }
    }
    for key in [&paths.ca_key, &paths.key] {
        out.push(check_key_mode(key));
    }
    out
}

#[cfg(not(unix))]
fn check_key_mode(key: &Path) -> Check {
    Check::warn(
        "key permissions",
        format!(
            "{}: file modes are not checked on this system",
            key.display()
        ),
        "make sure only your user account can read the certificate directory",
    )
}

#[cfg(unix)]
fn check_key_mode(key: &Path) -> Check {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(key) {
        Err(e) => Check::fail(
            "key permissions",
            format!("{}: {e}", key.display()),
            "run `crmproxy init`",
        ),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => Check::fail(
            "key permissions",
            format!(
                "{} is readable by others (mode {:o})",
                key.display(),
                m.permissions().mode() & 0o777
            ),
            format!("chmod 600 {}", key.display()),
        ),
        Ok(_) => Check::ok("key permissions", format!("{} is mode 0600", key.display())),
    }
}

/// Upstream reachable, TLS as configured, greeting and capabilities.
pub async fn check_upstream(cfg: &Config) -> Vec<Check> {
    let up = &cfg.upstream;
    let target = format!("{}:{}", up.host, up.port);
    let timeout = Duration::from_secs(up.connect_timeout_secs.max(1));
    let mut out = Vec::new();
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(&target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            out.push(Check::fail(
                "upstream reachable",
                format!("cannot connect to {target}: {e}"),
                "check [upstream] host and port in the config (IMAPS is usually 993, \
                 STARTTLS 143) and that this machine can reach the server",
            ));
            return out;
        }
        Err(_) => {
            out.push(Check::fail(
                "upstream reachable",
                format!("no answer from {target} within {}s", timeout.as_secs()),
                "check [upstream] host and port, and any firewall between here and the server",
            ));
            return out;
        }
    };
    out.push(Check::ok(
        "upstream reachable",
        format!("TCP connection to {target}"),
    ));

    let result = tokio::time::timeout(timeout * 2, talk_to_upstream(cfg, tcp)).await;
    match result {
        Err(_) => out.push(Check::fail(
            "upstream IMAP",
            format!("{target} accepted the connection but did not complete the IMAP/TLS exchange in time"),
            format!(
                "check that {target} is an IMAP server speaking upstream.tls = \"{}\"",
                tls_name(up.tls)
            ),
        )),
        Ok(Err(check)) => out.push(check),
        Ok(Ok((tls_detail, caps))) => {
            out.push(Check::ok("upstream TLS", tls_detail));
            out.push(capability_check(&caps));
        }
    }
    if up.tls == UpstreamTls::Plain && !is_local(&up.host) {
        out.push(Check::warn(
            "upstream TLS",
            format!(
                "plain IMAP to {}: the password crosses the network in clear",
                up.host
            ),
            "set [upstream] tls = \"implicit\" (port 993) or \"starttls\" (port 143)",
        ));
    }
    out
}

fn tls_name(t: UpstreamTls) -> &'static str {
    match t {
        UpstreamTls::Implicit => "implicit",
        UpstreamTls::Starttls => "starttls",
        UpstreamTls::Plain => "plain",
    }
}

fn is_local(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// TLS per mode, then the greeting and CAPABILITY. Returns (TLS detail, capabilities).
async fn talk_to_upstream(cfg: &Config, tcp: TcpStream) -> Result<(String, Vec<String>), Check> {
    let up = &cfg.upstream;
    // Only for a handshake that failed before any certificate was seen.
    let tls_fix = || {
        format!(
            "check upstream.tls (now \"{}\"): port 993 is usually implicit, 143 starttls",
            tls_name(up.tls)
        )
    };
    match up.tls {
        UpstreamTls::Plain => {
            let mut io = BufReader::new(tcp);
            let greeting = read_greeting(&mut io).await?;
            let caps = capabilities(&mut io, &greeting).await?;
            Ok(("plain connection (no TLS), as configured".into(), caps))
        }
        UpstreamTls::Implicit => {
            let tls = handshake(cfg, tcp)
                .await
                .map_err(|e| tls_failure(up, "TLS handshake failed", e, tls_fix()))?;
            let mut io = BufReader::new(tls);
            let greeting = read_greeting(&mut io).await?;
            let caps = capabilities(&mut io, &greeting).await?;
            Ok((
                "implicit TLS handshake OK, certificate verified".into(),
                caps,
            ))
        }
        UpstreamTls::Starttls => {
            let mut io = BufReader::new(tcp);
            let greeting = read_greeting(&mut io).await?;
            let before = capabilities(&mut io, &greeting).await?;
            if !before.iter().any(|c| c == "STARTTLS") {
                return Err(Check::fail(
                    "upstream TLS",
                    "the server does not offer STARTTLS".to_string(),
                    "set upstream.tls = \"implicit\" with the IMAPS port (usually 993)",
                ));
            }
            io.get_mut()
                .write_all(b"d2 STARTTLS\r\n")
                .await
                .map_err(|e| io_fail(&e))?;
            let line = read_tagged(&mut io, "d2").await?;
            if !line.to_ascii_uppercase().starts_with("D2 OK") {
                return Err(Check::fail(
                    "upstream TLS",
                    format!("STARTTLS refused: {}", line.trim_end()),
                    tls_fix(),
                ));
            }
            let tls = handshake(cfg, io.into_inner()).await.map_err(|e| {
                tls_failure(up, "TLS handshake after STARTTLS failed", e, tls_fix())
            })?;
            let mut io = BufReader::new(tls);
            let caps = capabilities(&mut io, "").await?;
            Ok((
                "STARTTLS and TLS handshake OK, certificate verified".into(),
                caps,
            ))
        }
    }
}

/// Why a handshake did not happen.
enum HandshakeError {
    /// The TLS settings themselves are unusable (e.g. an unreadable ca_file).
    Setup(String),
    /// The handshake failed; the certificate the server presented, if it got that far.
    Failed(String, Option<Vec<u8>>),
}

async fn handshake(
    cfg: &Config,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, HandshakeError> {
    let setup = |e: crate::tls::TlsError| HandshakeError::Setup(e.to_string());
    let (connector, seen) =
        crate::tls::upstream_connector_observed(&cfg.upstream).map_err(setup)?;
    let name = crate::tls::upstream_server_name(&cfg.upstream).map_err(setup)?;
    connector.connect(name, tcp).await.map_err(|e| {
        let cert = seen.lock().unwrap_or_else(|p| p.into_inner()).take();
        HandshakeError::Failed(e.to_string(), cert.map(|c| c.as_ref().to_vec()))
    })
}

/// A failed handshake, explained from the certificate the server presented and the
/// trust that is configured (so the advice never repeats a setting already made).
fn tls_failure(up: &UpstreamConfig, what: &str, e: HandshakeError, no_cert_fix: String) -> Check {
    let (error, presented) = match e {
        HandshakeError::Setup(error) => {
            return Check::fail(
                "upstream TLS",
                format!("{what}: {error}"),
                "fix the named [upstream] setting (ca_file, fingerprint or server_name)",
            )
        }
        HandshakeError::Failed(error, presented) => (error, presented),
    };
    let Some(facts) = presented.as_deref().and_then(CertFacts::of) else {
        return Check::fail("upstream TLS", format!("{what}: {error}"), no_cert_fix);
    };
    let (about, fix) = facts.explain_distrust(up);
    Check::fail("upstream TLS", format!("{what}: {error}. {about}"), fix)
}

fn io_fail(e: &std::io::Error) -> Check {
    Check::fail(
        "upstream IMAP",
        format!("connection failed during the IMAP exchange: {e}"),
        "check that the upstream host and port are an IMAP server and that upstream.tls matches it",
    )
}

async fn read_line<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
) -> Result<String, Check> {
    let mut buf = Vec::new();
    let n = io
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| io_fail(&e))?;
    if n == 0 {
        return Err(Check::fail(
            "upstream IMAP",
            "the server closed the connection".to_string(),
            "check that the upstream port is an IMAP port and that upstream.tls matches it",
        ));
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

async fn read_greeting<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
) -> Result<String, Check> {
    let line = read_line(io).await?;
    let upper = line.to_ascii_uppercase();
    if upper.starts_with("* OK") || upper.starts_with("* PREAUTH") {
        Ok(line)
    } else {
        Err(Check::fail(
            "upstream IMAP",
            format!("unexpected greeting: {}", printable(&line)),
            "check that the upstream port is an IMAP port (not SMTP/POP3) and that upstream.tls matches it",
        ))
    }
}

async fn read_tagged<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    tag: &str,
) -> Result<String, Check> {
    loop {
        let line = read_line(io).await?;
        if line.len() > tag.len() && line[..tag.len()].eq_ignore_ascii_case(tag) {
            return Ok(line);
        }
    }
}

/// Ask CAPABILITY (a greeting's `[CAPABILITY …]` is not always complete).
async fn capabilities<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    _greeting: &str,
) -> Result<Vec<String>, Check> {
    io.get_mut()
        .write_all(b"d1 CAPABILITY\r\n")
        .await
        .map_err(|e| io_fail(&e))?;
    let mut caps = Vec::new();
    loop {
        let line = read_line(io).await?;
        let upper = line.trim_end().to_ascii_uppercase();
        if let Some(list) = upper.strip_prefix("* CAPABILITY ") {
            caps.extend(list.split(' ').map(str::to_string));
        } else if upper.starts_with("D1 ") {
            if !upper.starts_with("D1 OK") {
                return Err(Check::fail(
                    "upstream capabilities",
                    format!("CAPABILITY failed: {}", line.trim_end()),
                    "the server is not answering IMAP as expected; check host and port",
                ));
            }
            return Ok(caps);
        }
    }
}

/// IMAP4rev1 or IMAP4rev2 is required; the rest are reported.
pub fn capability_check(caps: &[String]) -> Check {
    let has = |c: &str| caps.iter().any(|x| x == c);
    if !has("IMAP4REV1") && !has("IMAP4REV2") {
        return Check::fail(
            "upstream capabilities",
            format!(
                "neither IMAP4rev1 nor IMAP4rev2 announced: {}",
                caps.join(" ")
            ),
            "the upstream is not an IMAP4 server: check host and port",
        );
    }
    let wanted = [
        "IDLE",
        "LITERAL+",
        "SPECIAL-USE",
        "MOVE",
        "UIDPLUS",
        "CONDSTORE",
    ];
    let present: Vec<&str> = wanted.iter().copied().filter(|c| has(c)).collect();
    let absent: Vec<&str> = wanted.iter().copied().filter(|c| !has(c)).collect();
    let mut detail = format!("{} (before login)", caps.join(" "));
    if !present.is_empty() {
        detail.push_str(&format!("; has {}", present.join(", ")));
    }
    if !absent.is_empty() {
        // Many servers (Dovecot among them) announce these only after login.
        detail.push_str(&format!(
            "; not announced before login: {} (often listed after login)",
            absent.join(", ")
        ));
    }
    Check::ok("upstream capabilities", detail)
}

/// The configured listener ports can be bound (crmproxy serve is not already running).
pub fn check_listeners(cfg: &Config) -> Vec<Check> {
    let listeners: [(&'static str, Option<SocketAddr>, &str); 3] = [
        ("imap", cfg.proxy.imap, "[proxy] imap"),
        ("imaps", cfg.proxy.imaps, "[proxy] imaps"),
        ("pane", cfg.pane.addr, "[pane] addr"),
    ];
    listeners
        .into_iter()
        .filter_map(|(name, addr, key)| addr.map(|a| (name, a, key)))
        .map(|(name, addr, key)| match std::net::TcpListener::bind(addr) {
            Ok(_) => Check::ok("listener ports", format!("{name} {addr} is free")),
            Err(e) => Check::fail(
                "listener ports",
                format!("{name} {addr} cannot be bound: {e}"),
                format!(
                    "stop whatever uses {addr} (is `crmproxy serve` already running?) or choose another address in {key}"
                ),
            ),
        })
        .collect()
}

fn printable(s: &str) -> String {
    s.trim_end()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn imap4_is_required() {
        assert_eq!(capability_check(&caps("IMAP4REV1 IDLE")).status, Status::Ok);
        assert_eq!(capability_check(&caps("IMAP4REV2")).status, Status::Ok);
        let c = capability_check(&caps("POP3 IDLE"));
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("host and port"));
    }

    #[test]
    fn missing_extensions_are_reported() {
        let c = capability_check(&caps("IMAP4REV1 IDLE"));
        assert!(c.detail.contains("has IDLE"), "{}", c.detail);
        assert!(
            c.detail.contains("not announced before login: LITERAL+"),
            "{}",
            c.detail
        );
    }

    #[cfg(unix)]
    #[test]
    fn group_readable_key_fails_with_chmod_advice() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let c = check_key_mode(&key);
        assert_eq!(c.status, Status::Fail);
        assert_eq!(c.fix.unwrap(), format!("chmod 600 {}", key.display()));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(check_key_mode(&key).status, Status::Ok);
    }

    #[test]
    fn a_bound_port_fails_with_advice() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut cfg = Config::default();
        cfg.proxy.imap = Some(taken.local_addr().unwrap());
        cfg.proxy.imaps = None;
        cfg.pane.addr = None;
        let checks = check_listeners(&cfg);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Fail);
        assert!(checks[0].fix.as_deref().unwrap().contains("[proxy] imap"));
    }

    #[test]
    fn report_fails_when_any_check_fails() {
        assert!(Report::new(vec![Check::ok("a", "x"), Check::warn("b", "y", "z")]).ok);
        assert!(!Report::new(vec![Check::ok("a", "x"), Check::fail("b", "y", "z")]).ok);
        assert!(!config_failed("bad").ok);
    }
}
