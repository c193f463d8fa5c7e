//! `crmproxy user|import|export|search|show`: the CRM store from the command line.
//! Each command opens the store itself, or, when `serve` holds it, sends the same
//! request over the admin socket (`crate::admin`).

use anyhow::Context;
use serde_json::Value;
use std::sync::Arc;

use crate::store::CrmStore;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{GlobalOpts, EXIT_UNAVAILABLE, EXIT_USER_ERROR};
use crate::admin::{self, AdminRequest, ClientError};
use crate::formats::import::{self, ImportKind, Parsed, Row};
use crate::store::{EmailAddress, ImportSummary, Kind, Privilege, SearchQuery, StoreError};

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub action: UserAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum UserAction {
    /// Add a CRM user.
    Add {
        /// Full name, e.g. "Alice Example".
        full_name: String,
        /// Login e-mail address (repeat for more than one).
        #[arg(long = "login", required = true, value_name = "EMAIL")]
        logins: Vec<EmailAddress>,
        /// IMAP user name that is not an e-mail address, e.g. `jsmith` on a
        /// company server (repeatable).
        #[arg(long = "imap-login", value_name = "NAME")]
        imap_logins: Vec<String>,
        /// Privilege to grant (repeatable): use_app, create_records, delete_records, admin.
        #[arg(long = "grant", value_name = "PRIVILEGE")]
        privileges: Vec<Privilege>,
        #[arg(long)]
        json: bool,
    },
    /// List users with their logins, privileges and delegates.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Grant privileges to a user (by login e-mail or id).
    Grant {
        user: String,
        #[arg(required = true)]
        privileges: Vec<Privilege>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke privileges from a user (by login e-mail or id).
    Revoke {
        user: String,
        #[arg(required = true)]
        privileges: Vec<Privilege>,
        #[arg(long)]
        json: bool,
    },
    /// Let USER sign in to the mail server as NAME (an IMAP user name that is not
    /// an e-mail address, e.g. `jsmith`), or stop it with --remove.
    ImapLogin {
        user: String,
        name: String,
        #[arg(long)]
        remove: bool,
        #[arg(long)]
        json: bool,
    },
    /// Let DELEGATE act on OWNER's mailbox (SPEC section 8), or stop it with --remove.
    Delegate {
        owner: String,
        delegate: String,
        #[arg(long)]
        remove: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// CSV (contacts, accounts, leads), vCard (3.0/4.0) or a JSON export.
    pub file: PathBuf,
    /// What the file holds; detected from its content and headers when left out.
    #[arg(long, value_enum)]
    pub kind: Option<ImportKind>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Import the contacts (vCard, CSV) into this user's own address book (the
    /// pane's "Mail contacts") instead of the CRM.
    #[arg(long, value_name = "USER_EMAIL")]
    pub address_book: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write to this file (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Words to find (prefixes; accents and case ignored).
    pub query: String,
    /// Only records of this type (repeatable): account, contact, lead, opportunity, case, invoice, …
    #[arg(long = "type", value_name = "T")]
    pub types: Vec<Kind>,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Id of a record or an activity.
    pub id: uuid::Uuid,
    #[arg(long)]
    pub json: bool,
}

/// An error with the exit code it deserves.
struct Failure {
    code: u8,
    message: String,
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        if super::broken_pipe(&e) {
            // The reader of the output left: nothing to say (see `super::main`).
            return Failure {
                code: super::EXIT_BROKEN_PIPE,
                message: String::new(),
            };
        }
        Failure {
            code: EXIT_USER_ERROR,
            message: format!("{e:#}"),
        }
    }
}

fn store_failure(e: StoreError) -> Failure {
    let code = match e {
        StoreError::Db(_)
        | StoreError::Corrupt(_)
        | StoreError::Locked { .. }
        | StoreError::Blob(_) => EXIT_UNAVAILABLE,
        _ => EXIT_USER_ERROR,
    };
    Failure {
        code,
        message: e.to_string(),
    }
}

fn finish(r: Result<ExitCode, Failure>) -> anyhow::Result<ExitCode> {
    match r {
        Ok(c) => Ok(c),
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("error: {}", f.message);
            }
            Ok(ExitCode::from(f.code))
        }
    }
}

/// Where requests go: the store opened here, or `serve`'s admin socket.
enum Backend {
    Local(Arc<dyn CrmStore>),
    Admin(PathBuf),
}

impl Backend {
    fn open(g: &GlobalOpts) -> Result<Backend, Failure> {
        let cfg = g.load_config()?;
        // A PostgreSQL CRM is shared: every process opens it directly.
        if let crate::config::StoreLocation::Postgres(_) = cfg.store_location() {
            return super::store::open_store(&cfg)
                .map(Backend::Local)
                .map_err(store_failure);
        }
        let sock = admin::socket_path(&cfg.data_dir);
        // A running `serve` answers on its socket; ask it first so as not to wait for its lock.
        if sock.exists() && admin::request(&sock, &AdminRequest::Ping).is_ok() {
            return Ok(Backend::Admin(sock));
        }
        match super::store::open_store(&cfg) {
            Ok(s) => Ok(Backend::Local(s)),
            Err(StoreError::Locked { path, .. }) => match admin::request(&sock, &AdminRequest::Ping) {
                Ok(_) => Ok(Backend::Admin(sock)),
                Err(e) => Err(Failure {
                    code: EXIT_UNAVAILABLE,
                    message: format!(
                        "the store at {path} is held by another process (crmproxy serve?), and {e}; \
                         stop the other process, or check that `crmproxy serve` runs with this data directory"
                    ),
                }),
            },
            Err(e) => Err(store_failure(e)),
        }
    }

    fn call(&self, req: AdminRequest) -> Result<Value, Failure> {
        match self {
            Backend::Local(s) => admin::handle(s.as_ref(), req).map_err(store_failure),
            Backend::Admin(p) => admin::request(p, &req).map_err(|e| match e {
                ClientError::Refused {
                    message,
                    user_error,
                } => Failure {
                    code: if user_error {
                        EXIT_USER_ERROR
                    } else {
                        EXIT_UNAVAILABLE
                    },
                    message,
                },
                other => Failure {
                    code: EXIT_UNAVAILABLE,
                    message: other.to_string(),
                },
            }),
        }
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("json"));
}

fn user_line(u: &Value) -> String {
    let list = |k: &str| {
        u[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    format!(
        "{}  {:<24} logins={} privileges={} delegates={}",
        u["id"].as_str().unwrap_or(""),
        u["full_name"].as_str().unwrap_or(""),
        [list("logins"), list("imap_logins")]
            .into_iter()
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(","),
        list("privileges"),
        list("delegates")
    )
}

pub fn user(a: UserArgs, g: &GlobalOpts) -> anyhow::Result<ExitCode> {
    finish((|| {
        let b = Backend::open(g)?;
        match a.action {
            UserAction::Add {
                full_name,
                logins,
                imap_logins,
                privileges,
                json,
            } => {
                let v = b.call(AdminRequest::UserAdd {
                    full_name,
                    logins,
                    imap_logins,
                    privileges,
                })?;
                if json {
                    print_json(&v)
                } else {
                    println!("added user {}", user_line(&v))
                }
            }
            UserAction::List { json } => {
                let v = b.call(AdminRequest::UserList)?;
                if json {
                    print_json(&v)
                } else {
                    for u in v.as_array().into_iter().flatten() {
                        println!("{}", user_line(u));
                    }
                }
            }
            UserAction::Grant {
                user,
                privileges,
                json,
            } => show_user(&set_privileges(&b, &user, privileges, true)?, json),
            UserAction::Revoke {
                user,
                privileges,
                json,
            } => show_user(&set_privileges(&b, &user, privileges, false)?, json),
            UserAction::ImapLogin {
                user,
                name,
                remove,
                json,
            } => show_user(
                &b.call(AdminRequest::ImapLogin {
                    user,
                    login: name,
                    on: !remove,
                })?,
                json,
            ),
            UserAction::Delegate {
                owner,
                delegate,
                remove,
                json,
            } => show_user(
                &b.call(AdminRequest::Delegate {
                    owner,
                    delegate,
                    on: !remove,
                })?,
                json,
            ),
        }
        Ok(ExitCode::SUCCESS)
    })())
}

/// Grant or revoke each privilege in turn (clap makes sure there is one).
fn set_privileges(
    b: &Backend,
    user: &str,
    privileges: Vec<Privilege>,
    on: bool,
) -> Result<Value, Failure> {
    let mut last = Value::Null;
    for privilege in privileges {
        last = b.call(AdminRequest::Privilege {
            user: user.to_string(),
            privilege,
            on,
        })?;
    }
    Ok(last)
}

fn show_user(u: &Value, json: bool) {
    if json {
        print_json(u)
    } else {
        println!("{}", user_line(u))
    }
}

fn print_summary(s: &ImportSummary, json: bool) {
    if json {
        print_json(&serde_json::to_value(s).expect("json"));
        return;
    }
    println!(
        "created {}, updated {}, unchanged {}, skipped {}",
        s.created,
        s.updated,
        s.unchanged,
        s.skipped.len()
    );
    for (place, why) in &s.skipped {
        println!("  skipped {place}: {why}");
    }
}

/// Rows above which a progress bar is shown.
const PROGRESS_FROM: usize = 2_000;

pub fn import(a: ImportArgs, g: &GlobalOpts) -> anyhow::Result<ExitCode> {
    finish((|| {
        let bytes =
            std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
        let parsed = import::parse(&bytes, a.kind).with_context(|| {
            format!(
                "{} cannot be imported (nothing was changed)",
                a.file.display()
            )
        })?;
        let b = Backend::open(g)?;
        if let Some(user) = a.address_book {
            let Parsed::Rows {
                kind: ImportKind::Contacts,
                rows,
            } = parsed
            else {
                return Err(anyhow::anyhow!(
                    "{} holds no contacts: an address book is a vCard or a contacts CSV \
                     (nothing was changed)",
                    a.file.display()
                )
                .into());
            };
            let v = b.call(AdminRequest::AddressBookImport { user, rows })?;
            let summary: ImportSummary = serde_json::from_value(v).context("bad import summary")?;
            print_summary(&summary, a.json);
            return Ok(ExitCode::SUCCESS);
        }
        let summary: ImportSummary = match (&b, parsed) {
            (Backend::Local(store), Parsed::Rows { rows, .. }) if rows.len() >= PROGRESS_FROM => {
                let n = rows
                    .iter()
                    .filter(|r| matches!(r, Row::Record { .. }))
                    .count();
                let bar = indicatif::ProgressBar::new(n as u64);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:40} {pos}/{len} records ({per_sec}, {eta} left)",
                    )
                    .expect("template"),
                );
                let s = import::apply_rows(store.as_ref(), rows, &mut |done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                })
                .map_err(store_failure)?;
                bar.finish_and_clear();
                s
            }
            (b, parsed) => serde_json::from_value(b.call(AdminRequest::Import { parsed })?)
                .context("bad import summary")?,
        };
        print_summary(&summary, a.json);
        Ok(ExitCode::SUCCESS)
    })())
}

pub fn export(a: ExportArgs, g: &GlobalOpts) -> anyhow::Result<ExitCode> {
    finish((|| {
        let b = Backend::open(g)?;
        let v = b.call(AdminRequest::Export)?;
        let bundle: crate::store::ExportBundle = serde_json::from_value(v).context("bad export")?;
        let text = bundle.to_json();
        match a.out {
            None => std::io::stdout()
                .write_all(text.as_bytes())
                .context("cannot write to standard output")?,
            Some(path) => {
                let tmp = path.with_extension("tmp-export");
                let write = || -> std::io::Result<()> {
                    let mut f = std::fs::File::create(&tmp)?;
                    f.write_all(text.as_bytes())?;
                    f.sync_all()?;
                    std::fs::rename(&tmp, &path)
                };
                write().with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!(
                    "exported {} records, {} activities, {} tracking records to {}",
                    bundle.records.len(),
                    bundle.activities.len(),
                    bundle.tracking.len(),
                    path.display()
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })())
}

pub fn search(a: SearchArgs, g: &GlobalOpts) -> anyhow::Result<ExitCode> {
    finish((|| {
        let b = Backend::open(g)?;
        let v = b.call(AdminRequest::Search {
            query: SearchQuery {
                text: a.query.clone(),
                kinds: a.types,
                limit: a.limit,
            },
        })?;
        if a.json {
            print_json(&v);
        } else {
            let hits = v.as_array().cloned().unwrap_or_default();
            if hits.is_empty() {
                eprintln!("nothing matches {:?}", a.query);
            }
            for h in hits {
                println!(
                    "{}  {:<17} {}",
                    h["id"].as_str().unwrap_or(""),
                    h["kind"].as_str().unwrap_or(""),
                    h["title"].as_str().unwrap_or("")
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })())
}

fn print_fields(v: &Value, indent: &str) {
    if let Some(o) = v.as_object() {
        for (k, x) in o {
            match x {
                Value::Null => {}
                Value::String(s) if s.is_empty() => {}
                Value::Array(a) if a.is_empty() => {}
                Value::String(s) => println!("{indent}{k}: {s}"),
                Value::Object(_) | Value::Array(_) => println!("{indent}{k}: {x}"),
                other => println!("{indent}{k}: {other}"),
            }
        }
    }
}

pub fn show(a: ShowArgs, g: &GlobalOpts) -> anyhow::Result<ExitCode> {
    finish((|| {
        let b = Backend::open(g)?;
        let v = b.call(AdminRequest::Show { id: a.id })?;
        if a.json {
            print_json(&v);
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(r) = v.get("record") {
            let rec: Option<crate::store::Record> = serde_json::from_value(r.clone()).ok();
            if let Some(rec) = rec {
                println!("{} {}", rec.kind(), rec.title());
            }
            print_fields(r, "  ");
            let acts = v["activities"].as_array().cloned().unwrap_or_default();
            if !acts.is_empty() {
                println!("activities (newest first):");
                for x in acts {
                    println!(
                        "  {}  {:<12} {}",
                        x["id"].as_str().unwrap_or(""),
                        x["details"]["type"].as_str().unwrap_or(""),
                        x["subject"].as_str().unwrap_or("")
                    );
                }
            }
        } else if let Some(x) = v.get("activity") {
            println!(
                "{} {}",
                x["details"]["type"].as_str().unwrap_or("activity"),
                x["subject"].as_str().unwrap_or("")
            );
            print_fields(x, "  ");
            for t in v["tracking"].as_array().into_iter().flatten() {
                println!(
                    "tracked in mailbox of {}: {}",
                    t["owner"].as_str().unwrap_or(""),
                    t["status"].as_str().unwrap_or("")
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })())
}
