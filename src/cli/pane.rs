//! `crmproxy pane-url`: print a one-time sign-in link for the pane. The link works once,
//! for 10 minutes, against the `serve` running with the same data directory, at the
//! address that `serve` really listens on (which `serve --pane` may have changed).

use super::GlobalOpts;
use anyhow::Context;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct PaneUrlArgs {
    /// The mailbox user (e-mail address) to sign in as.
    #[arg(long, value_name = "EMAIL")]
    pub user: String,
}

pub fn pane_url(args: PaneUrlArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let mut cfg = global.load_config()?;
    let user = args.user.trim();
    if !looks_like_address(user) {
        anyhow::bail!("--user {user:?} is not an e-mail address (like you@example.com)");
    }
    if let Some(running) = super::serve::running_pane_addr(&cfg.data_dir) {
        cfg.pane.addr = Some(running);
    } else if cfg.pane.addr.is_some() {
        eprintln!("Note: no running `crmproxy serve` found for this data directory; the link points at the configured pane address.");
    }
    if cfg.pane.addr.is_none() {
        anyhow::bail!("the pane is turned off: set pane.addr in the config file");
    }
    let url = crate::pane::issue_signin_link(&cfg, user).with_context(|| {
        format!(
            "cannot write the sign-in link under {}",
            crate::pane::token_dir(&cfg).display()
        )
    })?;
    println!("{url}");
    eprintln!("Open this link in your browser within 10 minutes; it works once.");
    Ok(ExitCode::SUCCESS)
}

fn looks_like_address(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses() {
        assert!(super::looks_like_address("a@b.example"));
        assert!(!super::looks_like_address("ab.example"));
        assert!(!super::looks_like_address("a b@c"));
        assert!(!super::looks_like_address("@c"));
    }
}
