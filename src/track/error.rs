//! The tracking engine's errors. Each one is worded for the person who caused it,
//! so that the proxy can show it as an IMAP `NO [ALERT] …` text and the pane as a
//! page; [`TrackError::is_refusal`] tells a refusal (nothing was written, the user
//! can act on it) from a failure of the store.

use uuid::Uuid;

use crate::store::{Kind, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error(
        "{login} is not a CRM user; ask your CRM administrator to add you (crmproxy user add)"
    )]
    UnknownUser { login: String },
    #[error("{user} may not use the CRM app (the use_app privilege is missing); ask your CRM administrator to grant it")]
    NoPrivilege { user: String },
    #[error("{acting} is not a delegate of {owner}'s mailbox; the owner or an administrator can allow it (crmproxy user delegate)")]
    NotDelegate { acting: String, owner: String },
    #[error("this is not an email message that can be tracked: {0}")]
    NotAMessage(String),
    #[error("only the organizer ({organizer}) may track this meeting; an administrator can allow tracking appointments from non-organizers")]
    NotOrganizer { organizer: String },
    #[error("a delegate cannot set regarding to a contact created in the same action; the owner can, or pick an existing record")]
    DelegateNewContact,
    #[error("a delegate cannot track contacts of the owner's mailbox; the owner can")]
    DelegateContacts,
    #[error("an email cannot be regarding a {kind}; choose an account, contact, lead, opportunity, case or invoice")]
    NotRegardable { kind: Kind },
    #[error("the regarding {kind} {id} does not exist (deleted?); choose another record")]
    RegardingMissing { kind: Kind, id: Uuid },
    #[error("message {message_id} is not tracked in this mailbox; track it first")]
    NotTracked { message_id: String },
    #[error("tracking folder {folder:?} is mapped to {value:?}, which is not TYPE:UUID of an existing record: {reason}")]
    BadFolderMapping {
        folder: String,
        value: String,
        reason: String,
    },
    #[error("the CRM store failed: {0}")]
    Store(#[from] StoreError),
}

impl TrackError {
    /// Whether this is a refusal of what was asked (a rule, a privilege, a bad
    /// input) rather than a failure of the store. Nothing is written either way.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, TrackError::Store(_))
    }

    /// The text for an IMAP `NO [ALERT] …` response: one line, no CR/LF, no `]`
    /// that could end a response code early, at most 300 characters.
    pub fn alert_text(&self) -> String {
        let text = format!("CRM: {self}");
        let mut out: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if out.chars().count() > 300 {
            out = out.chars().take(297).collect::<String>() + "...";
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_text_is_one_bounded_line() {
        let e = TrackError::NotAMessage("bad\r\nline".into());
        let t = e.alert_text();
        assert!(!t.contains('\r') && !t.contains('\n'), "{t}");
        assert!(t.starts_with("CRM: "));
        let long = TrackError::NotAMessage("x".repeat(1000)).alert_text();
        assert_eq!(long.chars().count(), 300);
        assert!(TrackError::DelegateContacts.is_refusal());
    }
}
