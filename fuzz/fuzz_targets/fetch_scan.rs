//! Server lines the proxy reads without a full decode: the UID of a FETCH
//! response (`fetch_uid`), the FLAGS item it extends on a streamed FETCH line
//! (`item_value`), and capability filtering. Where imap-codec decodes the
//! response whole, the scan must find the UID imap-codec finds.

#![no_main]

use crmproxy::sync::hook::flags::item_value;
use crmproxy::wire::{fetch_uid, filter_capabilities, literal_capabilities, CapabilityPolicy};
use imap_codec::decode::Decoder;
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::ResponseCodec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    let uid = fetch_uid(line);
    if let Ok((_, Response::Data(Data::Fetch { items, .. }))) =
        ResponseCodec::default().decode(line)
    {
        let decoded = items.as_ref().iter().find_map(|i| match i {
            MessageDataItem::Uid(u) => Some(u.get()),
            _ => None,
        });
        if decoded.is_some() {
            assert_eq!(
                uid, decoded,
                "fetch_uid disagrees with the decoded response"
            );
        }
    }

    if let Some((start, end)) = item_value(line, b"FLAGS") {
        assert!(
            start <= end && end <= line.len(),
            "{start}..{end} of {}",
            line.len()
        );
        assert!(line[..start].to_ascii_uppercase().ends_with(b"FLAGS "));
    }

    // Capabilities are filtered in lines as the framer cuts them: one line ending, at the end.
    let line = &line[..memchr_end(line)];
    let _ = literal_capabilities(line);
    for (offer_starttls, login_disabled) in
        [(false, false), (true, false), (false, true), (true, true)]
    {
        let policy = CapabilityPolicy {
            offer_starttls,
            login_disabled,
        };
        if let Some(out) = filter_capabilities(line, policy) {
            // Filtering is idempotent: what was sent needs no second pass.
            assert_eq!(
                filter_capabilities(&out, policy),
                None,
                "filtered twice differs: {out:?}"
            );
            assert_eq!(
                literal_capabilities(&out).is_some(),
                literal_capabilities(line).is_some()
            );
        }
    }
});

/// The end of the first line (through its `\n`), or of the input.
fn memchr_end(b: &[u8]) -> usize {
    b.iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |i| i + 1)
}
