//! What the pane's "message opened" event needs: where the message is (a fetch by
//! sequence number of one message's body asks for its UID too, when the session
//! has not learned it), and the Message-ID, Subject, From, To and Cc of a message
//! whose header came in the FETCH response.

use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section,
};
use imap_codec::imap_types::IntoStatic;
use imap_codec::{encode::Encoder, CommandCodec};

use super::{names_one, TrackingHook};
use crate::proxy::hook::HookContext;

impl TrackingHook {
    /// A CRM user's `FETCH n (BODY[])` (one message, by sequence number, for its
    /// body) when the session does not know message n's UID, as imaplib sends it:
    /// sent up as `FETCH n (BODY[] UID)`, so that the response says where the
    /// opened message is. The client gets one item more (servers may always send
    /// UID); the message's bytes are untouched.
    pub(super) fn fetch_with_uid(
        &self,
        cx: &HookContext<'_>,
        command: &Command<'_>,
    ) -> Option<Vec<u8>> {
        let CommandBody::Fetch {
            sequence_set,
            macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
            uid: false,
            ..
        } = &command.body
        else {
            return None;
        };
        if !names_one(sequence_set) || names.contains(&MessageDataItemName::Uid) {
            return None;
        }
        let opens = names.iter().any(|n| {
            matches!(
                n,
                MessageDataItemName::BodyExt {
                    section: None | Some(Section::Text(_) | Section::Part(_)),
                    partial: None,
                    ..
                } | MessageDataItemName::Rfc822
                    | MessageDataItemName::Rfc822Text
                    | MessageDataItemName::Binary { .. }
            )
        });
        let mailbox = cx.state.selected()?;
        let seq = super::sets::seqs(sequence_set, mailbox.exists).next()?;
        if !opens || mailbox.uid(seq).is_some() || self.owner_id(cx).is_none() {
            return None;
        }
        let mut with_uid = command.clone().into_static();
        if let CommandBody::Fetch {
            macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
            ..
        } = &mut with_uid.body
        {
            names.push(MessageDataItemName::Uid);
        }
        Some(CommandCodec::default().encode(&with_uid).dump())
    }
}

/// The Message-ID in the header an item carries (the whole message or its header).
pub(super) fn message_id_of_item(item: &MessageDataItem<'_>) -> Option<String> {
    let bytes = header_bytes(item)?;
    crate::proxy::state::message_id_from_header(bytes)
}

/// The bytes of an item that start with the message's top-level header.
fn header_bytes<'a>(item: &'a MessageDataItem<'_>) -> Option<&'a [u8]> {
    let data = match item {
        MessageDataItem::BodyExt {
            section: None | Some(Section::Header(None)),
            origin: None,
            data,
        } => data.0.as_ref()?,
        MessageDataItem::Rfc822(data) | MessageDataItem::Rfc822Header(data) => data.0.as_ref()?,
        _ => return None,
    };
    Some(data.as_ref())
}

/// What the header of a fetched message says, for the pane's summary.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct HeaderSummary {
    pub subject: Option<String>,
    pub from: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
}

/// The header summary of an item whose bytes start with the message's header (the
/// whole message or its header section, small enough not to be streamed).
pub(super) fn header_summary(item: &MessageDataItem<'_>) -> Option<HeaderSummary> {
    let bytes = header_bytes(item)?;
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(bytes.len());
    let headers = mail_parser::MessageParser::default().parse_headers(&bytes[..end])?;
    let list = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        a.map(|a| {
            a.iter()
                .map(mailbox_text)
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default()
    };
    Some(HeaderSummary {
        subject: headers.subject().map(str::to_owned),
        from: list(headers.from()).into_iter().next(),
        to: list(headers.to()),
        cc: list(headers.cc()),
    })
}

fn mailbox_text(a: &mail_parser::Addr<'_>) -> String {
    match (a.name(), a.address()) {
        (Some(n), Some(addr)) => format!("{n} <{addr}>"),
        (None, Some(addr)) => addr.to_owned(),
        (Some(n), None) => n.to_owned(),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_codec::imap_types::core::NString;

    fn body(section: Option<Section<'static>>, bytes: &'static [u8]) -> MessageDataItem<'static> {
        MessageDataItem::BodyExt {
            section,
            origin: None,
            data: NString::try_from(bytes.to_vec()).unwrap(),
        }
    }

    #[test]
    fn sender_and_recipients_of_a_whole_message_or_its_header() {
        let raw: &[u8] =
            b"From: \"Dana S.\" <dana@x.example>\r\nTo: a@x.example, Bo <b@x.example>\r\n\
Cc: Cy <c@x.example>\r\nSubject: Hi\r\n\r\nTo: not@header.example\r\n";
        let want = HeaderSummary {
            subject: Some("Hi".into()),
            from: Some("Dana S. <dana@x.example>".into()),
            to: vec!["a@x.example".into(), "Bo <b@x.example>".into()],
            cc: vec!["Cy <c@x.example>".into()],
        };
        assert_eq!(header_summary(&body(None, raw)), Some(want));
        assert!(header_summary(&body(Some(Section::Header(None)), raw)).is_some());
        // A part's bytes are not the message's header.
        let part = Section::Part(imap_codec::imap_types::fetch::Part(
            imap_codec::imap_types::core::Vec1::from(std::num::NonZeroU32::new(1).unwrap()),
        ));
        assert_eq!(header_summary(&body(Some(part), raw)), None);
    }
}
