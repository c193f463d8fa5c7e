//! `crmproxy serve`: flags, config overrides, and running the whole product: the
//! CRM store (demo CRM loaded on the first run when configured), its admin socket
//! (so CLI commands work while `serve` holds the store), the pane, the tracking
//! engine, the proxy with the tracking hook, and the sync workers.
//!
//! Once the listeners are bound, one line per listener goes to stderr, in this
//! exact format (tests and scripts parse it):
//!
//! ```text
//! listening imap 127.0.0.1:1143
//! listening imaps 127.0.0.1:1993
//! listening pane 127.0.0.1:8443
//! ```
//!
//! The pane's actual address also goes to `<data_dir>/pane-addr` while `serve` runs,
//! so that `crmproxy pane-url` prints links to the pane that really runs (`--pane`
//! may differ from the config).
//!
//! SIGTERM or SIGINT stops accepting, says BYE to idle sessions, stops the pane
//! and the workers, and waits a bounded time for the sessions.

use super::GlobalOpts;
use crate::admin;
use crate::config::{Config, UpstreamTls};
use crate::imap_client::connect::UpstreamConnector;
use crate::proxy::{Server, ServerOptions};
use crate::store::CrmStore;
use crate::sync::worker::Workers;
use crate::sync::TrackingHook;
use crate::track::Engine;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    /// Record every upstream connection as a transcript in DIR (secrets redacted;
    /// see `[record]` in the config and `crmproxy replay`).
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// With recording: replace message bodies and attachments by same-length filler.
    #[arg(long)]
    pub redact_bodies: bool,
    /// With recording: leave out the client's ID command (it may carry addresses).
    #[arg(long)]
    pub redact_id: bool,
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

/// The file naming the address of the pane that `serve` runs.
pub fn pane_addr_file(data_dir: &Path) -> PathBuf {
    data_dir.join("pane-addr")
}

/// The address of the pane a running `serve` with this data dir listens on: the
/// one it wrote, if something still listens there.
pub fn running_pane_addr(data_dir: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(pane_addr_file(data_dir)).ok()?;
    let addr: SocketAddr = text.trim().parse().ok()?;
    let alive =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok();
    alive.then_some(addr)
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
    if let Some(dir) = &a.record {
        cfg.record.dir = Some(dir.clone());
    }
    if a.redact_bodies {
        cfg.record.redact_bodies = true;
    }
    if a.redact_id {
        cfg.record.redact_id = true;
    }
    if (a.redact_bodies || a.redact_id) && cfg.record.dir.is_none() {
        anyhow::bail!("--redact-bodies and --redact-id need --record DIR (or [record] dir)");
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
    crate::private_files::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create the data dir {}", cfg.data_dir.display()))?;
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
    // Offloaded: a store call made on a runtime worker (the tracking hook inside an
    // IMAP session, a pane handler) hands that worker's other tasks to another
    // thread first, so a slow disk or database holds up only its own caller.
    let store: Arc<dyn CrmStore> = super::store::open_for_serve(&cfg).with_context(|| {
        format!(
            "cannot open the CRM store {} (is another `crmproxy serve` using it?)",
            super::store::describe(&cfg)
        )
    })?;
    if cfg.tracking.load_demo_on_first_run {
        if let Some(summary) =
            crate::store::demo::load_if_empty(store.as_ref()).context("cannot load the demo CRM")?
        {
            eprintln!(
                "loaded the demo CRM into the empty store ({} records; users alice, bob, \
                 carol, dave @example.test; set tracking.load_demo_on_first_run = false to skip)",
                summary.created
            );
        }
    }
    let engine = Arc::new(
        Engine::new(store.clone(), cfg.tracking.clone())
            .context("tracking settings (tracking.folder_regarding)")?,
    );
    // The workers' connections are recorded too (their replay needs them).
    let recorder = match cfg.record_settings() {
        Some(s) => {
            let r = crate::record::Recorder::shared(s)?;
            eprintln!("recording to {}", r.dir().display());
            Some(r)
        }
        None => None,
    };
    let connector = UpstreamConnector::new(&cfg.upstream, cfg.proxy.max_line_bytes)
        .context("upstream settings")?
        .with_recorder(recorder);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let closing = store.clone();
    rt.block_on(async move {
        // Load the search index now (from its snapshot, or rebuilt), not at the
        // first search or write.
        let warming = store.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = warming.warm_up() {
                tracing::warn!(error = %e, "cannot load the search index");
            }
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let admin_path = admin::socket_path(&cfg.data_dir);
        let admin_task = match admin::bind(&admin_path) {
            Ok(l) => Some(tokio::spawn(admin::serve_listener(store.clone(), l))),
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                tracing::warn!("{e}: CLI store commands work only while serve is stopped");
                None
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot serve the admin socket {}", admin_path.display())
                })
            }
        };
        let events = crate::events::PaneEvents::new();
        let interval =
            std::time::Duration::from_secs(cfg.tracking.sync_interval_minutes.max(1) * 60);
        let workers = Workers::new(
            engine.clone(),
            connector,
            events.clone(),
            interval,
            stop_rx.clone(),
        );
        // On a team's CRM, what other processes change reaches this proxy's panes
        // and sessions (the listener stops when `_changes` drops, at the end).
        let _changes = match cfg.store_location() {
            crate::config::StoreLocation::Postgres(opts) => Some(super::store::bridge_changes(
                opts,
                store.clone(),
                events.clone(),
                Arc::new(workers.clone()),
            )),
            crate::config::StoreLocation::Sled(_) => None,
        };
        // One engine and one event hub for the proxy and the pane; the pane reaches
        // the server copy of a message through the workers.
        let pane = if cfg.pane.addr.is_some() {
            let parts = crate::pane::PaneParts {
                events,
                engine,
                sync: Some(Arc::new(workers.clone())),
            };
            let p = crate::pane::start_with(&cfg, parts, stopped(stop_rx.clone()))
                .await
                .context("cannot start the pane")?;
            eprintln!("listening pane {}", p.local_addr);
            let file = pane_addr_file(&cfg.data_dir);
            crate::tls::write_atomic(&file, p.local_addr.to_string().as_bytes(), 0o600)
                .context("cannot record the pane's address for `crmproxy pane-url`")?;
            Some(p)
        } else {
            None
        };
        let opts = ServerOptions {
            tls,
            hook: Arc::new(TrackingHook::new(workers)),
        };
        let server = Server::bind(&cfg, opts).await?;
        if let Some(a) = server.imap_addr() {
            eprintln!("listening imap {a}");
        }
        if let Some(a) = server.imaps_addr() {
            eprintln!("listening imaps {a}");
        }
        let signal = async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        };
        server.run(signal).await?;
        if let Some(p) = pane {
            p.wait().await;
        }
        if let Some(t) = admin_task {
            t.abort();
            remove_if_present(&admin_path);
        }
        remove_if_present(&pane_addr_file(&cfg.data_dir));
        anyhow::Ok(())
    })?;
    // Workers blocked in the store finish their write before the store closes.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    // Save the search index, so the next start need not rebuild it.
    if let Err(e) = closing.close() {
        tracing::warn!(error = %e, "the search index will be rebuilt at the next start");
    }
    Ok(ExitCode::SUCCESS)
}

fn remove_if_present(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove");
        }
    }
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
            "--record",
            "/tmp/rec",
            "--redact-bodies",
        ])
        .unwrap();
        let rec = cfg.record_settings().unwrap();
        assert_eq!(rec.dir, Path::new("/tmp/rec"));
        assert!(rec.redaction.bodies);
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
        let e = apply(&["--redact-bodies"]).unwrap_err().to_string();
        assert!(e.contains("--record"), "{e}");
    }
}
