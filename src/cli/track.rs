//! `crmproxy track FILE.eml` and `crmproxy untrack MESSAGE-ID`: headless tracking
//! through the same engine the proxy uses. They open the store themselves, so they
//! need the store free (not held by a running `crmproxy serve`).

use anyhow::Context;
use serde_json::json;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{GlobalOpts, EXIT_UNAVAILABLE, EXIT_USER_ERROR};
use crate::config::Config;
use crate::store::{EmailAddress, MessageId, Record, StoreError};
use crate::track::{parse_record_ref, Engine, TrackError, TrackRequest, TrackSource};

#[derive(Debug, clap::Args)]
pub struct TrackArgs {
    /// The message (RFC 5322, as a mail client saves it); `-` reads standard input.
    pub file: PathBuf,
    /// The mailbox owner (a CRM user's login). Default: the one CRM user among the
    /// message's sender and recipients.
    #[arg(long, value_name = "EMAIL")]
    pub owner: Option<String>,
    /// Act as this user, a delegate of the owner. Default: the owner.
    #[arg(long = "as", value_name = "EMAIL")]
    pub acting: Option<String>,
    /// Set regarding to this record: TYPE:UUID, e.g. account:0190c1d2-….
    #[arg(long, value_name = "TYPE:ID")]
    pub regarding: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct UntrackArgs {
    /// The Message-ID (with or without angle brackets).
    pub message_id: String,
    /// The mailbox owner (a CRM user's login).
    #[arg(long, value_name = "EMAIL")]
    pub owner: String,
    /// Act as this user, a delegate of the owner. Default: the owner.
    #[arg(long = "as", value_name = "EMAIL")]
    pub acting: Option<String>,
}

/// An error and its exit code.
struct Failure(u8, String);

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure(EXIT_USER_ERROR, format!("{e:#}"))
    }
}

impl From<TrackError> for Failure {
    fn from(e: TrackError) -> Self {
        let code = match &e {
            TrackError::Store(s) => store_code(s),
            _ => EXIT_USER_ERROR,
        };
        Failure(code, e.to_string())
    }
}

fn store_code(e: &StoreError) -> u8 {
    match e {
        StoreError::Db(_)
        | StoreError::Corrupt(_)
        | StoreError::Locked { .. }
        | StoreError::Blob(_)
        | StoreError::NewerSchema { .. } => EXIT_UNAVAILABLE,
        _ => EXIT_USER_ERROR,
    }
}

fn finish(r: Result<(), Failure>) -> anyhow::Result<ExitCode> {
    match r {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Failure(code, message)) => {
            eprintln!("error: {message}");
            Ok(ExitCode::from(code))
        }
    }
}

fn open_engine(cfg: &Config) -> Result<Engine, Failure> {
    let store = super::store::open_store(cfg).map_err(|e| {
        let code = store_code(&e);
        let hint = if matches!(e, StoreError::Locked { .. }) {
            "; `crmproxy track`/`untrack` need the store to themselves: stop `crmproxy serve` \
             (or track from a mail client through it)"
        } else {
            ""
        };
        Failure(code, format!("{e}{hint}"))
    })?;
    Ok(Engine::new(store, cfg.tracking.clone())?)
}

/// The one CRM user among the message's parties, when the owner is not named.
fn default_owner(engine: &Engine, raw: &[u8]) -> Result<String, Failure> {
    let facts = crate::message::parse(raw).map_err(|e| Failure(EXIT_USER_ERROR, e.to_string()))?;
    let mut users: Vec<String> = Vec::new();
    for (_, m) in facts.parties() {
        let Ok(a) = EmailAddress::parse(&m.address) else {
            continue;
        };
        if let Some(u) = engine.store().user_by_login(&a).map_err(TrackError::from)? {
            let login = a.to_string();
            if !users.iter().any(|x| x.eq_ignore_ascii_case(&login)) && !users_has(&users, &u) {
                users.push(login);
            }
        }
    }
    match users.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Failure(
            EXIT_USER_ERROR,
            "no CRM user sent or received this message; name the mailbox with --owner EMAIL".into(),
        )),
        many => Err(Failure(
            EXIT_USER_ERROR,
            format!(
                "several CRM users are in this message ({}); name the mailbox with --owner EMAIL",
                many.join(", ")
            ),
        )),
    }
}

fn users_has(found: &[String], u: &crate::store::SystemUser) -> bool {
    found
        .iter()
        .any(|f| u.logins.iter().any(|l| l.as_str().eq_ignore_ascii_case(f)))
}

pub fn track(a: TrackArgs, g: &GlobalOpts) -> anyhow::Result<ExitCode> {
    finish((|| {
        let cfg = g.load_config()?;
        let raw = if a.file.as_os_str() == "-" {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading the message from standard input")?;
            buf
        } else {
            std::fs::read(&a.file)
                .with_context(|| format!("reading the message {}", a.file.display()))?
        };
        let regarding = match &a.regarding {
            Some(r) => Some(
                parse_record_ref(r)
                    .map_err(|e| Failure(EXIT_USER_ERROR, format!("--regarding: {e}")))?,
            ),
            None => None,
        };
        let engine = open_engine(&cfg)?;
        let owner = match &a.owner {
            Some(o) => o.clone(),
            None => default_owner(&engine, &raw)?,
        };
        let actor = engine.actor(&owner, a.acting.as_deref().unwrap_or(&owner))?;
        let mut req = TrackRequest::new(TrackSource::Cli);
        req.regarding = regarding;
        let t = engine.track(&actor, &raw, req)?;
        let e = match &t.activity.details {
            crate::store::ActivityDetails::Email(e) => e,
            _ => unreachable!("track returns the email activity"),
        };
        let regarding_name = match t.activity.regarding {
            Some(r) => engine
                .store()
                .record(r.id)
                .map_err(TrackError::from)?
                .map(|x: Record| x.title()),
            None => None,
        };
        let status = match t.record.status {
            crate::store::TrackStatus::Tracked => "tracked",
            crate::store::TrackStatus::Pending => "pending",
            crate::store::TrackStatus::Failed { .. } => "failed",
        };
        if a.json {
            let v = json!({
                "status": status,
                "message_id": e.message_id,
                "owner": t.record.owner,
                "requested_by": t.record.requested_by,
                "activity": t.activity.id,
                "created": t.created,
                "appointment": t.appointment.as_ref().map(|x| x.id),
                "regarding": t.activity.regarding.map(|r| json!({
                    "type": r.kind, "id": r.id, "name": regarding_name,
                })),
                "correlation": e.correlation,
                "correlated_with": e.correlated_with,
                "direction": e.direction,
                "headers": String::from_utf8_lossy(&t.headers.render()),
            });
            println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        } else {
            println!(
                "{status} {} in the mailbox of {owner}: email activity {} ({})",
                e.message_id,
                t.activity.id,
                if t.created {
                    "new"
                } else {
                    "already in the CRM"
                }
            );
            if let Some(r) = t.activity.regarding {
                println!(
                    "  regarding {} {} \"{}\" ({})",
                    r.kind,
                    r.id,
                    regarding_name.unwrap_or_default(),
                    serde_json::to_value(e.correlation).expect("json")
                );
            }
            if let Some(ap) = &t.appointment {
                println!("  appointment {}", ap.id);
            }
            if actor.is_delegate() {
                println!("  done by {} as a delegate", actor.acting().full_name);
            }
        }
        Ok(())
    })())
}

pub fn untrack(a: UntrackArgs, g: &GlobalOpts) -> anyhow::Result<ExitCode> {
    finish((|| {
        let cfg = g.load_config()?;
        let id =
            MessageId::parse(&a.message_id).map_err(|e| Failure(EXIT_USER_ERROR, e.to_string()))?;
        let engine = open_engine(&cfg)?;
        let actor = engine.actor(&a.owner, a.acting.as_deref().unwrap_or(&a.owner))?;
        if engine.untrack(&actor, &id)? {
            println!(
                "untracked {id} in the mailbox of {}; the activity stays in the CRM",
                a.owner
            );
            Ok(())
        } else {
            Err(Failure(
                EXIT_USER_ERROR,
                format!("{id} is not tracked in the mailbox of {}", a.owner),
            ))
        }
    })())
}
