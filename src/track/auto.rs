//! Automatic tracking of new INBOX mail (SPEC section 5), per the owner's
//! `AutoTrack` option. The options are cumulative, as in Dynamics 365: "from
//! contacts, leads and accounts" also tracks replies to tracked email, and "from
//! any record" also what those two track. Never tracked automatically: bulk mail,
//! senders (addresses or domains) on the user's or the organisation's ignore list,
//! and, when `skip_internal_mail` is on, mail whose parties are all inside
//! `org_domains`.

use crate::message::EmailFacts;
use crate::store::{AutoTrack, EmailAddress, Kind, MessageId, Privilege, Record, UserId};

use super::request::{AutoDecision, SkipReason};
use super::{Engine, TrackError};

/// A mailbox's own rules over its user's options (a gateway's config, org-wide
/// defaults overridden per mailbox). The default changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxRules {
    /// The automatic-tracking level instead of the user's option.
    pub auto_track: Option<AutoTrack>,
    /// Ignore-list entries (addresses, domains) beside the user's and the
    /// organisation's.
    pub ignore: Vec<String>,
    /// Privacy mode: what is tracked keeps its header only.
    pub headers_only: bool,
}

impl Engine {
    /// Whether new mail in `owner`'s INBOX is tracked automatically. The caller
    /// passes only new INBOX mail; what a user tracks by hand is not judged here.
    pub fn auto_decision(
        &self,
        owner: UserId,
        facts: &EmailFacts,
    ) -> Result<AutoDecision, TrackError> {
        self.auto_decision_with(owner, facts, &MailboxRules::default())
    }

    /// [`Engine::auto_decision`] under a mailbox's own `rules`.
    pub fn auto_decision_with(
        &self,
        owner: UserId,
        facts: &EmailFacts,
        rules: &MailboxRules,
    ) -> Result<AutoDecision, TrackError> {
        let Some(Record::User(user)) = self.store.record(owner.uuid())? else {
            return Err(TrackError::UnknownUser {
                login: format!("user {owner}"),
            });
        };
        let skip = |r| Ok(AutoDecision::Skip(r));
        if !user.has(Privilege::UseApp) {
            return skip(SkipReason::NoPrivilege);
        }
        let mode = rules.auto_track.unwrap_or(user.options.auto_track);
        if mode == AutoTrack::Off {
            return skip(SkipReason::Off);
        }
        if let Some(marker) = facts.bulk.first() {
            let what = match marker {
                crate::message::BulkMarker::ListUnsubscribe => "List-Unsubscribe".to_string(),
                crate::message::BulkMarker::ListId(v) => format!("List-Id {v}"),
                crate::message::BulkMarker::Precedence(v) => format!("Precedence: {v}"),
                crate::message::BulkMarker::AutoSubmitted(v) => format!("Auto-Submitted: {v}"),
                crate::message::BulkMarker::ListHeader(name) => name.clone(),
                crate::message::BulkMarker::AutoReply(v) => v.clone(),
            };
            return skip(SkipReason::Bulk(what));
        }
        let settings = self.store.settings()?;
        let sender = facts
            .from
            .as_ref()
            .or(facts.sender.as_ref())
            .and_then(|m| EmailAddress::parse(&m.address).ok());
        if let Some(s) = &sender {
            let lists = (user.options.ignore.iter())
                .chain(settings.ignore.iter())
                .chain(rules.ignore.iter());
            if let Some(entry) = lists.into_iter().find(|e| ignores(e, s)) {
                return skip(SkipReason::Ignored(entry.trim().to_string()));
            }
        }
        if settings.skip_internal_mail && !settings.org_domains.is_empty() {
            let all_internal = facts.parties().all(|(_, m)| {
                EmailAddress::parse(&m.address)
                    .map(|a| settings.org_domains.iter().any(|d| in_domain(&a, d)))
                    .unwrap_or(false)
            });
            if all_internal {
                return skip(SkipReason::Internal);
            }
        }
        if mode == AutoTrack::All {
            return Ok(AutoDecision::Track);
        }
        if self.replies_to_tracked(facts)? {
            return Ok(AutoDecision::Track);
        }
        if mode == AutoTrack::RepliesToTracked {
            return skip(SkipReason::NotAReplyToTracked);
        }
        let found = match &sender {
            Some(s) => self.store.resolve_address(s)?,
            None => Vec::new(),
        };
        match mode {
            AutoTrack::FromContactsLeadsAccounts => {
                if found
                    .iter()
                    .any(|r| matches!(r.kind, Kind::Contact | Kind::Lead | Kind::Account))
                {
                    Ok(AutoDecision::Track)
                } else {
                    skip(SkipReason::NotFromContactLeadAccount)
                }
            }
            _ => {
                if found.is_empty() {
                    skip(SkipReason::NotFromRecord)
                } else {
                    Ok(AutoDecision::Track)
                }
            }
        }
    }

    /// Whether In-Reply-To or References names an email already tracked.
    pub(crate) fn replies_to_tracked(&self, facts: &EmailFacts) -> Result<bool, TrackError> {
        for id in facts
            .in_reply_to
            .iter()
            .chain(facts.references.iter().rev())
        {
            let Ok(id) = MessageId::parse(id) else {
                continue;
            };
            if let Some(a) = self.store.activity_by_message_id(&id)? {
                if a.kind() == Kind::Email {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// An ignore-list entry: a whole address, or a domain (`b.example` or `@b.example`)
/// that also covers its subdomains.
fn ignores(entry: &str, addr: &EmailAddress) -> bool {
    let e = entry.trim();
    if e.contains('@') && !e.starts_with('@') {
        return EmailAddress::parse(e)
            .map(|x| x.same_as(addr))
            .unwrap_or(false);
    }
    in_domain(addr, e.trim_start_matches('@'))
}

fn in_domain(addr: &EmailAddress, domain: &str) -> bool {
    let d = idna::domain_to_ascii(domain.trim().trim_end_matches('.'))
        .unwrap_or_else(|_| domain.trim().to_ascii_lowercase());
    let have = addr.domain().to_ascii_lowercase();
    let have = idna::domain_to_ascii(&have).unwrap_or(have);
    !d.is_empty() && (have == d || have.ends_with(&format!(".{d}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_entries_match_addresses_and_domains() {
        let a = EmailAddress::parse("News@Mail.Shop.example").unwrap();
        assert!(ignores("shop.example", &a));
        assert!(ignores("@mail.shop.example", &a));
        assert!(ignores("news@mail.shop.example", &a));
        assert!(!ignores("other@mail.shop.example", &a));
        assert!(!ignores("hop.example", &a));
    }
}
