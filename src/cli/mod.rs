//! The command line: argument definitions, config loading, logging set-up, and
//! dispatch to one submodule per group of commands. Errors are reported here,
//! at the edge, with context; exit codes are documented in `README.md`.

pub mod crm;
pub mod gateway;
pub mod pane;
pub mod replay;
pub mod serve;
pub mod setup;
pub mod store;
pub mod thunderbird;
pub mod track;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{default_config_path, Config};

/// Exit code for an error in what the user asked (bad file, unknown id, bad config).
pub const EXIT_USER_ERROR: u8 = 1;
/// Exit code when something outside could not be reached (upstream down, store locked).
pub const EXIT_UNAVAILABLE: u8 = 3;
/// Exit code when `doctor` found problems.
pub const EXIT_CHECK_FAILED: u8 = 4;
/// Exit code when `replay` saw the live side depart from the recording.
pub const EXIT_REPLAY_DEPARTED: u8 = replay::EXIT_DEPARTED;

#[derive(Debug, Parser)]
#[command(
    name = "crmproxy",
    version,
    about = "CRM email tracking for any IMAP client"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalOpts {
    /// Data directory (store, certificates). Default: ~/.local/share/crmproxy.
    #[arg(long, global = true, env = "CRMPROXY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file. Default: <data-dir>/crmproxy.toml when it exists, else built-in defaults.
    #[arg(long, global = true, env = "CRMPROXY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The CRM store: a team's `postgres://…` URL, or an embedded store's directory
    /// (default: the config's [store], else <data-dir>/store).
    #[arg(long, global = true, env = "CRMPROXY_STORE", value_name = "URL|DIR")]
    pub store: Option<String>,
    /// Log lines as `text` (default) or `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a config file and create the local CA and localhost certificate.
    Init(setup::InitArgs),
    /// Set up a mail client for tracking (Thunderbird: tags for the CRM keywords).
    Setup(thunderbird::SetupArgs),
    /// Run the proxy (and the pane and sync worker).
    Serve(serve::ServeArgs),
    /// Check config, certificates and the upstream server, and say what to fix.
    Doctor(setup::DoctorArgs),
    /// Manage CRM users: add, list, grant, revoke, delegate.
    User(crm::UserArgs),
    /// Import contacts, accounts or leads (CSV, vCard) or a JSON export.
    Import(crm::ImportArgs),
    /// Export the whole CRM as JSON.
    Export(crm::ExportArgs),
    /// Search the CRM.
    Search(crm::SearchArgs),
    /// Show one record or activity by id.
    Show(crm::ShowArgs),
    /// Track a message file (headless), optionally regarding a record.
    Track(track::TrackArgs),
    /// Stop tracking a message in a mailbox (the activity stays in the CRM).
    Untrack(track::UntrackArgs),
    /// Move a CRM between stores: `store copy --from DIR --to URL`.
    Store(store::StoreArgs),
    /// Serve recorded transcripts as a fake IMAP server, or play one against a server.
    Replay(replay::ReplayArgs),
    /// Print a one-time sign-in link for the pane (works once, for 10 minutes).
    PaneUrl(pane::PaneUrlArgs),
    /// Track many mailboxes server-side by rules, no mail client needed
    /// (`gateway`, `gateway status`, `gateway test MAILBOX`).
    Gateway(gateway::GatewayArgs),
}

impl GlobalOpts {
    /// The effective configuration: file (explicit, or the data dir's), then flags.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let explicit = self.config.clone();
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(crate::config::default_data_dir);
        let path = explicit
            .clone()
            .unwrap_or_else(|| default_config_path(&data_dir));
        let mut cfg = if explicit.is_some() || path.exists() {
            Config::load(&path).with_context(|| "fix the config file or pass --config")?
        } else {
            Config::default()
        };
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        } else if !path.exists() || explicit.is_none() {
            // A config found inside the data dir keeps that data dir unless it names one.
            if cfg.data_dir == crate::config::default_data_dir() {
                cfg.data_dir = data_dir;
            }
        }
        match self.store.as_deref().map(str::trim) {
            Some(s) if crate::store::postgres::is_url(s) => cfg.store.url = Some(s.to_owned()),
            Some(s) if !s.is_empty() => {
                cfg.store.url = None;
                cfg.store.dir = Some(PathBuf::from(s));
            }
            _ => {}
        }
        Ok(cfg)
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .event_format(crate::gateway::logfmt::JsonLines)
            .try_init(),
    };
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // Everything this process creates (store, blobs, certificates, sockets) is
    // private to the service user, whatever umask it was started with.
    crate::private_files::restrict_umask();
    let cli = Cli::parse();
    init_logging(cli.global.log_format);
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Gateway(_) | Command::Replay(_)
    ) {
        quiet_when_the_reader_leaves();
    }
    let result = match cli.command {
        Command::Init(a) => setup::init(a, &cli.global),
        Command::Setup(a) => thunderbird::setup(a, &cli.global),
        Command::Serve(a) => serve::run(a, &cli.global),
        Command::Doctor(a) => setup::doctor(a, &cli.global),
        Command::User(a) => crm::user(a, &cli.global),
        Command::Import(a) => crm::import(a, &cli.global),
        Command::Export(a) => crm::export(a, &cli.global),
        Command::Search(a) => crm::search(a, &cli.global),
        Command::Show(a) => crm::show(a, &cli.global),
        Command::Track(a) => track::track(a, &cli.global),
        Command::Untrack(a) => track::untrack(a, &cli.global),
        Command::PaneUrl(a) => pane::pane_url(a, &cli.global),
        Command::Store(a) => store::run(a, &cli.global),
        Command::Replay(a) => replay::run(a, &cli.global),
        Command::Gateway(a) => gateway::run(a, &cli.global),
    };
    match result {
        Ok(code) => code,
        Err(e) if broken_pipe(&e) => ExitCode::from(EXIT_BROKEN_PIPE),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_USER_ERROR)
        }
    }
}

/// What a shell reports for a command killed by SIGPIPE (128 + 13).
const EXIT_BROKEN_PIPE: u8 = 141;

/// Whether `e` comes from writing to a reader that has gone.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `crmproxy search … | head`: Rust ignores SIGPIPE, so once the reader has
/// gone `println!` panics; a one-shot command stops quietly instead, as one
/// killed by the signal would. (The long-running commands keep the panic: their
/// standard output is not a pipe someone reads to the end.)
fn quiet_when_the_reader_leaves() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(EXIT_BROKEN_PIPE.into());
        }
        default(info)
    }));
}
