//! `crmproxy gateway`: run the headless gateway over the config's
//! `[[gateway.mailbox]]` list; `gateway status` asks a running gateway for its
//! mailboxes' state; `gateway test MAILBOX` logs in and dry-runs the rules.

use anyhow::Context;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::Arc;

use super::{GlobalOpts, EXIT_UNAVAILABLE, EXIT_USER_ERROR};
use crate::gateway::{dry_run, status, Gateway};
use crate::track::Engine;

/// Messages of each watched folder `gateway test` judges by default.
const DRY_RUN_LAST: usize = 10;

#[derive(Debug, clap::Args)]
pub struct GatewayArgs {
    #[command(subcommand)]
    pub action: Option<GatewayAction>,
}

#[derive(Debug, clap::Subcommand)]
pub enum GatewayAction {
    /// Each mailbox's state, last sync, backlog and last error (from the running gateway).
    Status,
    /// Log in to one mailbox, list its folders, check IDLE/CONDSTORE, and show
    /// what the rules would track among its last messages (changes nothing).
    Test {
        /// The mailbox's name (or login) in the config.
        mailbox: String,
        /// How many of the newest messages of each watched folder to judge.
        #[arg(long, default_value_t = DRY_RUN_LAST)]
        last: usize,
    },
}

pub fn run(args: GatewayArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let cfg = global.load_config()?;
    match args.action {
        None => serve(cfg, global),
        Some(GatewayAction::Status) => show_status(&cfg),
        Some(GatewayAction::Test { mailbox, last }) => test(&cfg, &mailbox, last),
    }
}

fn serve(cfg: crate::config::Config, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    cfg.gateway
        .validate()
        .context("fix the [gateway] part of the config")?;
    let admin = cfg.gateway.admin_address()?;
    let store = super::store::open_for_serve(&cfg)
        .with_context(|| format!("cannot open the CRM store {}", super::store::describe(&cfg)))?;
    let engine = Arc::new(
        Engine::new(store.clone(), cfg.tracking.clone())
            .context("tracking settings (tracking.folder_regarding)")?,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(crate::gateway::BLOCKING_THREADS)
        .build()
        .context("cannot start the async runtime")?;
    let global = global.clone();
    rt.block_on(async move {
        let gateway = Gateway::new(engine, cfg.clone());
        let n = gateway.apply(cfg);
        eprintln!("gateway watching {n} mailboxes");
        crate::gateway::run(
            gateway,
            admin,
            move || global.load_config(),
            super::serve::shutdown_signal(),
        )
        .await
    })?;
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    if let Err(e) = store.close() {
        tracing::warn!(error = %e, "closing the store");
    }
    eprintln!("gateway stopped");
    Ok(ExitCode::SUCCESS)
}

fn show_status(cfg: &crate::config::Config) -> anyhow::Result<ExitCode> {
    let Some(addr) = cfg.gateway.admin_address()? else {
        eprintln!("gateway.admin is off: no status to ask for");
        return Ok(ExitCode::from(EXIT_USER_ERROR));
    };
    let body = match http_get(addr, "/status") {
        Ok(b) => b,
        Err(e) => {
            eprintln!("no gateway answers on {addr}: {e}");
            return Ok(ExitCode::from(EXIT_UNAVAILABLE));
        }
    };
    let reports: Vec<status::MailboxReport> =
        serde_json::from_str(&body).context("the gateway's /status answer")?;
    print!("{}", status::render(&reports));
    Ok(ExitCode::SUCCESS)
}

/// A GET on the loopback admin address (HTTP/1.0, the whole answer read).
fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let timeout = std::time::Duration::from_secs(10);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(std::io::Error::other(
            head.lines().next().unwrap_or("").to_string(),
        ));
    }
    Ok(body.to_string())
}

fn test(cfg: &crate::config::Config, name: &str, last: usize) -> anyhow::Result<ExitCode> {
    let g = &cfg.gateway;
    let Some(m) = g.mailbox(name) else {
        eprintln!("no mailbox {name} in [[gateway.mailbox]]");
        return Ok(ExitCode::from(EXIT_USER_ERROR));
    };
    let up = g
        .servers
        .get(&m.server)
        .with_context(|| format!("no server {} in [gateway.servers]", m.server))?;
    let connector = crate::imap_client::UpstreamConnector::new(up, cfg.proxy.max_line_bytes)
        .with_context(|| format!("server {}", m.server))?;
    let store = super::store::open_store(cfg)
        .with_context(|| format!("cannot open the CRM store {}", super::store::describe(cfg)))?;
    let engine = Engine::new(store, cfg.tracking.clone()).context("tracking settings")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match rt.block_on(dry_run::dry_run(&engine, g, m, &connector, last)) {
        Ok(report) => {
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ dry_run::DryRunError::Setup(_)) => {
            eprintln!("{e}");
            Ok(ExitCode::from(EXIT_USER_ERROR))
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(EXIT_UNAVAILABLE))
        }
    }
}
