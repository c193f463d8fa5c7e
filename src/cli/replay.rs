//! `crmproxy replay`: transcripts written by `serve --record` served as a fake
//! upstream (`--imap ADDR`), or played as the client against a live server
//! (`--against HOST:PORT`). Exit 0 when everything went as recorded, 5 when the
//! live side departed from the recording (details on stderr).

use super::GlobalOpts;
use crate::replay::against::{play, Credentials};
use crate::replay::source::load;
use crate::replay::ReplayError;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code when the live side departed from the recording.
pub const EXIT_DEPARTED: u8 = 5;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Transcripts (one per recorded connection).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Serve the transcripts as a fake IMAP server on this address (plain IMAP).
    #[arg(
        long,
        value_name = "ADDR",
        conflicts_with = "against",
        required_unless_present = "against"
    )]
    pub imap: Option<SocketAddr>,
    /// Play the client's side against this live server (plain IMAP) and compare.
    #[arg(long, value_name = "HOST:PORT")]
    pub against: Option<String>,
    /// With --against: the user to log in as where credentials were redacted.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// With --against: the environment variable holding that user's password.
    #[arg(long, value_name = "VAR", default_value = "IMAP_PASSWORD")]
    pub password_env: String,
}

pub fn run(args: ReplayArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let mut scripts = Vec::new();
    for f in &args.files {
        scripts.push(load(f).context("cannot replay")?);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(async {
        if let Some(addr) = &args.against {
            let creds = match &args.user {
                Some(user) => Some(Credentials {
                    user: user.clone(),
                    password: std::env::var(&args.password_env).with_context(|| {
                        format!("--user needs the password in ${}", args.password_env)
                    })?,
                }),
                None => None,
            };
            let mut total = (0, 0);
            for s in &scripts {
                let p = match play(s, addr, creds.clone()).await {
                    Ok(p) => p,
                    Err(e) => return anyhow::Ok(Err(e)),
                };
                total = (total.0 + p.commands, total.1 + p.responses);
            }
            eprintln!(
                "replayed {} client messages against {addr}: all {} responses as recorded",
                total.0, total.1
            );
            return anyhow::Ok(Ok(()));
        }
        let addr = args.imap.context("--imap ADDR or --against HOST:PORT")?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        eprintln!("listening imap {}", listener.local_addr()?);
        let n = scripts.len();
        let r = crate::replay::server::serve(listener, scripts).await;
        if r.is_ok() {
            eprintln!("replayed {n} connection(s) as recorded");
        }
        anyhow::Ok(r)
    });
    match result {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(ReplayError::Departed(why))) => {
            eprintln!("replay: {why}");
            Ok(ExitCode::from(EXIT_DEPARTED))
        }
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(e),
    }
}
