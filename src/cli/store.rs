//! The one place that opens the configured CRM store (sled directory or
//! PostgreSQL URL) for `serve`, the CLI and `track`, and `crmproxy store copy`,
//! which moves a personal (sled) CRM into a team's PostgreSQL one.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::{GlobalOpts, EXIT_UNAVAILABLE};
use crate::config::{Config, StoreLocation};
use crate::store::postgres::copy::CopySummary;
use crate::store::{CrmStore, ImportSummary, PgOptions, PgStore, SledStore, StoreError};

/// Open the store `cfg` names. A sled store held by `serve` is
/// [`StoreError::Locked`]; a PostgreSQL store is shared by every process.
pub fn open_store(cfg: &Config) -> Result<Arc<dyn CrmStore>, StoreError> {
    Ok(match cfg.store_location() {
        StoreLocation::Sled(dir) => Arc::new(SledStore::open(dir)?),
        StoreLocation::Postgres(opts) => Arc::new(PgStore::open(&opts)?),
    })
}

/// [`open_store`] for `serve`: every call offloaded from runtime workers
/// (see [`crate::store::forward::Offloaded`]).
pub fn open_for_serve(cfg: &Config) -> Result<Arc<dyn CrmStore>, StoreError> {
    Ok(match cfg.store_location() {
        StoreLocation::Sled(dir) => crate::store::forward::for_serve(SledStore::open(dir)?),
        StoreLocation::Postgres(opts) => crate::store::forward::for_serve(PgStore::open(&opts)?),
    })
}

/// Where the configured store is, for messages (no password).
pub fn describe(cfg: &Config) -> String {
    match cfg.store_location() {
        StoreLocation::Sled(dir) => dir.display().to_string(),
        StoreLocation::Postgres(opts) => opts.describe(),
    }
}

/// Stops the change listener when dropped.
pub struct ChangeBridge {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for ChangeBridge {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Hand every change committed to the team's CRM (by any process) to this
/// proxy: records to every live pane, a mailbox's tracking to that mailbox's
/// panes, and tracking changes to the sync workers (sessions re-read header
/// blocks). Runs on a thread of its own: the listener blocks.
pub fn bridge_changes(
    opts: PgOptions,
    store: Arc<dyn CrmStore>,
    events: crate::events::PaneEvents,
    sync: Arc<dyn crate::events::MailboxSync>,
) -> ChangeBridge {
    use crate::events::CrmChanged;
    use crate::store::postgres::notify::{listen, Change};
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let spawned = std::thread::Builder::new()
        .name("crm-changes".into())
        .spawn(move || {
            listen(&opts, &flag, &mut |change| match change {
                Change::Record(id) => {
                    events.publish_change(
                        None,
                        CrmChanged {
                            records: vec![id],
                            ..Default::default()
                        },
                    );
                }
                Change::Tracking { owner, message_id } => {
                    sync.tracking_changed();
                    // The mailbox's channel is named by its owner's logins.
                    let logins = match store.record(owner) {
                        Ok(Some(crate::store::Record::User(u))) => u.logins,
                        _ => Vec::new(),
                    };
                    for login in logins {
                        events.publish_change(
                            Some(login.as_str()),
                            CrmChanged {
                                message_ids: vec![message_id.clone()],
                                ..Default::default()
                            },
                        );
                    }
                }
            })
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the listener for the team CRM's changes");
    }
    ChangeBridge { stop }
}

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub action: StoreAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum StoreAction {
    /// Copy an embedded (sled) CRM into a PostgreSQL one, exactly; running it again
    /// changes nothing (and finishes a copy that stopped half-way).
    Copy {
        /// The embedded store's directory (e.g. ~/.local/share/crmproxy/store);
        /// no `serve` may be using it.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The PostgreSQL CRM: postgres://user@host/db (password as for [store]).
        #[arg(long, value_name = "URL")]
        to: String,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(a: StoreArgs, g: &GlobalOpts) -> anyhow::Result<ExitCode> {
    match a.action {
        StoreAction::Copy { from, to, json } => copy(g, from, to, json),
    }
}

fn copy(g: &GlobalOpts, from: PathBuf, to: String, json: bool) -> anyhow::Result<ExitCode> {
    let cfg = g.load_config()?;
    if !crate::store::postgres::is_url(&to) {
        anyhow::bail!("--to must be a postgres:// URL");
    }
    if !from.join("db").exists() {
        anyhow::bail!(
            "{} holds no crmproxy store (no db/ inside); pass the store directory, e.g. {}",
            from.display(),
            cfg.store_dir().display()
        );
    }
    let source = match SledStore::open(&from) {
        Ok(s) => s,
        Err(e @ StoreError::Locked { .. }) => {
            eprintln!("error: {e}; stop `crmproxy serve` for the copy");
            return Ok(ExitCode::from(EXIT_UNAVAILABLE));
        }
        Err(e) => return Err(e).context("cannot open the store to copy"),
    };
    let opts = PgOptions {
        url: to,
        password_env: Some(cfg.store.password_env.clone()),
        password_file: cfg.store.password_file.clone(),
        ca_file: cfg.store.ca_file.clone(),
    };
    let target = match PgStore::open(&opts) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_UNAVAILABLE));
        }
    };
    eprintln!("reading {}", from.display());
    let bundle = source.export().context("cannot read the store to copy")?;
    drop(source);
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>32} {bar:40} {pos}/{len} ({per_sec})")
            .expect("template"),
    );
    let summary = target
        .copy_in(&bundle, &mut |stage, done, total| {
            if bar.message() != stage {
                bar.set_message(stage.to_owned());
                bar.reset();
            }
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .with_context(|| format!("copy into {} failed", target.describe()))?;
    bar.finish_and_clear();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("summary serialises")
        );
    } else {
        print_summary(&summary, &target.describe());
    }
    if summary.differing > 0 {
        eprintln!(
            "error: {} row(s) read back different from the source",
            summary.differing
        );
        return Ok(ExitCode::from(super::EXIT_CHECK_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &CopySummary, to: &str) {
    let line = |what: &str, i: &ImportSummary| {
        println!(
            "{what:>22}: {} created, {} updated, {} unchanged",
            i.created, i.updated, i.unchanged
        )
    };
    println!("copied into {to}:");
    println!("{:>22}: {}", "files", s.files);
    line("records", &s.records);
    line("activities", &s.activities);
    line("tracking records", &s.tracking);
    line("address-book entries", &s.address_books);
    if s.differing == 0 {
        println!("every row read back identical");
    }
}
