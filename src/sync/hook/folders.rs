//! The session's folders (issue 16): server folder names compared with the
//! config's logical paths through the server's layout, which the mailbox's sync
//! worker learned (NAMESPACE on its own connection). Until it did, every usual
//! layout is tried (none, `INBOX.` with `.`, `INBOX/` with `/`), so that the first
//! session on a Courier server tracks its folders too.

use super::TrackingHook;
use crate::imap_client::folders::{FolderLayout, SpecialUse};
use crate::proxy::hook::HookContext;

impl TrackingHook {
    /// The layouts a folder name is read with: the one the worker learned, else
    /// every usual one.
    fn layouts(&self, cx: &HookContext<'_>) -> Vec<FolderLayout> {
        match cx.identity.and_then(|i| self.workers.layout(&i.user)) {
            Some(known) => vec![known],
            None => FolderLayout::usual(),
        }
    }

    /// The tracking folder's server name (Dovecot's, while the layout is unknown).
    pub(super) fn tracking_folder_on_server(&self, cx: &HookContext<'_>) -> String {
        let layout = cx
            .identity
            .and_then(|i| self.workers.layout(&i.user))
            .unwrap_or_default();
        layout.to_server(&self.workers.engine().config().track_folder)
    }

    /// The config's logical name of a server folder that tracks when copied or
    /// moved into (the tracking folder, a mapped folder, an organisation's
    /// tracking folder); `None` for any other folder.
    pub(super) fn tracking_folder_name(
        &self,
        cx: &HookContext<'_>,
        server: &str,
    ) -> Option<String> {
        let layouts = self.layouts(cx);
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
            .find(|logical| layouts.iter().any(|l| l.names(server, logical)))
            .cloned()
    }

    /// The session's Sent folder: the config's `sent_folder`, else the one a LIST
    /// the session saw marked `\Sent` (any case), else a well-known name (`Sent`,
    /// `Sent Items`, …) under the server's namespace.
    pub(super) fn is_sent_folder(&self, cx: &HookContext<'_>, folder: &str) -> bool {
        let layouts = self.layouts(cx);
        if let Some(configured) = &self.workers.engine().config().sent_folder {
            return layouts.iter().any(|l| l.names(folder, configured));
        }
        let listed = self.with_session(cx.session_id, |s| {
            (!s.sent_folders.is_empty()).then(|| s.sent_folders.iter().any(|f| f == folder))
        });
        listed.unwrap_or_else(|| {
            layouts
                .iter()
                .any(|l| SpecialUse::Sent.is_well_known(folder, l))
        })
    }
}
