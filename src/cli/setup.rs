//! `crmproxy init` and `crmproxy doctor`.
//! (Owned by the TLS/set-up work; filled in there.)

use super::GlobalOpts;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct InitArgs {}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {}

pub fn init(_args: InitArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    anyhow::bail!("init is not built yet")
}

pub fn doctor(_args: DoctorArgs, _global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    anyhow::bail!("doctor is not built yet")
}
