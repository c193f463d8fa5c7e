//! Organisation settings and per-user options that drive the tracking engine.

use serde::{Deserialize, Serialize};

/// Which new INBOX mail a user's mailbox tracks automatically (the server-side
/// options of Dynamics 365).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoTrack {
    Off,
    /// Replies to email that is already tracked (the default).
    #[default]
    RepliesToTracked,
    /// Mail from known contacts, leads and accounts.
    FromContactsLeadsAccounts,
    /// Mail from any record that has an e-mail address.
    FromAnyRecord,
    All,
}

/// A user's own tracking options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserOptions {
    pub auto_track: AutoTrack,
    /// Addresses (`a@b.example`) or domains (`b.example`) never tracked automatically.
    pub ignore: Vec<String>,
    /// The zone the pane shows times in (an IANA or Windows name); none: the
    /// machine's zone.
    pub time_zone: Option<String>,
}

/// Settings of the whole organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrgSettings {
    /// May a user who is not the organizer track a meeting?
    pub track_appointments_from_non_organizer: bool,
    /// Minutes between sweeps of the sync worker.
    pub sync_interval_minutes: u32,
    /// Keyword a client sets to ask for tracking.
    pub request_keyword: String,
    /// Keyword set once tracked.
    pub tracked_keyword: String,
    /// Keyword set while pending.
    pub pending_keyword: String,
    /// Folders that track what is copied or moved into them.
    pub tracking_folders: Vec<String>,
    /// Addresses or domains never tracked automatically, for everyone.
    pub ignore: Vec<String>,
    /// The organisation's own domains.
    pub org_domains: Vec<String>,
    /// Skip automatic tracking when every party is inside `org_domains`.
    pub skip_internal_mail: bool,
    /// An address that matches several records resolves to all of them (true) or
    /// stays unresolved (false).
    pub resolve_ambiguous_to_all: bool,
    /// Recognise `CRM:` + digits tracking tokens in subjects.
    pub subject_tracking_token: bool,
}

impl Default for OrgSettings {
    fn default() -> Self {
        OrgSettings {
            track_appointments_from_non_organizer: false,
            sync_interval_minutes: 15,
            request_keyword: "$CRM_Track".into(),
            tracked_keyword: "$CRM_Tracked".into(),
            pending_keyword: "$CRM_Pending".into(),
            tracking_folders: vec!["CRM/Track".into()],
            ignore: Vec::new(),
            org_domains: Vec::new(),
            skip_internal_mail: false,
            resolve_ambiguous_to_all: true,
            subject_tracking_token: false,
        }
    }
}
