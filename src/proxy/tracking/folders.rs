//! The session's folders (SPEC section 3, issue 16): the server's layout learned
//! by the hook's own `NAMESPACE` at login (`LIST "" ""` where the server has no
//! NAMESPACE), the tracking folder created under it, a refusal reported to the
//! user, and server folder names compared with the config's logical paths.

use imap_codec::imap_types::response::Data;

use super::sets::mailbox_name;
use super::TrackingHook;
use crate::proxy::folders::{FolderLayout, SpecialUse};
use crate::proxy::hook::HookContext;
use crate::proxy::worker::quoted;

/// What one of the hook's own commands was for, by its tag.
#[derive(Debug, Clone)]
pub(super) enum OwnCommand {
    Namespace,
    /// `LIST "" ""`: the delimiter, where NAMESPACE is missing.
    Delimiter,
    /// CREATE of the tracking folder (server name).
    Create(String),
    /// A LIST after a refused CREATE: does the folder exist anyway?
    CheckCreated {
        folder: String,
        refusal: String,
    },
    /// SUBSCRIBE: its answer matters to nobody.
    Other,
}

impl TrackingHook {
    /// The layout of the session's server: learned at login, else the one a
    /// session of the same mailbox learned before, else Dovecot's.
    pub(super) fn layout(&self, cx: &HookContext<'_>) -> FolderLayout {
        if let Some(l) = self.with_session(cx.session_id, |s| s.layout.clone()) {
            return l;
        }
        let known = cx.identity.and_then(|i| {
            let layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
            layouts.get(&i.user).cloned()
        });
        known.unwrap_or_default()
    }

    fn send_own(&self, cx: &HookContext<'_>, command: &str, what: OwnCommand) {
        match cx.upstream.send_command(command) {
            Ok(tag) => self.with_session(cx.session_id, |s| {
                if s.own.len() < 64 {
                    s.own.insert(tag, what);
                }
            }),
            Err(e) => {
                tracing::warn!(error = %e, command, "cannot send a command of the proxy's own")
            }
        }
    }

    /// At a CRM user's login: ask for the layout; the tracking folder is created
    /// once it is known.
    pub(super) fn learn_layout(&self, cx: &HookContext<'_>) {
        self.send_own(cx, "NAMESPACE", OwnCommand::Namespace);
    }

    /// The tracking folder exists (and shows in clients that list only
    /// subscribed folders) from a CRM user's first session: an APPEND into it, or
    /// a drag onto it, needs it there.
    fn create_tracking_folder(&self, cx: &HookContext<'_>) {
        let layout = self.layout(cx);
        if let Some(identity) = cx.identity {
            let mut layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
            if layouts.len() < 10_000 || layouts.contains_key(&identity.user) {
                layouts.insert(identity.user.clone(), layout.clone());
            }
        }
        let folder = layout.to_server(&self.workers.engine().config().track_folder);
        tracing::debug!(prefix = %layout.prefix, separator = ?layout.separator, folder = %folder, "server folder layout");
        let arg = quoted(&folder);
        self.send_own(cx, &format!("CREATE {arg}"), OwnCommand::Create(folder));
        self.send_own(cx, &format!("SUBSCRIBE {arg}"), OwnCommand::Other);
    }

    /// An untagged response: the layout (NAMESPACE, or LIST "" "" answered by the
    /// root with its delimiter), a LIST naming a folder whose CREATE was refused.
    pub(super) fn folder_data(&self, cx: &HookContext<'_>, data: &Data<'_>) {
        match data {
            Data::Namespace { personal, .. } => {
                let layout = personal.first().map(|n| {
                    let prefix = String::from_utf8_lossy(n.prefix.as_ref()).into_owned();
                    FolderLayout::new(&prefix, n.delimiter.as_ref().map(|d| d.inner()))
                });
                self.with_session(cx.session_id, |s| {
                    if s.own.values().any(|o| matches!(o, OwnCommand::Namespace)) {
                        s.layout = layout;
                    }
                });
            }
            Data::List {
                mailbox, delimiter, ..
            } => {
                let name = mailbox_name(mailbox);
                self.with_session(cx.session_id, |s| {
                    let waiting =
                        |w: fn(&OwnCommand, &str) -> bool| s.own.values().any(|o| w(o, &name));
                    if name.is_empty() && waiting(|o, _| matches!(o, OwnCommand::Delimiter)) {
                        s.layout =
                            Some(FolderLayout::new("", delimiter.as_ref().map(|d| d.inner())));
                    }
                    if waiting(
                        |o, n| matches!(o, OwnCommand::CheckCreated { folder, .. } if folder == n),
                    ) {
                        s.listed.push(name);
                    }
                });
            }
            _ => {}
        }
    }

    /// The tagged answer to one of the hook's own commands.
    pub(super) fn own_answered(&self, cx: &HookContext<'_>, tag: &str, response: &[u8]) {
        let Some(what) = self.with_session(cx.session_id, |s| s.own.remove(tag)) else {
            return;
        };
        let line = String::from_utf8_lossy(response).trim_end().to_string();
        let ok = line
            .split(' ')
            .nth(1)
            .is_some_and(|w| w.eq_ignore_ascii_case("OK"));
        match what {
            OwnCommand::Namespace if !ok => {
                self.send_own(cx, "LIST \"\" \"\"", OwnCommand::Delimiter)
            }
            OwnCommand::Namespace | OwnCommand::Delimiter => self.create_tracking_folder(cx),
            OwnCommand::Create(folder) => {
                if ok || line.to_ascii_uppercase().contains("[ALREADYEXISTS]") {
                    return;
                }
                // Servers without the ALREADYEXISTS code: a LIST tells.
                let refusal = line.splitn(3, ' ').nth(2).unwrap_or_default().to_string();
                let what = OwnCommand::CheckCreated {
                    folder: folder.clone(),
                    refusal,
                };
                self.send_own(cx, &format!("LIST \"\" {}", quoted(&folder)), what);
            }
            OwnCommand::CheckCreated { folder, refusal } => {
                let exists = self.with_session(cx.session_id, |s| {
                    let found = s.listed.contains(&folder);
                    s.listed.clear();
                    found
                });
                if !exists {
                    tracing::warn!(folder = %folder, server_said = %refusal, "the server refused to create the tracking folder: folder tracking cannot work; set tracking.track_folder to a name it accepts");
                    let text = format!(
                        "CRM: the server refused to create the tracking folder {folder} ({refusal}); folder tracking does not work until an administrator sets tracking.track_folder"
                    );
                    self.with_session(cx.session_id, |s| s.notices.push(text));
                }
            }
            OwnCommand::Other => {}
        }
    }

    /// The config's logical name of a server folder that tracks when copied or
    /// moved into (the tracking folder, a mapped folder, an organisation's
    /// tracking folder); `None` for any other folder.
    pub(super) fn tracking_folder_name(
        &self,
        cx: &HookContext<'_>,
        server: &str,
    ) -> Option<String> {
        let layout = self.layout(cx);
        let engine = self.workers.engine();
        let cfg = engine.config();
        let org = engine
            .store()
            .settings()
            .map(|s| s.tracking_folders)
            .unwrap_or_default();
        std::iter::once(&cfg.track_folder)
            .chain(cfg.folder_regarding.keys())
            .chain(org.iter())
            .find(|logical| layout.names(server, logical))
            .cloned()
    }

    /// The session's Sent folder: the config's `sent_folder`, else the one a LIST
    /// the session saw marked `\Sent`, else a well-known name (`Sent`, `Sent
    /// Items`, …) under the server's namespace.
    pub(super) fn is_sent_folder(&self, cx: &HookContext<'_>, folder: &str) -> bool {
        let layout = self.layout(cx);
        if let Some(configured) = &self.workers.engine().config().sent_folder {
            return layout.names(folder, configured);
        }
        let listed = self.with_session(cx.session_id, |s| {
            (!s.sent_folders.is_empty()).then(|| s.sent_folders.iter().any(|f| f == folder))
        });
        listed.unwrap_or_else(|| SpecialUse::Sent.is_well_known(folder, &layout))
    }
}
