//! `crmproxy init` (config file, local CA and localhost certificate, instructions to
//! trust the CA and set up the mail account) and `crmproxy doctor` (printing the
//! checks of `crate::doctor` as text or JSON).

use super::{GlobalOpts, EXIT_CHECK_FAILED};
use crate::config::{default_config_path, default_data_dir, Config};
use crate::doctor::{Report, Status};
use crate::tls::{CertAction, CertPaths};
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Overwrite an existing config file and make a new CA (clients must trust it again).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also sign in as this mailbox user (password on the first line of stdin)
    /// and check its folders: namespace, Sent, Drafts, keywords.
    #[arg(long, value_name = "LOGIN")]
    pub user: Option<String>,
}

/// The documented example config, shipped in the binary.
const EXAMPLE_CONFIG: &str = include_str!("../../config/crmproxy.example.toml");

/// The example config with `data_dir` set to `data_dir`.
pub fn config_text(data_dir: &Path) -> String {
    let value = toml::Value::String(data_dir.display().to_string()).to_string();
    let mut out = String::with_capacity(EXAMPLE_CONFIG.len() + 64);
    let mut replaced = false;
    for line in EXAMPLE_CONFIG.lines() {
        if !replaced && line.trim_start().starts_with("# data_dir =") {
            out.push_str(&format!("data_dir = {value}\n"));
            replaced = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !replaced {
        out = format!("data_dir = {value}\n{out}");
    }
    out
}

pub fn init(args: InitArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let data_dir = global.data_dir.clone().unwrap_or_else(default_data_dir);
    crate::private_files::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize().unwrap_or(data_dir);
    let config_path = global
        .config
        .clone()
        .unwrap_or_else(|| default_config_path(&data_dir));

    if config_path.exists() && !args.force {
        println!(
            "Kept the existing config {} (pass --force to overwrite it).",
            config_path.display()
        );
    } else {
        crate::tls::write_atomic(&config_path, config_text(&data_dir).as_bytes(), 0o600)
            .context("cannot write the config file")?;
        println!("Wrote the config {}.", config_path.display());
    }
    let mut cfg = Config::load(&config_path)
        .context("the config file is not valid; fix it or run `crmproxy init --force`")?;
    if global.data_dir.is_some() {
        cfg.data_dir = data_dir.clone();
    }

    let cert_dir = cfg.cert_dir();
    if args.force {
        // A new CA: remove the old files so that ensure_certs makes everything afresh.
        let old = CertPaths::in_dir(&cert_dir);
        for p in [&old.ca_cert, &old.ca_key, &old.cert, &old.key] {
            if p.exists() {
                std::fs::remove_file(p)
                    .with_context(|| format!("cannot remove {}", p.display()))?;
            }
        }
    }
    let (paths, action) = crate::tls::ensure_certs_in(&cert_dir, cfg.tls.renew_before_days)
        .context("cannot create the local CA and localhost certificate")?;
    match action {
        CertAction::CreatedCa => println!(
            "Created a local CA {} and a localhost certificate {} (keys mode 0600).",
            paths.ca_cert.display(),
            paths.cert.display()
        ),
        CertAction::RenewedLeaf => println!(
            "Renewed the localhost certificate {} (the CA {} is unchanged: nothing to re-import).",
            paths.cert.display(),
            paths.ca_cert.display()
        ),
        CertAction::Kept => println!(
            "Kept the CA {} and the localhost certificate (still valid).",
            paths.ca_cert.display()
        ),
    }
    println!();
    print!("{}", instructions(&cfg, &paths.ca_cert));
    Ok(ExitCode::SUCCESS)
}

/// How to trust the CA and configure the mail account.
pub fn instructions(cfg: &Config, ca: &Path) -> String {
    let ca = ca.display();
    let mut s = String::new();
    s.push_str(&format!(
        "1. Trust the local CA {ca} (once per machine / mail client):\n\
         \n\
         \x20  Thunderbird: Settings > Privacy & Security > Certificates > Manage Certificates >\n\
         \x20    Authorities > Import... > choose {ca}; tick \"Trust this CA to identify websites\"\n\
         \x20    and \"identify email users\".\n\
         \x20  Windows / classic Outlook: certutil -addstore -user Root \"{ca}\"\n\
         \x20    (or certmgr.msc > Trusted Root Certification Authorities > Certificates >\n\
         \x20    All Tasks > Import).\n\
         \x20  macOS / Apple Mail: security add-trusted-cert -r trustRoot\n\
         \x20    -k ~/Library/Keychains/login.keychain-db \"{ca}\"\n\
         \x20  Linux (Debian/Ubuntu): sudo cp \"{ca}\" /usr/local/share/ca-certificates/crmproxy-ca.crt\n\
         \x20    && sudo update-ca-certificates\n\
         \x20    (Fedora: sudo cp \"{ca}\" /etc/pki/ca-trust/source/anchors/ && sudo update-ca-trust)\n\
         \n"
    ));
    s.push_str("2. Point the mail account's incoming (IMAP) server at crmproxy:\n\n");
    s.push_str("   server: 127.0.0.1, user name and password: as for your real IMAP server\n");
    if let Some(a) = cfg.proxy.imaps {
        s.push_str(&format!(
            "   port {}, connection security SSL/TLS (recommended)\n",
            a.port()
        ));
    }
    if let Some(a) = cfg.proxy.imap {
        s.push_str(&format!(
            "   or port {}, connection security STARTTLS\n",
            a.port()
        ));
    }
    s.push_str(&format!(
        "   Outgoing mail (SMTP) stays as it is.\n\n\
         3. Check the set-up: crmproxy doctor; then run: crmproxy serve\n\
         \x20  (upstream now: {}:{} with {:?} TLS; change [upstream] in the config or pass --upstream)\n",
        cfg.upstream.host, cfg.upstream.port, cfg.upstream.tls
    ));
    s
}

pub fn doctor(args: DoctorArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let report = match global.load_config() {
        Err(e) => crate::doctor::config_failed(&format!("{e:#}")),
        Ok(cfg) => {
            let source = config_source(global, &cfg);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let mailbox = match &args.user {
                Some(u) => Some(crate::doctor::MailboxLogin::read(
                    u,
                    std::io::stdin().lock(),
                )?),
                None => None,
            };
            rt.block_on(crate::doctor::run(&cfg, &source, mailbox.as_ref()))
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CHECK_FAILED)
    })
}

fn config_source(global: &GlobalOpts, cfg: &Config) -> String {
    let path = global
        .config
        .clone()
        .unwrap_or_else(|| default_config_path(&cfg.data_dir));
    if path.exists() {
        format!("{} is valid", path.display())
    } else {
        format!(
            "no config file at {}: built-in defaults (run `crmproxy init` to write one)",
            path.display()
        )
    }
}

/// The report as text: one line per check, the fix indented under a problem.
pub fn render(report: &Report) -> String {
    let mut s = String::new();
    for c in &report.checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        s.push_str(&format!("[{mark}] {}: {}\n", c.name, c.detail));
        if let Some(fix) = &c.fix {
            s.push_str(&format!("       fix: {fix}\n"));
        }
    }
    let failed = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .count();
    if failed == 0 {
        s.push_str("All checks passed.\n");
    } else {
        s.push_str(&format!("{failed} check(s) failed: see the fixes above.\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_text_sets_data_dir_and_parses() {
        let text = config_text(Path::new("/tmp/some \"dir\""));
        let cfg = Config::from_toml(&text, Path::new("x")).unwrap();
        assert_eq!(cfg.data_dir, Path::new("/tmp/some \"dir\""));
        assert_eq!(text.matches("data_dir =").count(), 1);
    }

    #[test]
    fn instructions_name_every_platform_and_port() {
        let cfg = Config::default();
        let text = instructions(&cfg, Path::new("/d/certs/ca.pem"));
        for needle in [
            "Thunderbird",
            "Authorities",
            "certutil -addstore -user Root",
            "certmgr.msc",
            "security add-trusted-cert",
            "update-ca-certificates",
            "/usr/local/share/ca-certificates/",
            "127.0.0.1",
            "port 1993, connection security SSL/TLS",
            "port 1143, connection security STARTTLS",
        ] {
            assert!(text.contains(needle), "missing {needle:?}");
        }
    }
}
