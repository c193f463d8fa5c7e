//! Checks on one record or activity that need nothing but the value itself
//! (link targets are checked inside the write transaction). Also fills derived
//! fields such as a contact's full name.

use super::activity::{Activity, ActivityDetails, TrackStatus, TrackingRecord};
use super::error::StoreError;
use super::model::{join_name, Kind, Money, Record, RecordRef};
use super::Result;

fn need(what: &str, field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(StoreError::invalid(what, format!("{field} is empty")));
    }
    Ok(())
}

fn money(what: &str, m: &Money) -> Result<()> {
    if m.currency.len() != 3 || !m.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(StoreError::invalid(
            what,
            format!(
                "currency {:?} is not a three-letter ISO 4217 code such as EUR",
                m.currency
            ),
        ));
    }
    Ok(())
}

fn customer(what: &str, k: Kind) -> Result<()> {
    if !matches!(k, Kind::Account | Kind::Contact) {
        return Err(StoreError::invalid(
            what,
            format!("the customer must be an account or a contact, not a {k}"),
        ));
    }
    Ok(())
}

/// `{{` must close with `}}` and name something (`{{recipient.first_name}}`).
fn placeholders(what: &str, text: &str) -> Result<()> {
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            return Err(StoreError::invalid(
                what,
                "a placeholder opened with {{ is never closed with }}",
            ));
        };
        let name = after[..j].trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(StoreError::invalid(
                what,
                format!("placeholder {{{{{name}}}}} is not a name like recipient.first_name"),
            ));
        }
        rest = &after[j + 2..];
    }
    Ok(())
}

/// Validate a record and fill its derived fields.
pub(crate) fn record(r: &mut Record) -> Result<()> {
    let what = r.kind().as_str();
    match r {
        Record::Account(a) => need(what, "name", &a.name)?,
        Record::Contact(c) => {
            if c.full_name.trim().is_empty() {
                c.full_name = join_name(&c.first_name, &c.last_name);
            }
            if c.full_name.trim().is_empty() {
                match c.emails.first() {
                    Some(e) => c.full_name = e.as_str().to_string(),
                    None => {
                        return Err(StoreError::invalid(
                            what,
                            "a contact needs a name or an e-mail address",
                        ))
                    }
                }
            }
        }
        Record::Lead(l) => {
            if l.full_name.trim().is_empty() {
                l.full_name = join_name(&l.first_name, &l.last_name);
            }
            if l.full_name.trim().is_empty()
                && l.company.trim().is_empty()
                && l.topic.trim().is_empty()
                && l.emails.is_empty()
            {
                return Err(StoreError::invalid(
                    what,
                    "a lead needs a name, company, topic or e-mail address",
                ));
            }
        }
        Record::Opportunity(o) => {
            need(what, "name", &o.name)?;
            if let Some(m) = &o.estimated_value {
                money(what, m)?;
            }
        }
        Record::Case(c) => {
            need(what, "title", &c.title)?;
            customer(what, c.customer.kind)?;
        }
        Record::Invoice(i) => {
            need(what, "number", &i.number)?;
            customer(what, i.customer.kind)?;
            money(what, &i.amount)?;
        }
        Record::User(u) => {
            need(what, "full name", &u.full_name)?;
            if u.logins.is_empty() {
                return Err(StoreError::invalid(
                    what,
                    "a user needs at least one login e-mail address",
                ));
            }
            for (i, a) in u.logins.iter().enumerate() {
                if u.logins[..i].iter().any(|b| b.same_as(a)) {
                    return Err(StoreError::Duplicate(format!("login {a} is listed twice")));
                }
            }
            for (i, l) in u.imap_logins.iter().enumerate() {
                if let Some(problem) = crate::store::model::imap_login_problem(l) {
                    return Err(StoreError::invalid(what, problem));
                }
                if u.imap_logins[..i].iter().any(|o| o.eq_ignore_ascii_case(l)) {
                    return Err(StoreError::Duplicate(format!("login {l} is listed twice")));
                }
            }
            if u.delegates.contains(&u.id) {
                return Err(StoreError::invalid(
                    what,
                    "a user cannot be their own delegate",
                ));
            }
        }
        Record::EmailTemplate(t) => {
            need(what, "title", &t.title)?;
            placeholders(what, &t.subject)?;
            placeholders(what, &t.body)?;
        }
        Record::SalesLiterature(s) => {
            need(what, "name", &s.name)?;
            for f in &s.files {
                need(what, "file name", &f.name)?;
            }
        }
        Record::KnowledgeArticle(k) => need(what, "title", &k.title)?,
    }
    Ok(())
}

pub(crate) fn activity(a: &Activity) -> Result<()> {
    let what = a.kind().as_str();
    if let Some(r) = a.regarding {
        if !r.kind.can_be_regarding() {
            return Err(StoreError::invalid(
                what,
                format!("an activity cannot be regarding a {}", r.kind),
            ));
        }
    }
    for p in &a.parties {
        for r in &p.records {
            if !matches!(
                r.kind,
                Kind::User | Kind::Contact | Kind::Account | Kind::Lead
            ) {
                return Err(StoreError::invalid(
                    what,
                    format!("a party cannot resolve to a {}", r.kind),
                ));
            }
        }
    }
    match &a.details {
        ActivityDetails::Appointment(ap) if ap.end < ap.start => {
            return Err(StoreError::invalid(
                what,
                "the appointment ends before it starts",
            ));
        }
        ActivityDetails::Email(e) if e.correlated_with == Some(a.id) => {
            return Err(StoreError::invalid(
                what,
                "an email cannot be correlated with itself",
            ));
        }
        _ => {}
    }
    Ok(())
}

pub(crate) fn tracking(t: &TrackingRecord) -> Result<()> {
    match &t.status {
        TrackStatus::Tracked if t.activity.is_none() => Err(StoreError::invalid(
            "tracking record",
            "status tracked needs the activity it tracks as",
        )),
        TrackStatus::Failed { reason } if reason.trim().is_empty() => Err(StoreError::invalid(
            "tracking record",
            "status failed needs a reason",
        )),
        _ => Ok(()),
    }
}

/// Organisation settings: a sync interval of at least a minute, domain names.
pub(crate) fn settings(settings: &super::settings::OrgSettings) -> Result<()> {
    if settings.sync_interval_minutes == 0 {
        return Err(StoreError::invalid(
            "settings",
            "the sync interval must be at least one minute",
        ));
    }
    for d in &settings.org_domains {
        idna::domain_to_ascii(d)
            .ok()
            .filter(|a| a.contains('.') || !a.is_empty())
            .ok_or_else(|| {
                StoreError::invalid("settings", format!("{d:?} is not a domain name"))
            })?;
    }
    Ok(())
}

/// Everything an export bundle holds, checked before any of it is written;
/// returns its records as validated (derived fields filled).
pub(crate) fn bundle(b: &super::export::ExportBundle) -> Result<Vec<Record>> {
    let mut records = b.records.clone();
    for r in &mut records {
        record(r)?;
    }
    for a in &b.activities {
        activity(a)?;
    }
    for t in &b.tracking {
        tracking(t)?;
    }
    for e in &b.address_books {
        e.clone().validate()?;
    }
    Ok(records)
}

/// How a tracking record's errors name it.
/// Every row of a tracking write (`put_tracked` on any backend).
pub(crate) fn tracked(activities: &[Activity], tracking: &[TrackingRecord]) -> Result<()> {
    for a in activities {
        activity(a)?;
    }
    for t in tracking {
        self::tracking(t)?;
    }
    Ok(())
}

pub fn tracking_what(t: &TrackingRecord) -> String {
    format!("tracking of {} in the mailbox of {}", t.message_id, t.owner)
}

/// The records a tracking record points to (owner, requester, regarding), sorted,
/// each once: every backend checks they exist and keeps deletes of them refused.
pub fn tracking_links(t: &TrackingRecord) -> Vec<RecordRef> {
    let mut l = vec![
        RecordRef::new(Kind::User, t.owner),
        RecordRef::new(Kind::User, t.requested_by),
    ];
    l.extend(t.regarding);
    l.sort();
    l.dedup();
    l
}

/// A tracking record's owner (`owner`, as stored) must be a user, and whoever
/// asked must be the owner or one of the owner's delegates.
pub fn tracking_owner(t: &TrackingRecord, owner: Option<&Record>) -> Result<()> {
    let Some(Record::User(owner)) = owner else {
        return Err(StoreError::MissingLink {
            what: tracking_what(t),
            kind: Kind::User,
            id: t.owner.uuid(),
        });
    };
    if t.requested_by != t.owner && !owner.delegates.contains(&t.requested_by) {
        return Err(StoreError::invalid(
            "tracking record",
            format!(
                "user {} is neither the owner of mailbox {} nor one of its delegates",
                t.requested_by, owner.full_name
            ),
        ));
    }
    Ok(())
}

/// The activity a tracking record points to (`activity`, as stored) must exist
/// and be of the record's Message-ID.
pub fn tracking_activity(t: &TrackingRecord, activity: Option<&Activity>) -> Result<()> {
    let Some(aid) = t.activity else {
        return Ok(());
    };
    let Some(a) = activity else {
        return Err(StoreError::MissingLink {
            what: tracking_what(t),
            kind: Kind::Email,
            id: aid.uuid(),
        });
    };
    match a.message_id() {
        Some(m) if *m != t.message_id => Err(StoreError::invalid(
            "tracking record",
            format!("activity {aid} is for Message-ID {m}, not {}", t.message_id),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::*;
    use crate::store::EmailAddress;

    fn contact() -> Contact {
        Contact {
            id: ContactId::new(),
            stamps: Stamps::default(),
            first_name: String::new(),
            last_name: String::new(),
            full_name: String::new(),
            job_title: String::new(),
            department: String::new(),
            company: String::new(),
            account: None,
            emails: vec![],
            business_phone: String::new(),
            mobile_phone: String::new(),
            address: PostalAddress::default(),
            categories: Vec::new(),
        }
    }

    #[test]
    fn contact_full_name_is_derived_or_refused() {
        let mut r = Record::Contact(Contact {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            ..contact()
        });
        record(&mut r).unwrap();
        assert_eq!(r.title(), "Ada Lovelace");
        let mut empty = Record::Contact(contact());
        let e = record(&mut empty).unwrap_err().to_string();
        assert!(e.contains("needs a name or an e-mail"), "{e}");
        let mut by_mail = Record::Contact(Contact {
            emails: vec![EmailAddress::parse("x@example.com").unwrap()],
            ..contact()
        });
        record(&mut by_mail).unwrap();
        assert_eq!(by_mail.title(), "x@example.com");
    }

    #[test]
    fn bad_currency_customer_and_placeholders_are_refused() {
        let inv = Invoice {
            id: InvoiceId::new(),
            stamps: Stamps::default(),
            number: "INV-1".into(),
            customer: RecordRef {
                kind: Kind::Lead,
                id: uuid::Uuid::now_v7(),
            },
            amount: Money {
                minor: 100,
                currency: "EUR".into(),
            },
            due: None,
            status: InvoiceStatus::Active,
        };
        let e = record(&mut Record::Invoice(inv.clone()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("account or a contact"), "{e}");
        let mut ok = inv.clone();
        ok.customer.kind = Kind::Account;
        record(&mut Record::Invoice(ok.clone())).unwrap();
        ok.amount.currency = "euro".into();
        assert!(record(&mut Record::Invoice(ok))
            .unwrap_err()
            .to_string()
            .contains("ISO 4217"));
        let t = EmailTemplate {
            id: TemplateId::new(),
            stamps: Stamps::default(),
            title: "Hi".into(),
            subject: "Hello {{recipient.first_name}}".into(),
            body: "Regards, {{user.full_name".into(),
            for_kind: None,
        };
        assert!(record(&mut Record::EmailTemplate(t))
            .unwrap_err()
            .to_string()
            .contains("never closed"));
    }

    #[test]
    fn users_need_distinct_logins() {
        let a = EmailAddress::parse("alice@example.test").unwrap();
        let u = SystemUser {
            id: UserId::new(),
            stamps: Stamps::default(),
            full_name: "Alice".into(),
            logins: vec![
                a.clone(),
                EmailAddress::parse("ALICE@example.test").unwrap(),
            ],
            imap_logins: Vec::new(),
            privileges: Default::default(),
            delegates: Default::default(),
            options: Default::default(),
        };
        assert!(matches!(
            record(&mut Record::User(u)),
            Err(StoreError::Duplicate(_))
        ));
    }
}
