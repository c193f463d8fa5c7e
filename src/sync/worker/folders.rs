//! The worker's folder set-up (issue 16), once per worker on its own connection:
//! the server's layout learned (NAMESPACE) and published for the mailbox's
//! sessions, and the tracking folder created and subscribed under it. A folder
//! the server refuses is logged and shown to the user (an ALERT before the next
//! tagged answer of a session), never ignored.

use std::sync::Arc;

use super::Inner;
use crate::imap_client::{ClientError, ImapClient};

/// Learn the layout and create the tracking folder. `Err`: the connection
/// failed (set-up is tried again on the next one); a refused folder is `Ok`.
pub(super) async fn prepare(
    inner: &Arc<Inner>,
    c: &mut ImapClient,
    owner: &str,
) -> Result<(), ClientError> {
    let layout = c.layout().await?;
    tracing::debug!(prefix = %layout.prefix, separator = ?layout.separator, "server folder layout");
    inner.learned_layout(owner, layout.clone());
    let logical = &inner.engine.config().track_folder;
    let folder = layout.to_server(logical);
    match c.create(&folder).await {
        Ok(()) => {
            inner.set_problem(owner, None);
            // Shown in clients that list only subscribed folders.
            match c.subscribe(&folder).await {
                Ok(()) | Err(ClientError::Refused { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::Refused { text, .. }) => {
            tracing::warn!(folder = %folder, server_said = %text, "the server refused to create the tracking folder: folder tracking cannot work until tracking.track_folder names a folder it accepts");
            let said = format!(
                "CRM: the server refused to create the tracking folder {folder} ({}); folder tracking does not work until an administrator changes tracking.track_folder",
                text.split_once(' ').map_or(text.as_str(), |(_, t)| t)
            );
            inner.set_problem(owner, Some(said.clone()));
            inner.notice(owner, said);
        }
        Err(e) => return Err(e),
    }
    Ok(())
}
