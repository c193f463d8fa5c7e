//! Who may see what of an activity, and who holds a privilege (SPEC sections 4 and
//! 8), decided here once for every page, API, download and write that needs it.
//!
//! An activity's content (an email's text, its original, its people) is for its
//! owner, the users the owner made delegates, and the mailboxes (and their
//! delegates) whose tracking record links this very activity. The tracking engine
//! links a mailbox to an activity only when that mailbox held the same message (its
//! [`content_digest`](super::content_digest)), so knowing a Message-ID, which anyone
//! in a thread reads from References, never opens anybody's mail. Its title and
//! date on a record's timeline are for everyone with `use_app` only when it was
//! filed regarding a record (shared with the team on purpose); a private email
//! (regarding nothing) is listed for those who may read it. `admin` manages users
//! and settings; it does not open other people's mail. Privileges are separate:
//! none implies another ([`require`]).

use super::activity::Activity;
use super::model::{Privilege, Record, SystemUser, UserId};
use super::{ActivityId, CrmStore, Result};

/// A user by id, if there is one.
fn user(store: &dyn CrmStore, id: UserId) -> Result<Option<SystemUser>> {
    Ok(match store.record(id.uuid())? {
        Some(Record::User(u)) => Some(u),
        _ => None,
    })
}

/// `user` holds `privilege`, or [`StoreError::NotPermitted`](super::StoreError).
pub fn require(store: &dyn CrmStore, user: UserId, privilege: Privilege) -> Result<()> {
    match self::user(store, user)? {
        Some(u) if u.has(privilege) => Ok(()),
        found => Err(super::StoreError::NotPermitted {
            user: found
                .and_then(|u| u.logins.first().map(|l| l.to_string()))
                .unwrap_or_else(|| user.to_string()),
            privilege: privilege.as_str(),
        }),
    }
}

/// May `viewer` act on `owner`'s mailbox: it is theirs, or they are its delegate.
fn mailbox_of(store: &dyn CrmStore, viewer: UserId, owner: UserId) -> Result<bool> {
    if viewer == owner {
        return Ok(true);
    }
    Ok(user(store, owner)?.is_some_and(|o| o.delegates.contains(&viewer)))
}

/// May `viewer` read activity `a` (its text, its original, its people)?
pub fn may_read(store: &dyn CrmStore, viewer: UserId, a: &Activity) -> Result<bool> {
    if !user(store, viewer)?.is_some_and(|u| u.has(Privilege::UseApp)) {
        return Ok(false);
    }
    if mailbox_of(store, viewer, a.owner)? {
        return Ok(true);
    }
    let Some(m) = a.message_id() else {
        return Ok(false);
    };
    for t in store.tracking_of_message(m)? {
        if t.activity == Some(a.id) && mailbox_of(store, viewer, t.owner)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// May `viewer` see that activity `a` exists (its title and date in a list)?
pub fn may_list(store: &dyn CrmStore, viewer: UserId, a: &Activity) -> Result<bool> {
    Ok(a.regarding.is_some() || may_read(store, viewer, a)?)
}

/// Activity `id`, when `viewer` may read it.
pub fn readable(store: &dyn CrmStore, viewer: UserId, id: ActivityId) -> Result<Option<Activity>> {
    match store.activity(id)? {
        Some(a) if may_read(store, viewer, &a)? => Ok(Some(a)),
        _ => Ok(None),
    }
}

/// The activities of `viewer`'s list (a timeline) that `viewer` may see.
pub fn listable(
    store: &dyn CrmStore,
    viewer: UserId,
    activities: Vec<Activity>,
) -> Result<Vec<Activity>> {
    let mut out = Vec::with_capacity(activities.len());
    for a in activities {
        if may_list(store, viewer, &a)? {
            out.push(a);
        }
    }
    Ok(out)
}

/// The activity for Message-ID `m` that `viewer` may read: the one their mailbox
/// tracks first, else the oldest they may read.
pub fn readable_by_message_id(
    store: &dyn CrmStore,
    viewer: UserId,
    m: &super::MessageId,
) -> Result<Option<Activity>> {
    if let Some(id) = store.tracking(viewer, m)?.and_then(|t| t.activity) {
        if let Some(a) = readable(store, viewer, id)? {
            return Ok(Some(a));
        }
    }
    for a in store.activities_by_message_id(m)? {
        if may_read(store, viewer, &a)? {
            return Ok(Some(a));
        }
    }
    Ok(None)
}
