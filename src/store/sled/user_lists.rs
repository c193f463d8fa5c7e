//! The sled side of the per-user lists (see [`crate::store::user_lists`]): one JSON
//! row per (user, list) in the `user_lists` tree, changed in one transaction.

use super::index::{self as ix, abort, decode, Tx, TxResult};
use super::SledStore;
use crate::store::error::StoreError;
use crate::store::model::{Kind, Record, RecordRef, UserId};
use crate::store::user_lists::{
    ListEntry, Snoozed, UserList, CARD_KEY_MAX, FAVOURITES_LIMIT, RECENT_LIMIT, SNOOZED_LIMIT,
};
use crate::store::Result;
use chrono::{DateTime, Utc};

/// The list code of snoozed cards.
const SNOOZED: u8 = b'S';

fn key(user: UserId, list: UserList) -> Vec<u8> {
    raw_key(user, list.code())
}

fn raw_key(user: UserId, code: u8) -> Vec<u8> {
    [user.uuid().as_bytes(), &[code][..]].concat()
}

/// The list as stored, newest first.
fn read(tx: &Tx, user: UserId, list: UserList) -> TxResult<Vec<ListEntry>> {
    match tx.t(ix::USER_LISTS).get(key(user, list))? {
        Some(v) => decode("user list", &v).or_else(abort),
        None => Ok(Vec::new()),
    }
}

fn write(tx: &Tx, user: UserId, list: UserList, entries: &[ListEntry]) -> TxResult<()> {
    let json = serde_json::to_vec(entries).expect("list entries serialise");
    tx.t(ix::USER_LISTS).insert(key(user, list), json)?;
    Ok(())
}

/// Check that `user` is a user and `record` an existing record (not an activity).
fn check(tx: &Tx, user: UserId, record: RecordRef) -> TxResult<()> {
    if !matches!(tx.record(user.uuid())?, Some(Record::User(_))) {
        return abort(StoreError::NotFound {
            kind: Some(Kind::User),
            id: user.uuid(),
        });
    }
    if record.kind.is_activity() || !tx.exists(record)? {
        return abort(StoreError::NotFound {
            kind: Some(record.kind),
            id: record.id,
        });
    }
    Ok(())
}

/// Entries whose record still exists.
fn live(tx: &Tx, entries: Vec<ListEntry>) -> TxResult<Vec<ListEntry>> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        if tx.exists(e.record)? {
            out.push(e);
        }
    }
    Ok(out)
}

impl SledStore {
    pub(crate) fn user_list_rows(&self, user: UserId, list: UserList) -> Result<Vec<ListEntry>> {
        let entries: Vec<ListEntry> = match self.tree(ix::USER_LISTS).get(key(user, list))? {
            Some(v) => decode("user list", &v)?,
            None => return Ok(Vec::new()),
        };
        let records = self.tree(ix::RECORDS);
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if records.contains_key(e.record.id.as_bytes())? {
                out.push(e);
            }
        }
        Ok(out)
    }

    pub(crate) fn set_favourite_row(
        &self,
        user: UserId,
        record: RecordRef,
        on: bool,
    ) -> Result<bool> {
        self.write(|tx| {
            let mut list = live(tx, read(tx, user, UserList::Favourites)?)?;
            let was = list.iter().any(|e| e.record.id == record.id);
            if on && !was {
                check(tx, user, record)?;
                if list.len() >= FAVOURITES_LIMIT {
                    return abort(StoreError::invalid(
                        "favourites",
                        format!("at most {FAVOURITES_LIMIT} favourites; remove one first"),
                    ));
                }
                list.insert(
                    0,
                    ListEntry {
                        record,
                        at: Utc::now(),
                    },
                );
            } else if !on {
                list.retain(|e| e.record.id != record.id);
            }
            write(tx, user, UserList::Favourites, &list)?;
            Ok(was)
        })
    }

    pub(crate) fn note_viewed_row(&self, user: UserId, record: RecordRef) -> Result<()> {
        self.write(|tx| {
            check(tx, user, record)?;
            let mut list = live(tx, read(tx, user, UserList::Recent)?)?;
            list.retain(|e| e.record.id != record.id);
            list.insert(
                0,
                ListEntry {
                    record,
                    at: Utc::now(),
                },
            );
            list.truncate(RECENT_LIMIT);
            write(tx, user, UserList::Recent, &list)
        })
    }
}

impl SledStore {
    pub(crate) fn snoozed_rows(&self, user: UserId) -> Result<Vec<Snoozed>> {
        let now = Utc::now();
        let mut list: Vec<Snoozed> = match self.tree(ix::USER_LISTS).get(raw_key(user, SNOOZED))? {
            Some(v) => decode("snoozed cards", &v)?,
            None => Vec::new(),
        };
        list.retain(|s| s.until > now);
        Ok(list)
    }

    pub(crate) fn snooze_row(&self, user: UserId, card: &str, until: DateTime<Utc>) -> Result<()> {
        let card = card.trim();
        if card.is_empty() || card.len() > CARD_KEY_MAX || card.chars().any(char::is_control) {
            return Err(StoreError::invalid(
                "snoozed card",
                "not a card of the assistant",
            ));
        }
        self.write(|tx| {
            if !matches!(tx.record(user.uuid())?, Some(Record::User(_))) {
                return abort(StoreError::NotFound {
                    kind: Some(Kind::User),
                    id: user.uuid(),
                });
            }
            let k = raw_key(user, SNOOZED);
            let mut list: Vec<Snoozed> = match tx.t(ix::USER_LISTS).get(&k)? {
                Some(v) => decode("snoozed cards", &v).or_else(abort)?,
                None => Vec::new(),
            };
            let now = Utc::now();
            list.retain(|s| s.until > now && s.card != card);
            if until > now {
                list.push(Snoozed {
                    card: card.to_owned(),
                    until,
                });
            }
            list.sort_by_key(|s| std::cmp::Reverse(s.until));
            list.truncate(SNOOZED_LIMIT);
            let json = serde_json::to_vec(&list).expect("snoozed cards serialise");
            tx.t(ix::USER_LISTS).insert(k, json)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::{Account, AccountId, Privilege, Stamps, SystemUser};
    use crate::store::{CrmStore, EmailAddress};

    fn user(s: &SledStore, login: &str) -> UserId {
        let u = s
            .put_record(Record::User(SystemUser {
                id: UserId::new(),
                stamps: Stamps::default(),
                full_name: login.into(),
                logins: vec![EmailAddress::parse(login).unwrap()],
                imap_logins: Vec::new(),
                privileges: [Privilege::UseApp].into_iter().collect(),
                delegates: Default::default(),
                options: Default::default(),
            }))
            .unwrap();
        UserId::from_uuid(u.id())
    }

    fn account(s: &SledStore, name: &str) -> RecordRef {
        s.put_record(Record::Account(Account {
            id: AccountId::new(),
            stamps: Stamps::default(),
            name: name.into(),
            website: String::new(),
            phone: String::new(),
            emails: vec![],
            address: Default::default(),
            primary_contact: None,
        }))
        .unwrap()
        .as_ref()
    }

    fn ids(v: &[ListEntry]) -> Vec<uuid::Uuid> {
        v.iter().map(|e| e.record.id).collect()
    }

    #[test]
    fn recent_is_newest_first_deduplicated_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let a = user(&s, "a@example.test");
        let b = user(&s, "b@example.test");
        let recs: Vec<RecordRef> = (0..RECENT_LIMIT + 3)
            .map(|i| account(&s, &format!("acc {i}")))
            .collect();
        for r in &recs {
            s.note_viewed(a, *r).unwrap();
        }
        s.note_viewed(a, recs[5]).unwrap();
        let list = s.user_list(a, UserList::Recent).unwrap();
        assert_eq!(list.len(), RECENT_LIMIT);
        assert_eq!(list[0].record, recs[5]);
        assert_eq!(list[1].record, recs[RECENT_LIMIT + 2]);
        assert_eq!(ids(&list).iter().filter(|i| **i == recs[5].id).count(), 1);
        assert!(s.user_list(b, UserList::Recent).unwrap().is_empty());

        // A deleted record drops out of the list.
        s.delete_record(recs[5].id).unwrap();
        let list = s.user_list(a, UserList::Recent).unwrap();
        assert_eq!(list.len(), RECENT_LIMIT - 1);
        assert!(!ids(&list).contains(&recs[5].id));
        // Unknown records and users are refused.
        assert!(matches!(
            s.note_viewed(a, recs[5]),
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            s.note_viewed(UserId::new(), recs[0]),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn snoozed_cards_expire_and_stay_per_user() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let a = user(&s, "a@example.test");
        let b = user(&s, "b@example.test");
        let later = Utc::now() + chrono::Duration::days(1);
        s.snooze(a, "quiet:x", later).unwrap();
        s.snooze(a, "reply:<m@x>", later).unwrap();
        s.snooze(a, "quiet:x", later + chrono::Duration::days(6))
            .unwrap();
        let got = s.snoozed(a).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].card, "quiet:x",
            "snoozed again: one entry, ending last"
        );
        assert!(s.snoozed(b).unwrap().is_empty());
        // A time in the past un-snoozes; bad keys and unknown users are refused.
        s.snooze(a, "quiet:x", Utc::now() - chrono::Duration::days(1))
            .unwrap();
        assert_eq!(s.snoozed(a).unwrap().len(), 1);
        assert!(s.snooze(a, " ", later).is_err());
        assert!(s.snooze(a, "x\ny", later).is_err());
        assert!(matches!(
            s.snooze(UserId::new(), "quiet:x", later),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn favourites_star_and_unstar_per_user() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let a = user(&s, "a@example.test");
        let b = user(&s, "b@example.test");
        let x = account(&s, "X");
        let y = account(&s, "Y");
        assert!(!s.set_favourite(a, x, true).unwrap());
        assert!(!s.set_favourite(a, y, true).unwrap());
        assert!(s.set_favourite(a, x, true).unwrap(), "already a favourite");
        assert_eq!(
            ids(&s.user_list(a, UserList::Favourites).unwrap()),
            vec![y.id, x.id]
        );
        assert!(s.user_list(b, UserList::Favourites).unwrap().is_empty());
        assert!(s.set_favourite(a, y, false).unwrap());
        assert_eq!(
            ids(&s.user_list(a, UserList::Favourites).unwrap()),
            vec![x.id]
        );
        // A favourite does not keep its record from being deleted.
        s.delete_record(x.id).unwrap();
        assert!(s.user_list(a, UserList::Favourites).unwrap().is_empty());
        let gone = RecordRef {
            kind: Kind::Account,
            id: x.id,
        };
        assert!(s.set_favourite(a, gone, true).is_err());

        // At most FAVOURITES_LIMIT; the one too many is refused and nothing changes.
        for i in 0..FAVOURITES_LIMIT {
            s.set_favourite(b, account(&s, &format!("fav {i}")), true)
                .unwrap();
        }
        let extra = account(&s, "one too many");
        let err = s.set_favourite(b, extra, true).unwrap_err().to_string();
        assert!(err.contains("at most 100 favourites"), "{err}");
        let list = s.user_list(b, UserList::Favourites).unwrap();
        assert_eq!(list.len(), FAVOURITES_LIMIT);
        assert!(!ids(&list).contains(&extra.id));
    }
}
