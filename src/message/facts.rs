//! The facts the CRM keeps about one email, read from its raw bytes with mail-parser:
//! parties, threading ids, subject, date, body text, attachments, bulk markers, an
//! iTIP invitation if there is one, and S/MIME metadata.

use super::calendar::{self, Invitation};
use super::smime::{self, SmimeInfo};
use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders, PartType};
use serde::{Deserialize, Serialize};

/// Most body text kept on an activity; the raw message keeps everything.
pub const MAX_BODY_TEXT: usize = 64 * 1024;

/// Errors while reading a message.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("not an RFC 5322 message: no header section could be read")]
    NotAMessage,
}

/// A mailbox: an address with an optional display name. The address is kept as
/// written; comparisons go through the store's normalisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: String,
}

/// A sign that a message was sent in bulk, so never tracked automatically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum BulkMarker {
    ListUnsubscribe,
    ListId(String),
    /// Another RFC 2369 list header (List-Post, List-Help, …), by its name.
    ListHeader(String),
    Precedence(String),
    AutoSubmitted(String),
    /// A vacation program's own mark, older than RFC 3834's Auto-Submitted
    /// (`X-Autoreply: yes`, `X-Autorespond: …`), as written.
    AutoReply(String),
}

/// RFC 2369's list headers besides List-Unsubscribe: any of them marks list mail.
const LIST_HEADERS: [&str; 5] = [
    "List-Help",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
];

/// Headers vacation programs put on their auto-replies.
const AUTO_REPLY_HEADERS: [&str; 2] = ["X-Autoreply", "X-Autorespond"];

/// An attachment as the activity lists it (the bytes stay in the raw message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: Option<String>,
    pub content_type: String,
    pub size: usize,
}

/// Everything the tracking engine needs from one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailFacts {
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// Outlook's Thread-Index header, as written.
    pub thread_index: Option<String>,
    pub subject: String,
    /// Seconds since the Unix epoch, from the Date header.
    pub date: Option<i64>,
    pub from: Option<Mailbox>,
    pub sender: Option<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    /// Plain text of the body (from text/plain, else stripped HTML), capped.
    pub body_text: String,
    pub attachments: Vec<Attachment>,
    pub bulk: Vec<BulkMarker>,
    pub invitation: Option<Invitation>,
    pub smime: Option<SmimeInfo>,
    /// Size of the raw message in bytes.
    pub size: usize,
}

impl EmailFacts {
    /// Whether the message looks like bulk mail (lists, auto-replies, bulk precedence).
    pub fn is_bulk(&self) -> bool {
        !self.bulk.is_empty()
    }

    /// Every party address with its role, sender first.
    pub fn parties(&self) -> impl Iterator<Item = (&'static str, &Mailbox)> {
        self.from
            .iter()
            .map(|m| ("sender", m))
            .chain(self.to.iter().map(|m| ("to", m)))
            .chain(self.cc.iter().map(|m| ("cc", m)))
            .chain(self.bcc.iter().map(|m| ("bcc", m)))
    }

    /// A `CRM:` + digits tracking token in the subject, if present.
    pub fn subject_token(&self) -> Option<&str> {
        tracking_token(&self.subject)
    }
}

/// Finds `CRM:0001234` style tokens (the optional tracking token of SPEC section 5).
pub fn tracking_token(subject: &str) -> Option<&str> {
    let at = subject.find("CRM:")?;
    let rest = &subject[at..];
    let digits = rest[4..].bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0).then(|| &rest[..4 + digits])
}

/// Read the facts of a raw message.
pub fn parse(raw: &[u8]) -> Result<EmailFacts, MessageError> {
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or(MessageError::NotAMessage)?;
    if msg.root_part().headers.is_empty() {
        return Err(MessageError::NotAMessage);
    }
    let smime = smime::analyze(&msg);
    let encrypted = smime
        .as_ref()
        .is_some_and(|s| s.form == smime::SmimeForm::Encrypted);

    let mut bulk = Vec::new();
    if msg.list_unsubscribe().as_text().is_some() || !msg.list_unsubscribe().is_empty() {
        bulk.push(BulkMarker::ListUnsubscribe);
    }
    if let Some(id) = header_text(&msg, "List-Id") {
        bulk.push(BulkMarker::ListId(id));
    }
    if let Some(name) = LIST_HEADERS
        .into_iter()
        .find(|name| header_text(&msg, name).is_some())
    {
        bulk.push(BulkMarker::ListHeader(name.to_string()));
    }
    if let Some(p) = header_text(&msg, "Precedence") {
        let p = p.trim().to_ascii_lowercase();
        if matches!(p.as_str(), "bulk" | "list" | "junk" | "auto_reply") {
            bulk.push(BulkMarker::Precedence(p));
        }
    }
    if let Some(a) = header_text(&msg, "Auto-Submitted") {
        let a = a.trim().to_ascii_lowercase();
        if !a.is_empty() && a != "no" {
            bulk.push(BulkMarker::AutoSubmitted(a));
        }
    }
    for name in AUTO_REPLY_HEADERS {
        if let Some(v) = header_text(&msg, name) {
            if !v.eq_ignore_ascii_case("no") {
                bulk.push(BulkMarker::AutoReply(format!("{name}: {v}")));
            }
        }
    }

    let body_text = if encrypted {
        String::new()
    } else {
        let text = msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
        truncate(text, MAX_BODY_TEXT)
    };

    let mut attachments = Vec::new();
    let mut invitation = None;
    for part in msg.parts.iter() {
        let ct = part.content_type();
        let ctype = ct
            .map(|c| match c.subtype() {
                Some(s) => format!("{}/{}", c.ctype(), s),
                None => c.ctype().to_string(),
            })
            .unwrap_or_else(|| "text/plain".into())
            .to_ascii_lowercase();
        if ctype == "text/calendar" && invitation.is_none() {
            if let Some(text) = part.text_contents() {
                invitation = calendar::parse(text);
            }
        }
    }
    for part in msg.attachments() {
        let ctype = part
            .content_type()
            .map(|c| match c.subtype() {
                Some(s) => format!("{}/{}", c.ctype(), s),
                None => c.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into())
            .to_ascii_lowercase();
        // The signature of a signed message is not an attachment a user sent.
        if smime.is_some() && ctype.contains("pkcs7") {
            continue;
        }
        if matches!(part.body, PartType::Multipart(_)) {
            continue;
        }
        attachments.push(Attachment {
            name: part.attachment_name().map(str::to_owned),
            content_type: ctype,
            size: part.len(),
        });
    }

    Ok(EmailFacts {
        message_id: msg.message_id().map(strip_angles),
        in_reply_to: id_list(msg.in_reply_to()),
        references: id_list(msg.references()),
        thread_index: header_text(&msg, "Thread-Index"),
        subject: msg.subject().unwrap_or("").to_string(),
        date: msg.date().map(|d| d.to_timestamp()),
        from: msg.from().and_then(first_mailbox),
        sender: msg.sender().and_then(first_mailbox),
        reply_to: msg.reply_to().map(mailboxes).unwrap_or_default(),
        to: msg.to().map(mailboxes).unwrap_or_default(),
        cc: msg.cc().map(mailboxes).unwrap_or_default(),
        bcc: msg.bcc().map(mailboxes).unwrap_or_default(),
        body_text,
        attachments,
        bulk,
        invitation,
        smime,
        size: raw.len(),
    })
}

fn header_text(msg: &mail_parser::Message<'_>, name: &str) -> Option<String> {
    msg.header_raw(name)
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|v| !v.is_empty())
}

fn strip_angles(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

fn id_list(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![strip_angles(t)],
        HeaderValue::TextList(l) => l.iter().map(|t| strip_angles(t)).collect(),
        _ => Vec::new(),
    }
}

fn mailboxes(a: &Address<'_>) -> Vec<Mailbox> {
    a.iter()
        .filter_map(|addr| {
            let address = addr.address()?.trim();
            (!address.is_empty()).then(|| Mailbox {
                name: addr
                    .name()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
                address: address.to_owned(),
            })
        })
        .collect()
}

fn first_mailbox(a: &Address<'_>) -> Option<Mailbox> {
    mailboxes(a).into_iter().next()
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-24T08:15:00Z, the Date header below in UTC.
    const DATE_0815_UTC: i64 = 1795508100;

    const PLAIN: &[u8] = b"Message-ID: <abc@contoso.example>\r\n\
From: =?UTF-8?Q?Ren=C3=A9e_Dupont?= <renee@contoso.example>\r\n\
To: Bob <bob@fabrikam.example>, carol@fabrikam.example\r\n\
Cc: Team <team@contoso.example>\r\n\
Subject: Re: Quote CRM:0001234 for Q4\r\n\
Date: Tue, 24 Nov 2026 09:15:00 +0100\r\n\
In-Reply-To: <parent@fabrikam.example>\r\n\
References: <root@fabrikam.example> <parent@fabrikam.example>\r\n\
Thread-Index: AdtQx1234==\r\n\
\r\n\
Hello Bob.\r\n";

    #[test]
    fn reads_parties_threading_and_subject() {
        let f = parse(PLAIN).unwrap();
        assert_eq!(f.message_id.as_deref(), Some("abc@contoso.example"));
        assert_eq!(f.in_reply_to, vec!["parent@fabrikam.example"]);
        assert_eq!(
            f.references,
            vec!["root@fabrikam.example", "parent@fabrikam.example"]
        );
        assert_eq!(f.thread_index.as_deref(), Some("AdtQx1234=="));
        let from = f.from.as_ref().unwrap();
        assert_eq!(from.name.as_deref(), Some("Renée Dupont"));
        assert_eq!(from.address, "renee@contoso.example");
        assert_eq!(f.to.len(), 2);
        assert_eq!(f.to[1].address, "carol@fabrikam.example");
        assert_eq!(f.cc[0].name.as_deref(), Some("Team"));
        assert_eq!(f.date, Some(DATE_0815_UTC));
        assert_eq!(f.subject_token(), Some("CRM:0001234"));
        assert!(f.body_text.starts_with("Hello Bob."));
        assert!(!f.is_bulk());
        let roles: Vec<_> = f.parties().map(|(r, _)| r).collect();
        assert_eq!(roles, ["sender", "to", "to", "cc"]);
    }

    #[test]
    fn bulk_markers_are_found() {
        let raw = b"From: news@shop.example\r\nTo: a@b.example\r\nList-Id: <news.shop.example>\r\n\
List-Unsubscribe: <mailto:unsub@shop.example>\r\nPrecedence: bulk\r\nAuto-Submitted: auto-generated\r\n\
Subject: Offers\r\n\r\nBuy.\r\n";
        let f = parse(raw).unwrap();
        assert!(f.bulk.contains(&BulkMarker::ListUnsubscribe));
        assert!(f.bulk.contains(&BulkMarker::Precedence("bulk".into())));
        assert!(f
            .bulk
            .contains(&BulkMarker::AutoSubmitted("auto-generated".into())));
        assert!(f.bulk.iter().any(|b| matches!(b, BulkMarker::ListId(_))));
        let not_bulk = b"From: a@b.example\r\nAuto-Submitted: no\r\nSubject: x\r\n\r\nx\r\n";
        assert!(!parse(not_bulk).unwrap().is_bulk());
    }

    #[test]
    fn auto_replies_and_other_list_headers_are_bulk_markers() {
        let marker = |header: &str| {
            let raw = format!("From: a@b.example\r\n{header}\r\nSubject: Away\r\n\r\nx\r\n");
            parse(raw.as_bytes()).unwrap().bulk
        };
        assert_eq!(
            marker("X-AutoReply: yes"),
            [BulkMarker::AutoReply("X-Autoreply: yes".into())]
        );
        assert_eq!(
            marker("X-Autorespond: I am away"),
            [BulkMarker::AutoReply("X-Autorespond: I am away".into())]
        );
        assert_eq!(
            marker("Precedence: auto_reply"),
            [BulkMarker::Precedence("auto_reply".into())]
        );
        assert_eq!(
            marker("List-Post: <mailto:team@lists.example>"),
            [BulkMarker::ListHeader("List-Post".into())]
        );
        assert!(marker("X-Autoreply: no").is_empty());
        assert!(marker("Precedence: first-class").is_empty());
    }

    #[test]
    fn attachments_are_listed_with_sizes() {
        let raw = b"From: a@contoso.example\r\nTo: b@fabrikam.example\r\nSubject: files\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n\
Content-Type: text/plain\r\n\r\nSee attached.\r\n--XX\r\nContent-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=\"quote.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
JVBERi0xLjQK\r\n--XX--\r\n";
        let f = parse(raw).unwrap();
        assert_eq!(f.attachments.len(), 1);
        assert_eq!(f.attachments[0].name.as_deref(), Some("quote.pdf"));
        assert_eq!(f.attachments[0].content_type, "application/pdf");
        assert_eq!(f.attachments[0].size, 9);
        assert!(f.body_text.contains("See attached."));
    }

    #[test]
    fn garbage_is_not_a_message() {
        assert!(parse(b"").is_err());
    }

    #[test]
    fn token_needs_digits() {
        assert_eq!(tracking_token("CRM: hello"), None);
        assert_eq!(tracking_token("x CRM:42"), Some("CRM:42"));
    }
}
