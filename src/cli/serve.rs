//! `crmproxy serve`: flags, config overrides, and starting the proxy.
//!
//! Once the listeners are bound, one line per listener goes to stderr, in this
//! exact format (tests and scripts parse it):
//!
//! ```text
//! listening imap 127.0.0.1:1143
//! listening imaps 127.0.0.1:1993
//! ```
//!
//! SIGTERM or SIGINT stops accepting, says BYE to idle sessions and waits a
//! bounded time for the others.

use super::GlobalOpts;
use crate::config::{Config, UpstreamTls};
use crate::proxy::{NoopHook, Server, ServerOptions};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Upstream IMAP server as HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: Option<String>,
    /// How to speak TLS to the upstream server.
    #[arg(long, value_enum, value_name = "MODE")]
    pub upstream_tls: Option<UpstreamTls>,
    /// Extra PEM CA file trusted for the upstream certificate.
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,
    /// Accept any upstream certificate (dangerous; logged loudly).
    #[arg(long)]
    pub insecure_skip_verify: bool,
    /// IMAP (STARTTLS) listener address, or `off`.
    #[arg(long, value_name = "ADDR|off", value_parser = parse_listen)]
    pub imap: Option<Listen>,
    /// IMAPS (implicit TLS) listener address, or `off`.
    #[arg(long, value_name = "ADDR|off", value_parser = parse_listen)]
    pub imaps: Option<Listen>,
    /// HTTPS pane listener address, or `off`.
    #[arg(long, value_name = "ADDR|off", value_parser = parse_listen)]
    pub pane: Option<Listen>,
}

/// A listener address, or `off`.
#[derive(Debug, Clone, Copy)]
pub struct Listen(pub Option<SocketAddr>);

fn parse_listen(s: &str) -> Result<Listen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(Listen(None));
    }
    s.parse()
        .map(|a| Listen(Some(a)))
        .map_err(|_| format!("{s:?} is not an address like 127.0.0.1:1143 (or `off`)"))
}

/// Apply the command-line overrides to a loaded config.
pub fn apply_overrides(cfg: &mut Config, a: &ServeArgs) -> anyhow::Result<()> {
    if let Some(up) = &a.upstream {
        let (host, port) = up
            .rsplit_once(':')
            .with_context(|| format!("--upstream {up:?}: expected HOST:PORT"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        cfg.upstream.host = host.to_string();
        cfg.upstream.port = port
            .parse()
            .with_context(|| format!("--upstream {up:?}: bad port"))?;
    }
    if let Some(t) = a.upstream_tls {
        cfg.upstream.tls = t;
    }
    if let Some(ca) = &a.upstream_ca {
        cfg.upstream.ca_file = Some(ca.clone());
    }
    if a.insecure_skip_verify {
        cfg.upstream.insecure_skip_verify = true;
    }
    if let Some(l) = a.imap {
        cfg.proxy.imap = l.0;
    }
    if let Some(l) = a.imaps {
        cfg.proxy.imaps = l.0;
    }
    if let Some(l) = a.pane {
        cfg.pane.addr = l.0;
    }
    cfg.validate()?;
    Ok(())
}

pub fn run(args: ServeArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let mut cfg = global.load_config()?;
    apply_overrides(&mut cfg, &args)?;
    if cfg.proxy.imap.is_none() && cfg.proxy.imaps.is_none() {
        anyhow::bail!("both --imap and --imaps are off: nothing to serve");
    }
    if cfg.upstream.insecure_skip_verify {
        eprintln!(
            "WARNING: upstream certificate verification is OFF: anyone between crmproxy and {} can read your mail and password",
            cfg.upstream.host
        );
    }
    let tls = {
        let paths = crate::tls::ensure_certs(&cfg)
            .context("cannot prepare the local TLS certificate (try `crmproxy init`)")?;
        Some(crate::tls::server_config(&paths).context("cannot load the local TLS certificate")?)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let opts = ServerOptions {
            tls,
            hook: Arc::new(NoopHook),
        };
        let server = Server::bind(&cfg, opts).await?;
        if let Some(a) = server.imap_addr() {
            eprintln!("listening imap {a}");
        }
        if let Some(a) = server.imaps_addr() {
            eprintln!("listening imaps {a}");
        }
        server.run(shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn apply(args: &[&str]) -> anyhow::Result<Config> {
        let t = T::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))?;
        let mut cfg = Config::default();
        apply_overrides(&mut cfg, &t.serve)?;
        Ok(cfg)
    }

    #[test]
    fn flags_override_the_config() {
        let cfg = apply(&[
            "--upstream",
            "[::1]:143",
            "--upstream-tls",
            "starttls",
            "--imap",
            "127.0.0.1:0",
            "--imaps",
            "off",
            "--pane",
            "off",
            "--insecure-skip-verify",
        ])
        .unwrap();
        assert_eq!(
            (cfg.upstream.host.as_str(), cfg.upstream.port),
            ("::1", 143)
        );
        assert_eq!(cfg.upstream.tls, UpstreamTls::Starttls);
        assert_eq!(cfg.proxy.imap, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!((cfg.proxy.imaps, cfg.pane.addr), (None, None));
        assert!(cfg.upstream.insecure_skip_verify);
    }

    #[test]
    fn bad_flags_are_clear_errors() {
        let e = apply(&["--upstream", "nohostport"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("HOST:PORT"), "{e}");
        let e = apply(&["--upstream", "h:0"]).unwrap_err().to_string();
        assert!(e.contains("upstream.port"), "{e}");
        assert!(apply(&["--imap", "localhost"]).is_err());
    }
}
