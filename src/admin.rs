//! The admin endpoint: the CLI's store commands, as one JSON request and one JSON
//! response per line over a Unix-domain socket in the data directory. `serve`
//! holds sled's lock on the store, so while it runs the CLI talks to it here;
//! without `serve` the CLI opens the store itself and calls [`handle`] directly,
//! so both paths run the same code. Unix only: elsewhere (Windows) [`bind`] and
//! [`request`] say so, and the CLI's store commands need `serve` stopped.
//!
//! Wiring in `serve` (inside the runtime, after opening the store):
//!
//! ```ignore
//! let store: Arc<dyn CrmStore> = Arc::new(SledStore::open(cfg.store_dir())?);
//! if cfg.tracking.load_demo_on_first_run {
//!     store::demo::load_if_empty(store.as_ref())?;
//! }
//! let listener = admin::bind(&admin::socket_path(&cfg.data_dir))?;
//! tokio::spawn(admin::serve_listener(store.clone(), listener));
//! let s = store.clone();
//! tokio::task::spawn_blocking(move || s.warm_up()); // load the search index
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;

use crate::formats::import::{self, Parsed};
use crate::store::address::EmailAddress;
use crate::store::model::{Privilege, Record, Stamps, SystemUser, UserId};
use crate::store::{ActivityId, CrmStore, SearchQuery, StoreError};

/// The socket's file name inside the data directory.
pub const SOCKET_NAME: &str = "admin.sock";
/// Longest request line of an ordinary request (a user, a search, an id).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Longest request line that carries an import (rows or an export bundle); only a
/// request that starts as an import may be this long.
pub const MAX_IMPORT_REQUEST_BYTES: usize = 256 * 1024 * 1024;
/// How a request carrying an import begins on the wire (serde writes the tag first).
#[cfg(unix)]
const IMPORT_PREFIXES: [&[u8]; 2] = [br#"{"op":"import""#, br#"{"op":"address_book_import""#];
/// Pause after a failed accept (e.g. out of file descriptors) before the next one.
#[cfg(unix)]
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// One thing the CLI asks of the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    Ping,
    Import {
        parsed: Parsed,
    },
    Export,
    Search {
        query: SearchQuery,
    },
    Show {
        id: Uuid,
    },
    UserAdd {
        full_name: String,
        logins: Vec<EmailAddress>,
        /// IMAP user names that are not addresses (`jsmith`).
        #[serde(default)]
        imap_logins: Vec<String>,
        privileges: Vec<Privilege>,
    },
    /// Add (`on`) or remove an IMAP user name of `user`.
    ImapLogin {
        user: String,
        login: String,
        on: bool,
    },
    UserList,
    /// Grant (`on`) or revoke a privilege; `user` is a login address or an id.
    Privilege {
        user: String,
        privilege: Privilege,
        on: bool,
    },
    /// Let `delegate` act on `owner`'s mailbox (`on`), or stop it.
    Delegate {
        owner: String,
        delegate: String,
        on: bool,
    },
    /// Import address-book rows into `user`'s own address book (mail contacts).
    AddressBookImport {
        user: String,
        rows: Vec<import::Row>,
    },
}

/// The answer on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminResponse {
    Ok(Value),
    Error { message: String, user_error: bool },
}

fn find_user(store: &dyn CrmStore, who: &str) -> Result<SystemUser, StoreError> {
    if let Ok(id) = who.parse::<Uuid>() {
        return match store.record(id)? {
            Some(Record::User(u)) => Ok(u),
            _ => Err(StoreError::NotFound {
                kind: Some(crate::store::Kind::User),
                id,
            }),
        };
    }
    let login = who.trim();
    store.user_by_mailbox_login(login)?.ok_or_else(|| {
        StoreError::invalid(
            "user",
            format!("no user signs in as {login}; see `crmproxy user list`"),
        )
    })
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("store values serialise")
}

/// Carry out one request against a store.
pub fn handle(store: &dyn CrmStore, req: AdminRequest) -> Result<Value, StoreError> {
    match req {
        AdminRequest::Ping => Ok(json!("pong")),
        AdminRequest::Import { parsed } => {
            let summary = match parsed {
                Parsed::Bundle(b) => store.import_bundle(&b)?,
                Parsed::Rows { rows, .. } => import::apply_rows(store, rows, &mut |_, _| {})?,
            };
            Ok(to_value(&summary))
        }
        AdminRequest::Export => Ok(to_value(&store.export()?)),
        AdminRequest::Search { query } => Ok(to_value(&store.search(&query)?)),
        AdminRequest::Show { id } => {
            if let Some(r) = store.record(id)? {
                let acts = store.activities_of(id, 50)?;
                return Ok(json!({ "record": r, "activities": acts }));
            }
            if let Some(a) = store.activity(ActivityId::from_uuid(id))? {
                let tracking = match a.message_id() {
                    Some(m) => store.tracking_of_message(m)?,
                    None => Vec::new(),
                };
                return Ok(json!({ "activity": a, "tracking": tracking }));
            }
            Err(StoreError::NotFound { kind: None, id })
        }
        AdminRequest::UserAdd {
            full_name,
            logins,
            imap_logins,
            privileges,
        } => {
            let u = SystemUser {
                id: UserId::new(),
                stamps: Stamps::default(),
                full_name,
                logins,
                imap_logins,
                privileges: privileges.into_iter().collect(),
                delegates: Default::default(),
                options: Default::default(),
            };
            Ok(to_value(&store.put_record(Record::User(u))?))
        }
        AdminRequest::UserList => Ok(to_value(&store.users()?)),
        AdminRequest::ImapLogin { user, login, on } => {
            let mut u = find_user(store, &user)?;
            let login = login.trim().to_string();
            let had = u.imap_logins.iter().any(|l| l.eq_ignore_ascii_case(&login));
            if on && !had {
                u.imap_logins.push(login);
            } else if !on {
                u.imap_logins.retain(|l| !l.eq_ignore_ascii_case(&login));
            }
            Ok(to_value(&store.put_record(Record::User(u))?))
        }
        AdminRequest::Privilege {
            user,
            privilege,
            on,
        } => {
            let u = find_user(store, &user)?;
            Ok(to_value(&store.set_privilege(u.id, privilege, on)?))
        }
        AdminRequest::Delegate {
            owner,
            delegate,
            on,
        } => {
            let o = find_user(store, &owner)?;
            let d = find_user(store, &delegate)?;
            Ok(to_value(&store.set_delegate(o.id, d.id, on)?))
        }
        AdminRequest::AddressBookImport { user, rows } => {
            let u = find_user(store, &user)?;
            Ok(to_value(&crate::store::book_import::import_rows(
                store, u.id, rows,
            )?))
        }
    }
}

#[cfg(unix)]
fn is_user_error(e: &StoreError) -> bool {
    !matches!(
        e,
        StoreError::Db(_)
            | StoreError::Corrupt(_)
            | StoreError::Locked { .. }
            | StoreError::Blob(_)
    )
}

#[cfg(unix)]
#[doc(hidden)] // public for the fuzz targets (fuzz/)
pub fn respond(store: &dyn CrmStore, line: &str) -> AdminResponse {
    match serde_json::from_str::<AdminRequest>(line) {
        Err(e) => AdminResponse::Error {
            message: format!("bad admin request: {e}"),
            user_error: true,
        },
        Ok(req) => match handle(store, req) {
            Ok(v) => AdminResponse::Ok(v),
            Err(e) => AdminResponse::Error {
                user_error: is_user_error(&e),
                message: e.to_string(),
            },
        },
    }
}

/// The listening admin socket.
#[cfg(unix)]
pub type Listener = tokio::net::UnixListener;
/// No admin socket without Unix-domain sockets: [`bind`] always fails.
#[cfg(not(unix))]
pub enum Listener {}

#[cfg(not(unix))]
fn unsupported() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "the admin socket needs Unix-domain sockets (Linux, macOS; on Windows run crmproxy in WSL2)",
    )
}

/// Bind the admin socket at `path` (mode 0600). A stale socket file left by a
/// crashed process is replaced; a live one is an `AddrInUse` error.
#[cfg(unix)]
pub fn bind(path: &Path) -> std::io::Result<Listener> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another process already serves {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

#[cfg(not(unix))]
pub fn bind(_path: &Path) -> std::io::Result<Listener> {
    Err(unsupported())
}

/// Serve the admin socket until the task is dropped. `serve` spawns this:
/// `tokio::spawn(admin::serve_admin_socket(store.clone(), admin::socket_path(&cfg.data_dir)))`.
pub async fn serve_admin_socket(store: Arc<dyn CrmStore>, path: PathBuf) -> std::io::Result<()> {
    let listener = bind(&path)?;
    serve_listener(store, listener).await
}

/// Accept connections on an already bound listener, until the task is dropped. A
/// failed accept (too many open files) is logged and retried: the CLI must still
/// reach `serve` once the pressure is gone.
#[cfg(unix)]
pub async fn serve_listener(store: Arc<dyn CrmStore>, listener: Listener) -> std::io::Result<()> {
    loop {
        let conn = match listener.accept().await {
            Ok((conn, _)) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "admin socket: accept failed; retrying");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let store = store.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(store, conn).await {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
}

#[cfg(not(unix))]
pub async fn serve_listener(_store: Arc<dyn CrmStore>, listener: Listener) -> std::io::Result<()> {
    match listener {}
}

/// Read one request line within the size its operation allows: `Ok(None)` at the
/// end of the stream, `Ok(Some(Err(why)))` for a request over its limit.
#[cfg(unix)]
#[doc(hidden)] // public for the fuzz targets (fuzz/)
pub async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
) -> std::io::Result<Option<Result<Vec<u8>, String>>> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut line = Vec::new();
    let small = MAX_REQUEST_BYTES as u64;
    let n = (&mut *rd).take(small).read_until(b'\n', &mut line).await?;
    if n == 0 {
        return Ok(None);
    }
    if line.ends_with(b"\n") || (n as u64) < small {
        return Ok(Some(Ok(line)));
    }
    if !IMPORT_PREFIXES.iter().any(|p| line.starts_with(p)) {
        return Ok(Some(Err(format!(
            "admin request longer than {MAX_REQUEST_BYTES} bytes"
        ))));
    }
    let rest = (MAX_IMPORT_REQUEST_BYTES - MAX_REQUEST_BYTES) as u64;
    let m = (&mut *rd).take(rest).read_until(b'\n', &mut line).await?;
    if !line.ends_with(b"\n") && m as u64 == rest {
        return Ok(Some(Err(format!(
            "import request longer than {MAX_IMPORT_REQUEST_BYTES} bytes: import the file \
             in parts, or stop `crmproxy serve` and import without it"
        ))));
    }
    Ok(Some(Ok(line)))
}

#[cfg(unix)]
async fn serve_connection(
    store: Arc<dyn CrmStore>,
    conn: tokio::net::UnixStream,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let (rd, mut wr) = conn.into_split();
    let mut rd = tokio::io::BufReader::new(rd);
    loop {
        let Some(read) = read_request(&mut rd).await? else {
            return Ok(());
        };
        let too_large = read.is_err();
        let resp = match read {
            Err(why) => AdminResponse::Error {
                message: why,
                user_error: true,
            },
            Ok(line) => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || match String::from_utf8(line) {
                    Ok(line) => respond(store.as_ref(), &line),
                    Err(_) => AdminResponse::Error {
                        message: "bad admin request: not UTF-8".into(),
                        user_error: true,
                    },
                })
                .await
                .unwrap_or_else(|e| AdminResponse::Error {
                    message: format!("the request failed: {e}"),
                    user_error: false,
                })
            }
        };
        let mut out = serde_json::to_vec(&resp).expect("response serialises");
        out.push(b'\n');
        wr.write_all(&out).await?;
        if too_large {
            // The rest of that request is still on its way: end the connection.
            return Ok(());
        }
    }
}

/// Why the CLI could not get an answer over the socket.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the admin socket {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the admin socket {path} broke off: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{message}")]
    Refused { message: String, user_error: bool },
}

/// Send one request over the socket (blocking) and return the answer.
pub fn request(path: &Path, req: &AdminRequest) -> Result<Value, ClientError> {
    let io = |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    };
    #[cfg(unix)]
    let connected = std::os::unix::net::UnixStream::connect(path);
    #[cfg(not(unix))]
    let connected: std::io::Result<std::net::TcpStream> = Err(unsupported());
    let mut s = connected.map_err(|source| ClientError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    let mut line = serde_json::to_vec(req).expect("request serialises");
    line.push(b'\n');
    s.write_all(&line).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).map_err(io)?;
    if answer.is_empty() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no answer",
        )));
    }
    match serde_json::from_str(&answer) {
        Ok(AdminResponse::Ok(v)) => Ok(v),
        Ok(AdminResponse::Error {
            message,
            user_error,
        }) => Err(ClientError::Refused {
            message,
            user_error,
        }),
        Err(e) => Err(io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    async fn read_all(input: Vec<u8>) -> Vec<Result<usize, String>> {
        let mut rd = tokio::io::BufReader::new(std::io::Cursor::new(input));
        let mut out = Vec::new();
        while let Some(r) = read_request(&mut rd).await.unwrap() {
            let stop = r.is_err();
            out.push(r.map(|l| l.len()));
            if stop {
                break;
            }
        }
        out
    }

    #[tokio::test]
    async fn only_an_import_may_be_a_long_request() {
        let ping = b"{\"op\":\"ping\"}\n".to_vec();
        assert_eq!(read_all(ping.clone()).await, vec![Ok(ping.len())]);
        let mut long_search = br#"{"op":"search","query":""#.to_vec();
        long_search.resize(MAX_REQUEST_BYTES + 10, b'a');
        long_search.extend_from_slice(b"\"}\n");
        let got = read_all(long_search).await;
        assert!(
            matches!(&got[..], [Err(e)] if e.contains("longer than")),
            "{got:?}"
        );
        let mut import = br#"{"op":"import","parsed":""#.to_vec();
        import.resize(MAX_REQUEST_BYTES * 3, b'a');
        import.extend_from_slice(b"\"}\n");
        let len = import.len();
        import.extend_from_slice(&ping);
        assert_eq!(read_all(import).await, vec![Ok(len), Ok(ping.len())]);
    }
}
