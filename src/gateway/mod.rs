//! The headless gateway (SPEC section 10, issue 13): server-side tracking of
//! many mailboxes by rules, with no mail client running. Each configured
//! mailbox runs `serve`'s sync worker ([`crate::sync::worker`], the same code)
//! with a [`MailboxPlan`] made from the config: its server and credential, the
//! folders it watches, its rules, checkpoints, a share of its server's
//! connection budget. SIGTERM lets in-flight messages finish; SIGHUP re-reads
//! the mailbox list; `/healthz`, `/metrics` and `/status` answer on loopback.
//!
//! Files: `config` (the `[gateway]` tables), `credentials` (password file,
//! variable or command), `rules` (config → plan), `http` (admin endpoints),
//! `metrics` (Prometheus text), `status` (`gateway status`), `dry_run`
//! (`gateway test`), `logfmt` (JSON logs).

pub mod config;
pub mod credentials;
pub mod dry_run;
pub mod http;
pub mod logfmt;
pub mod metrics;
pub mod rules;
pub mod status;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

use crate::config::Config;
use crate::imap_client::UpstreamConnector;
use crate::sync::worker::plan::{MailboxPlan, MailboxStatus};
use crate::sync::Workers;
use crate::track::Engine;

pub use config::{GatewayConfig, MailboxConfig};
pub use status::MailboxReport;

/// How long SIGTERM waits for the mailboxes' in-flight work.
pub const STOP_WAIT: Duration = Duration::from_secs(30);

/// Threads for store calls (and name lookups). Every mailbox's connections call
/// the store; unbounded (tokio's 512), a backlog over 200 mailboxes grew ~200
/// threads that mostly waited on the store's one writer, each with its stack
/// and allocator cache. Calls beyond this wait in tokio's queue instead.
pub const BLOCKING_THREADS: usize = 16;

/// One running mailbox.
struct Running {
    config: MailboxConfig,
    plan: Option<Arc<MailboxPlan>>,
    /// Status of a mailbox that could not start (its credential, its rules).
    status: Arc<MailboxStatus>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The gateway: its mailboxes, the engine they share, the servers' budgets.
pub struct Gateway {
    engine: Arc<Engine>,
    cfg: Mutex<Config>,
    mailboxes: Mutex<BTreeMap<String, Running>>,
    budgets: Mutex<BTreeMap<String, Arc<Semaphore>>>,
    connectors: Mutex<BTreeMap<String, UpstreamConnector>>,
}

impl Gateway {
    pub fn new(engine: Arc<Engine>, cfg: Config) -> Arc<Gateway> {
        Arc::new(Gateway {
            engine,
            cfg: Mutex::new(cfg),
            mailboxes: Mutex::new(BTreeMap::new()),
            budgets: Mutex::new(BTreeMap::new()),
            connectors: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Start (or, after a config change, restart) every configured mailbox and
    /// stop those no longer configured. Returns how many run now.
    pub fn apply(&self, cfg: Config) -> usize {
        let g = cfg.gateway.clone();
        *self.cfg.lock().unwrap_or_else(|e| e.into_inner()) = cfg.clone();
        self.connectors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let mut running = self.mailboxes.lock().unwrap_or_else(|e| e.into_inner());
        let wanted: BTreeMap<String, &MailboxConfig> = g
            .mailboxes
            .iter()
            .map(|m| (m.name().to_ascii_lowercase(), m))
            .collect();
        running.retain(|name, r| {
            let keep = wanted.get(name).is_some_and(|m| **m == r.config);
            if !keep {
                tracing::info!(mailbox = %r.config.name(), "stopping (removed or changed in the config)");
                let _ = r.stop.send(true);
            }
            keep
        });
        for (key, m) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            let r = self.start(&cfg, m);
            running.insert(key, r);
        }
        running.len()
    }

    fn budget(&self, g: &GatewayConfig, server: &str) -> Arc<Semaphore> {
        let mut b = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        b.entry(server.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(g.budget_of(server))))
            .clone()
    }

    fn connector(&self, cfg: &Config, server: &str) -> Result<UpstreamConnector, String> {
        let mut c = self.connectors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(x) = c.get(server) {
            return Ok(x.clone());
        }
        let up = cfg
            .gateway
            .servers
            .get(server)
            .ok_or_else(|| format!("no server {server}"))?;
        let x = UpstreamConnector::new(up, cfg.proxy.max_line_bytes)
            .map_err(|e| format!("server {server}: {e}"))?;
        c.insert(server.to_string(), x.clone());
        Ok(x)
    }

    fn start(&self, cfg: &Config, m: &MailboxConfig) -> Running {
        let (stop, stop_rx) = watch::channel(false);
        let status = Arc::new(MailboxStatus::default());
        let mut r = Running {
            config: m.clone(),
            plan: None,
            status: status.clone(),
            stop,
            task: None,
        };
        let built = self.connector(cfg, &m.server).and_then(|connector| {
            let budget = self.budget(&cfg.gateway, &m.server);
            rules::plan_for(
                &self.engine,
                &cfg.gateway,
                m,
                connector,
                budget,
                status.clone(),
            )
        });
        let plan = match built {
            Ok(p) => Arc::new(p),
            Err(e) => {
                tracing::error!(mailbox = %m.name(), error = %e, "mailbox not started");
                status.error(e);
                return r;
            }
        };
        let interval = Duration::from_secs(cfg.tracking.sync_interval_minutes.max(1) * 60);
        // One set of workers per mailbox: its own stop signal (SIGHUP may stop
        // one mailbox while the others go on).
        let workers = Workers::new(
            self.engine.clone(),
            plan.connector.clone(),
            crate::events::PaneEvents::new(),
            interval,
            stop_rx,
        );
        tracing::info!(mailbox = %m.name(), owner = %m.owner, server = %m.server, "starting");
        r.task = Some(workers.start_mailbox(plan.clone()));
        r.plan = Some(plan);
        r
    }

    /// Every mailbox's status, by name.
    pub fn reports(&self) -> Vec<MailboxReport> {
        let running = self.mailboxes.lock().unwrap_or_else(|e| e.into_inner());
        running
            .values()
            .map(|r| MailboxReport::of(&r.config, &r.status))
            .collect()
    }

    /// Stop every mailbox: in-flight messages finish (bounded by [`STOP_WAIT`]).
    pub async fn stop(&self) {
        let tasks: Vec<_> = {
            let mut running = self.mailboxes.lock().unwrap_or_else(|e| e.into_inner());
            running
                .values_mut()
                .filter_map(|r| {
                    let _ = r.stop.send(true);
                    r.task.take()
                })
                .collect()
        };
        let all = futures_join(tasks);
        if tokio::time::timeout(STOP_WAIT, all).await.is_err() {
            tracing::warn!("some mailboxes did not stop in time");
        }
    }
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// Run the gateway until `stop` (the caller's SIGTERM/SIGINT); SIGHUP re-reads
/// the config through `reload`. The store is closed by the caller.
pub async fn run(
    gateway: Arc<Gateway>,
    admin: Option<std::net::SocketAddr>,
    reload: impl Fn() -> anyhow::Result<Config> + Send + 'static,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (http_stop, http_stopped) = watch::channel(false);
    let server = match admin {
        Some(addr) => {
            let (bound, task) = http::serve(gateway.clone(), addr, http_stopped).await?;
            eprintln!("listening admin {bound}");
            Some(task)
        }
        None => None,
    };
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = hup.recv() => {
                match reload() {
                    Ok(cfg) => match cfg.gateway.validate() {
                        Ok(()) => {
                            let n = gateway.apply(cfg);
                            tracing::info!(mailboxes = n, "config re-read");
                        }
                        Err(e) => tracing::error!(error = %e, "config not re-read: the mailboxes go on as they were"),
                    },
                    Err(e) => tracing::error!(error = format!("{e:#}"), "config not re-read: the mailboxes go on as they were"),
                }
            }
        }
    }
    gateway.stop().await;
    let _ = http_stop.send(true);
    if let Some(t) = server {
        let _ = t.await;
    }
    Ok(())
}
