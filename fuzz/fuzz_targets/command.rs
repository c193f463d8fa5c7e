//! Client command decoding and everything the proxy derives from a client line:
//! tag and name scan, the full decode and its re-encoding (the proxy re-encodes
//! a decoded FETCH it adds `UID` to), identities from LOGIN/AUTHENTICATE and SASL
//! lines, the redaction used for logs, the APPEND target, and the rewrite of a
//! literal count. Nothing panics, and each rewrite says what it was asked to.

#![no_main]

use crmproxy::proxy::identity::{
    from_sasl, from_sasl_line, login_attempt, redact_client_message, Mechanism,
};
use crmproxy::sync::hook::sets::{append_target, seqs, set_text};
use crmproxy::wire::token::{first_token, is_valid_tag};
use crmproxy::wire::{
    command_start, parse_literal_announcement, set_literal_len, with_literal_len, Literal,
};
use imap_codec::decode::Decoder;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
use imap_codec::CommandCodec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    scan(line);
    decode(line);
    identities(line);
    literal_rewrites(line);
});

/// The cheap first-token scan the session does on every client line.
fn scan(line: &[u8]) {
    if let Some((tag, name)) = command_start(line) {
        assert_eq!(tag, first_token(line));
        assert!(!tag.is_empty());
        assert!(!name.as_bytes().is_empty() && name.as_bytes().len() <= 16);
        assert!(!name.as_bytes().iter().any(u8::is_ascii_lowercase));
    }
    if is_valid_tag(first_token(line)) {
        assert!(!first_token(line).contains(&b'+'));
    }
    if let Some((tag, mailbox)) = append_target(line) {
        assert_eq!(tag.as_bytes(), first_token(line));
        assert!(command_start(line).is_some_and(|(_, n)| n.is("APPEND")));
        if mailbox.eq_ignore_ascii_case("INBOX") {
            assert_eq!(mailbox, "INBOX");
        }
    }
}

/// The full decode, what the proxy reads from a decoded command, and its re-encoding.
fn decode(line: &[u8]) {
    let codec = CommandCodec::default();
    let Ok((rest, cmd)) = codec.decode(line) else {
        return;
    };
    let _ = login_attempt(&cmd);
    let exists = line.len() as u32 % 300;
    let set = match &cmd.body {
        CommandBody::Fetch { sequence_set, .. }
        | CommandBody::Store { sequence_set, .. }
        | CommandBody::Copy { sequence_set, .. }
        | CommandBody::Move { sequence_set, .. } => Some(sequence_set),
        _ => None,
    };
    if let Some(set) = set {
        let _ = set_text(set);
        for seq in seqs(set, exists).take(10_000) {
            assert!(
                seq >= 1 && seq <= exists.max(1),
                "sequence number {seq} of {exists}"
            );
        }
    }
    // What goes up when the proxy re-encodes a command decodes, and encodes the
    // same again (imap-codec may normalise on the first encode: `4:4` is `4`).
    let encoded = codec.encode(&cmd).dump();
    let (again_rest, again) = codec
        .decode(&encoded)
        .unwrap_or_else(|e| panic!("re-encoded command does not decode: {e:?} {encoded:?}"));
    assert!(again_rest.is_empty());
    assert_eq!(again.tag, cmd.tag);
    assert_eq!(
        codec.encode(&again).dump(),
        encoded,
        "re-encoded command differs"
    );
    // The FETCH the proxy extends with UID (tracking/opened.rs) still decodes.
    if let CommandBody::Fetch {
        macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(_),
        ..
    } = &cmd.body
    {
        let mut with_uid = cmd.clone();
        if let CommandBody::Fetch {
            macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
            ..
        } = &mut with_uid.body
        {
            names.push(MessageDataItemName::Uid);
        }
        let encoded = codec.encode(&with_uid).dump();
        assert!(
            codec.decode(&encoded).is_ok(),
            "FETCH with UID added: {encoded:?}"
        );
    }
    let _ = rest;
}

/// Who a login line or a SASL response names, and the log line made of it.
fn identities(line: &[u8]) {
    for m in [
        Mechanism::Plain,
        Mechanism::XOAuth2,
        Mechanism::OAuthBearer,
        Mechanism::Login,
    ] {
        if let Some(id) = from_sasl_line(m, line) {
            assert!(!id.user.is_empty());
        }
        if let Some(id) = from_sasl(m, line) {
            assert!(!id.user.is_empty());
        }
    }
    let max = 120;
    let shown = redact_client_message(line, false, max);
    if let Some((tag, name)) = command_start(line) {
        if name.is("LOGIN") || name.is("AUTHENTICATE") {
            assert!(shown.ends_with("<redacted>"), "{shown}");
            let tag = String::from_utf8_lossy(tag);
            assert!(shown.starts_with(&*tag));
            // Only tag, command and (at most 40 bytes of) the mechanism remain.
            assert!(shown.len() <= tag.len() + " AUTHENTICATE  <redacted>".len() + 4 * 40);
            return;
        }
    }
    assert!(shown.len() <= 4 * max + '…'.len_utf8(), "{shown}");
    assert_eq!(
        redact_client_message(line, true, max),
        "<redacted SASL response>"
    );
}

/// `set_literal_len` and `with_literal_len` on a line whose literal the framer
/// (`parse_literal_announcement`) sees, or not.
fn literal_rewrites(line: &[u8]) {
    let announced = parse_literal_announcement(line);
    let new_len = line.len() as u64 * 977;
    match set_literal_len(line, new_len) {
        Some(out) => {
            let lit = announced.expect("set_literal_len rewrote a line without a literal");
            assert_eq!(
                parse_literal_announcement(&out),
                Some(Literal {
                    len: new_len,
                    ..lit
                }),
                "set_literal_len: {out:?}"
            );
        }
        None => assert!(
            announced.is_none(),
            "set_literal_len refused a line with a literal"
        ),
    }
    if let Some(out) = with_literal_len(line, new_len) {
        let lit = announced.expect("with_literal_len rewrote a line without a literal");
        assert_eq!(
            parse_literal_announcement(&out),
            Some(Literal {
                len: new_len,
                sync: false,
                binary: lit.binary,
            }),
            "with_literal_len: {out:?}"
        );
        assert!(out.ends_with(b"+}\r\n"));
    }
}
