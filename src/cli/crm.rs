//! `crmproxy user|import|export|search|show`: the CRM store from the command line.
//! (Owned by the store work; filled in there.)

use super::GlobalOpts;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct UserArgs {}
#[derive(Debug, clap::Args)]
pub struct ImportArgs {}
#[derive(Debug, clap::Args)]
pub struct ExportArgs {}
#[derive(Debug, clap::Args)]
pub struct SearchArgs {}
#[derive(Debug, clap::Args)]
pub struct ShowArgs {}

pub fn user(_a: UserArgs, _g: &GlobalOpts) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
pub fn import(_a: ImportArgs, _g: &GlobalOpts) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
pub fn export(_a: ExportArgs, _g: &GlobalOpts) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
pub fn search(_a: SearchArgs, _g: &GlobalOpts) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
pub fn show(_a: ShowArgs, _g: &GlobalOpts) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
