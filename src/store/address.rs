//! E-mail addresses and Message-IDs as validated values. An address keeps the form
//! it was written in for display, and has one lookup key: the local part in NFC and
//! lower case (Unicode local parts, RFC 6531), the domain in IDNA ASCII form, so
//! `Zoë@Bücher.example` and `zoë@xn--bcher-kva.example` find the same record.

use serde::{Deserialize, Serialize};
use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// Why a string is not an e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not an e-mail address: {reason}")]
pub struct AddressError {
    pub input: String,
    pub reason: &'static str,
}

/// A syntactically valid e-mail address (`local@domain`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress {
    display: String,
    key: String,
}

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let err = |reason| AddressError {
            input: input.chars().take(200).collect(),
            reason,
        };
        let s = input.trim();
        // Accept "Name <addr>" and "<addr>" as mail clients paste them.
        let s = match (s.rfind('<'), s.ends_with('>')) {
            (Some(i), true) => &s[i + 1..s.len() - 1],
            _ => s,
        };
        let s = s.strip_prefix("mailto:").unwrap_or(s).trim();
        if s.len() > 320 {
            return Err(err("longer than 320 bytes"));
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(|| err("no @"))?;
        if local.is_empty() {
            return Err(err("nothing before the @"));
        }
        if domain.is_empty() {
            return Err(err("no domain after the @"));
        }
        if local.len() > 64 {
            return Err(err("local part longer than 64 bytes"));
        }
        if local.contains('@') && !(local.starts_with('"') && local.ends_with('"')) {
            return Err(err("more than one @"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("contains spaces or control characters"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(err("misplaced dot in the local part"));
        }
        if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
            return Err(err("misplaced dot in the domain"));
        }
        if domain.contains(['<', '>', '(', ')', '[', ']', ',', ';', ':', '\\', '"']) {
            return Err(err("invalid character in the domain"));
        }
        let ascii_domain = idna::domain_to_ascii_strict(domain)
            .map_err(|_| err("the domain is not a valid (IDN) name"))?;
        if ascii_domain.is_empty() {
            return Err(err("no domain after the @"));
        }
        let local_key: String = local.nfc().flat_map(char::to_lowercase).collect();
        Ok(EmailAddress {
            display: s.to_string(),
            key: format!("{local_key}@{ascii_domain}"),
        })
    }

    /// The address as written.
    pub fn as_str(&self) -> &str {
        &self.display
    }
    /// The case-folded, IDNA-normalised form used in indexes and comparisons.
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The ASCII (punycode) domain of the key.
    pub fn domain(&self) -> &str {
        self.key.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
    /// Same mailbox, whatever the spelling.
    pub fn same_as(&self, other: &EmailAddress) -> bool {
        self.key == other.key
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = AddressError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        EmailAddress::parse(&s)
    }
}
impl From<EmailAddress> for String {
    fn from(a: EmailAddress) -> String {
        a.display
    }
}
impl std::str::FromStr for EmailAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EmailAddress::parse(s)
    }
}
impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}
impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.display)
    }
}

/// A Message-ID without its angle brackets (`id-left@id-right`). Compared exactly:
/// RFC 5322 makes Message-IDs case-sensitive.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageId(String);

impl MessageId {
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let err = |reason| AddressError {
            input: input.chars().take(200).collect(),
            reason,
        };
        let s = input.trim();
        let s = s.strip_prefix('<').unwrap_or(s);
        let s = s.strip_suffix('>').unwrap_or(s);
        if s.is_empty() {
            return Err(err("empty Message-ID"));
        }
        if s.len() > 998 {
            return Err(err("Message-ID longer than a header line may be"));
        }
        if s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        {
            return Err(err(
                "Message-ID contains spaces, brackets or control characters",
            ));
        }
        Ok(MessageId(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for MessageId {
    type Error = AddressError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        MessageId::parse(&s)
    }
}
impl From<MessageId> for String {
    fn from(m: MessageId) -> String {
        m.0
    }
}
impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.0)
    }
}
impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_idn_fold_to_one_key() {
        let a = EmailAddress::parse("Zoë.Meyer@Bücher.Example").unwrap();
        let b = EmailAddress::parse("zoë.meyer@xn--bcher-kva.example").unwrap();
        assert!(a.same_as(&b));
        assert_eq!(a.as_str(), "Zoë.Meyer@Bücher.Example");
        assert_eq!(a.domain(), "xn--bcher-kva.example");
    }

    #[test]
    fn unicode_local_part_is_normalised() {
        // "é" precomposed vs "e" + combining acute.
        let a = EmailAddress::parse("ren\u{e9}@example.com").unwrap();
        let b = EmailAddress::parse("rene\u{301}@EXAMPLE.com").unwrap();
        assert!(a.same_as(&b));
    }

    #[test]
    fn display_forms_are_accepted() {
        let a = EmailAddress::parse("Alice Example <alice@example.test>").unwrap();
        assert_eq!(a.as_str(), "alice@example.test");
        let b = EmailAddress::parse("mailto:bob@example.test").unwrap();
        assert_eq!(b.key(), "bob@example.test");
    }

    #[test]
    fn non_addresses_are_refused_with_a_reason() {
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a b@example.com",
            "a..b@example.com",
            "a@b@example.com",
            "alice@exa mple.com",
            "alice@.example.com",
            "alice@-xn--.example",
        ] {
            let e = EmailAddress::parse(bad);
            assert!(e.is_err(), "{bad:?} accepted");
        }
        let e = EmailAddress::parse("alice").unwrap_err();
        assert!(e.to_string().contains("no @"), "{e}");
    }

    #[test]
    fn message_ids_lose_brackets_only() {
        let m = MessageId::parse(" <Abc.123@Mail.Example> ").unwrap();
        assert_eq!(m.as_str(), "Abc.123@Mail.Example");
        assert_ne!(m, MessageId::parse("abc.123@mail.example").unwrap());
        assert!(MessageId::parse("<>").is_err());
        assert!(MessageId::parse("a b@c").is_err());
    }
}
