//! The email activity made from a message's facts: its Message-ID (or a synthetic
//! one), parties with roles resolved to records, direction, threading ids,
//! attachments and S/MIME metadata.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

use crate::message::{EmailFacts, Mailbox, SmimeForm, SmimeInfo};
use crate::store::{
    Activity, ActivityDetails, ActivityId, AttachmentMeta, BlobRef, CertificateMeta, CrmStore,
    Direction, EmailActivity, EmailAddress, MessageId, Party, PartyRole, RecordRef, SmimeMeta,
    Stamps, SystemUser,
};

use super::regarding::Resolution;
use super::TrackError;

/// The Message-ID used for a message that has none (or an unusable one): the
/// SHA-256 of its raw bytes, so the same bytes always give the same id.
pub fn synthetic_message_id(raw: &[u8]) -> MessageId {
    let id = format!(
        "{}@sha256.crmproxy.invalid",
        hex::encode(Sha256::digest(raw))
    );
    MessageId::parse(&id).expect("hex@domain is a valid Message-ID")
}

/// The message's own Message-ID when it has a usable one, else the synthetic one.
/// The field as written wins when it is one `<…>` (what the proxy and the pane
/// show): a parser stops at the first `>` of `<a>b@x>`.
pub(crate) fn message_id_of(facts: &EmailFacts, raw: &[u8]) -> MessageId {
    let written = crate::store::header_value(raw, "message-id")
        .filter(|v| v.starts_with('<') && v.ends_with('>') && !v.contains(char::is_whitespace));
    written
        .as_deref()
        .or(facts.message_id.as_deref())
        .and_then(|m| message_id_lenient(m).ok())
        .unwrap_or_else(|| synthetic_message_id(raw))
}

/// A Message-ID as a client or the proxy shows it, made usable: characters that a
/// stored Message-ID may not hold inside (spaces, `<`, `>`, controls), which real
/// mail has, are written `%XX`. The engine names such a message this way when it
/// tracks it, and the pane when it acts on it, so both mean the same message.
pub fn message_id_lenient(raw: &str) -> Result<MessageId, crate::store::AddressError> {
    if let Ok(m) = MessageId::parse(raw) {
        return Ok(m);
    }
    let t = raw.trim();
    let t = t.strip_prefix('<').unwrap_or(t);
    let t = t.strip_suffix('>').unwrap_or(t);
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        if c.is_whitespace() || c.is_control() || c == '<' || c == '>' {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    MessageId::parse(&out)
}

/// Resolves addresses to records (user, contact, account, lead), remembering
/// answers within one message.
pub(crate) struct PartyResolver<'a> {
    store: &'a dyn CrmStore,
    all_when_ambiguous: bool,
    seen: HashMap<String, Vec<RecordRef>>,
}

impl<'a> PartyResolver<'a> {
    pub(crate) fn new(store: &'a dyn CrmStore, all_when_ambiguous: bool) -> Self {
        PartyResolver {
            store,
            all_when_ambiguous,
            seen: HashMap::new(),
        }
    }

    /// The records `address` resolves to: all matches in the order user, contact,
    /// account, lead; none when several match and the organisation says so.
    pub(crate) fn records(&mut self, address: &EmailAddress) -> Result<Vec<RecordRef>, TrackError> {
        if let Some(r) = self.seen.get(address.key()) {
            return Ok(r.clone());
        }
        let mut found = self.store.resolve_address(address)?;
        if found.len() > 1 && !self.all_when_ambiguous {
            found.clear();
        }
        self.seen.insert(address.key().to_string(), found.clone());
        Ok(found)
    }

    /// One party: an address that does not parse is kept as its name, unresolved.
    pub(crate) fn party(
        &mut self,
        role: PartyRole,
        address: &str,
        name: Option<&str>,
    ) -> Result<Party, TrackError> {
        match EmailAddress::parse(address) {
            Ok(a) => Ok(Party {
                role,
                records: self.records(&a)?,
                address: Some(a),
                name: name.unwrap_or_default().to_string(),
            }),
            Err(_) => Ok(Party {
                role,
                address: None,
                name: name.unwrap_or(address).to_string(),
                records: Vec::new(),
            }),
        }
    }

    fn mailbox(&mut self, role: PartyRole, m: &Mailbox) -> Result<Party, TrackError> {
        self.party(role, &m.address, m.name.as_deref())
    }
}

/// Parties of an email with their roles: sender, to, cc, bcc.
pub(crate) fn email_parties(
    facts: &EmailFacts,
    resolver: &mut PartyResolver<'_>,
) -> Result<Vec<Party>, TrackError> {
    let mut out = Vec::new();
    if let Some(m) = facts.from.as_ref().or(facts.sender.as_ref()) {
        out.push(resolver.mailbox(PartyRole::Sender, m)?);
    }
    for (role, list) in [
        (PartyRole::To, &facts.to),
        (PartyRole::Cc, &facts.cc),
        (PartyRole::Bcc, &facts.bcc),
    ] {
        for m in list {
            out.push(resolver.mailbox(role, m)?);
        }
    }
    Ok(out)
}

/// Outgoing when the sender is one of the owner's logins.
pub(crate) fn direction(owner: &SystemUser, facts: &EmailFacts) -> Direction {
    let from = facts
        .from
        .as_ref()
        .or(facts.sender.as_ref())
        .and_then(|m| EmailAddress::parse(&m.address).ok());
    match from {
        Some(f) if owner.logins.iter().any(|l| l.same_as(&f)) => Direction::Outgoing,
        _ => Direction::Incoming,
    }
}

pub(crate) fn timestamp(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0)
}

/// The activity's S/MIME metadata (SPEC section 3).
pub(crate) fn smime_meta(info: &SmimeInfo) -> SmimeMeta {
    let cert = |c: &crate::message::smime::CertSummary| CertificateMeta {
        subject: c.subject.clone(),
        issuer: c.issuer.clone(),
        serial: c.serial.clone(),
        email: c.email.clone(),
        sha256: c.sha256.clone(),
        not_before: timestamp(c.not_before).unwrap_or_default(),
        not_after: timestamp(c.not_after).unwrap_or_default(),
    };
    // Signer certificates first, then the rest of the chain, each once.
    let mut certificates: Vec<CertificateMeta> = Vec::new();
    for c in info
        .signers
        .iter()
        .filter_map(|s| s.certificate.as_ref())
        .chain(info.certificates.iter())
    {
        if !certificates.iter().any(|x| x.sha256 == c.sha256) {
            certificates.push(cert(c));
        }
    }
    let problem = info.error.clone().or_else(|| {
        info.signers.iter().find_map(|s| match &s.check {
            crate::message::SignatureCheck::Valid => None,
            crate::message::SignatureCheck::Invalid(r) => Some(format!("invalid signature: {r}")),
            crate::message::SignatureCheck::Unchecked(r) => Some(format!("not checked: {r}")),
        })
    });
    SmimeMeta {
        signed: info.form != SmimeForm::Encrypted,
        encrypted: info.form == SmimeForm::Encrypted,
        signer: info.signer_email().map(str::to_owned),
        signing_time: None,
        form: Some(info.form.as_str().to_string()),
        certificates,
        digest_algorithm: info.signers.first().map(|s| s.digest_algorithm.clone()),
        verified: info.verified(),
        problem,
    }
}

/// A new email activity for `facts`, owned by the mailbox's owner.
pub(crate) fn new_email_activity(
    owner: &SystemUser,
    facts: &EmailFacts,
    message_id: MessageId,
    raw: BlobRef,
    parties: Vec<Party>,
    resolution: &Resolution,
) -> Activity {
    let ids = |v: &[String]| -> Vec<MessageId> {
        v.iter().filter_map(|m| MessageId::parse(m).ok()).collect()
    };
    Activity {
        id: ActivityId::new(),
        stamps: Stamps::default(),
        owner: owner.id,
        subject: facts.subject.clone(),
        regarding: resolution.regarding,
        parties,
        details: ActivityDetails::Email(EmailActivity {
            message_id,
            date: facts.date.and_then(timestamp).unwrap_or_else(Utc::now),
            direction: direction(owner, facts),
            body_text: facts.body_text.clone(),
            content_digest: None,
            in_reply_to: ids(&facts.in_reply_to).into_iter().next(),
            references: ids(&facts.references),
            thread_index: facts.thread_index.clone(),
            attachments: facts
                .attachments
                .iter()
                .map(|a| AttachmentMeta {
                    name: a.name.clone().unwrap_or_default(),
                    content_type: a.content_type.clone(),
                    size: a.size as u64,
                })
                .collect(),
            raw: Some(raw),
            smime: facts.smime.as_ref().map(smime_meta),
            correlation: resolution.correlation,
            correlated_with: resolution.correlated_with,
        }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn odd_message_ids_are_escaped_the_same_way_everywhere() {
        use super::message_id_lenient as l;
        assert_eq!(l("<abc@x.example>").unwrap().as_str(), "abc@x.example");
        assert_eq!(l("a\"q\"@x").unwrap().as_str(), "a\"q\"@x");
        assert_eq!(l("<a>b@x>").unwrap().as_str(), "a%3Eb@x");
        assert_eq!(l("a>b@x").unwrap(), l("<a>b@x>").unwrap());
        assert_eq!(l("a b@x").unwrap().as_str(), "a%20b@x");
        assert!(l("").is_err() && l(&"x".repeat(400).replace('x', ">")).is_err());
    }

    use super::*;

    #[test]
    fn synthetic_ids_are_stable_and_valid() {
        let a = synthetic_message_id(b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(a, synthetic_message_id(b"Subject: x\r\n\r\nbody\r\n"));
        assert_ne!(a, synthetic_message_id(b"Subject: y\r\n\r\nbody\r\n"));
        assert!(a.as_str().ends_with("@sha256.crmproxy.invalid"));
        assert_eq!(a.as_str().len(), 64 + "@sha256.crmproxy.invalid".len());
    }
}
