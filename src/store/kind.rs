//! What kind of row an id names, and a link to a row with its kind.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ids::Id;

/// Every kind of thing the store holds an id for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Account,
    Contact,
    Lead,
    Opportunity,
    Case,
    Invoice,
    User,
    EmailTemplate,
    SalesLiterature,
    KnowledgeArticle,
    Email,
    Appointment,
    PhoneCall,
    Task,
}

impl Kind {
    pub const ALL: [Kind; 14] = [
        Kind::Account,
        Kind::Contact,
        Kind::Lead,
        Kind::Opportunity,
        Kind::Case,
        Kind::Invoice,
        Kind::User,
        Kind::EmailTemplate,
        Kind::SalesLiterature,
        Kind::KnowledgeArticle,
        Kind::Email,
        Kind::Appointment,
        Kind::PhoneCall,
        Kind::Task,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Account => "account",
            Kind::Contact => "contact",
            Kind::Lead => "lead",
            Kind::Opportunity => "opportunity",
            Kind::Case => "case",
            Kind::Invoice => "invoice",
            Kind::User => "user",
            Kind::EmailTemplate => "email_template",
            Kind::SalesLiterature => "sales_literature",
            Kind::KnowledgeArticle => "knowledge_article",
            Kind::Email => "email",
            Kind::Appointment => "appointment",
            Kind::PhoneCall => "phone_call",
            Kind::Task => "task",
        }
    }
    pub(crate) fn code(self) -> u8 {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(0) as u8
    }
    pub(crate) fn from_code(c: u8) -> Option<Kind> {
        Kind::ALL.get(c as usize).copied()
    }
    /// Whether an activity may be set regarding a record of this kind.
    pub fn can_be_regarding(self) -> bool {
        matches!(
            self,
            Kind::Account
                | Kind::Contact
                | Kind::Lead
                | Kind::Opportunity
                | Kind::Case
                | Kind::Invoice
        )
    }
    pub fn is_activity(self) -> bool {
        matches!(
            self,
            Kind::Email | Kind::Appointment | Kind::PhoneCall | Kind::Task
        )
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    /// Accepts names as a user types them: `contacts`, `Opportunities`,
    /// `phone-call`, `system user`.
    fn from_str(s: &str) -> Result<Self, String> {
        let norm = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        let singular = if let Some(stem) = norm.strip_suffix("ies") {
            format!("{stem}y")
        } else if let Some(stem) = norm.strip_suffix('s') {
            stem.to_string()
        } else {
            norm.clone()
        };
        Kind::ALL
            .iter()
            .find(|k| {
                let name = k.as_str();
                name == norm
                    || name == singular
                    || (*k == &Kind::User
                        && (singular == "system_user" || singular == "systemuser"))
            })
            .copied()
            .ok_or_else(|| {
                let names: Vec<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown record type {s:?}; one of: {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_as_users_type_them() {
        for (text, kind) in [
            ("contacts", Kind::Contact),
            ("Opportunities", Kind::Opportunity),
            ("case", Kind::Case),
            ("phone-call", Kind::PhoneCall),
            ("sales literature", Kind::SalesLiterature),
            ("system user", Kind::User),
            ("email_templates", Kind::EmailTemplate),
        ] {
            assert_eq!(text.parse::<Kind>().unwrap(), kind, "{text}");
        }
        assert!("planet"
            .parse::<Kind>()
            .unwrap_err()
            .contains("one of: account"));
        for k in Kind::ALL {
            assert_eq!(Kind::from_code(k.code()), Some(k));
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
        }
    }
}

/// A link to any record or activity, with its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordRef {
    pub kind: Kind,
    pub id: Uuid,
}

impl RecordRef {
    pub fn new<T>(kind: Kind, id: Id<T>) -> Self {
        RecordRef {
            kind,
            id: id.uuid(),
        }
    }
}
