//! `crmproxy serve`: flags, config overrides, and starting the proxy.
//! (Owned by the proxy work; filled in there.)

use super::GlobalOpts;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

pub fn run(_args: ServeArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    anyhow::bail!("serve is not built yet")
}
