//! What the pane's "message opened" event says besides where the message is: the
//! Subject and From of a message whose bytes came whole in the FETCH response.

use imap_codec::imap_types::fetch::MessageDataItem;

/// Subject and From of a whole-message item whose bytes came in this response (a
/// message small enough not to be streamed), for the pane's summary.
pub(super) fn header_summary(
    item: &MessageDataItem<'_>,
) -> Option<(Option<String>, Option<String>)> {
    let data = match item {
        MessageDataItem::BodyExt { data, .. } => data.0.as_ref()?,
        MessageDataItem::Rfc822(data) => data.0.as_ref()?,
        _ => return None,
    };
    let bytes = data.as_ref();
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(bytes.len());
    let headers = mail_parser::MessageParser::default().parse_headers(&bytes[..end])?;
    let subject = headers.subject().map(str::to_owned);
    let from = headers
        .from()
        .and_then(|a| a.first())
        .map(|a| match (a.name(), a.address()) {
            (Some(n), Some(addr)) => format!("{n} <{addr}>"),
            (None, Some(addr)) => addr.to_owned(),
            (Some(n), None) => n.to_owned(),
            (None, None) => String::new(),
        });
    Some((subject, from.filter(|f| !f.is_empty())))
}
