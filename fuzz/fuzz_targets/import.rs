//! The store's import parsers on arbitrary files: CSV (each kind, and detected),
//! vCard and crmproxy's JSON export. Nothing panics, and what parses survives
//! the trip the CLI sends it on (JSON over the admin socket) unchanged; an
//! export bundle survives export and import again.

#![no_main]

use crmproxy::formats::import::{self, ImportKind, Parsed};
use crmproxy::formats::vcard;
use crmproxy::store::ExportBundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&pick, file)) = input.split_first() else {
        return;
    };
    let kind = match pick % 5 {
        0 => None,
        1 => Some(ImportKind::Contacts),
        2 => Some(ImportKind::Accounts),
        3 => Some(ImportKind::Leads),
        _ => Some(ImportKind::Json),
    };
    if let Ok(parsed) = import::parse(file, kind) {
        let wire = serde_json::to_string(&parsed).expect("a parsed file serialises");
        let back: Parsed = serde_json::from_str(&wire)
            .unwrap_or_else(|e| panic!("a parsed file does not cross the admin socket: {e}"));
        assert_eq!(back, parsed, "changed on the admin socket");
        if let Parsed::Bundle(bundle) = &parsed {
            let again = ExportBundle::from_json(&bundle.to_json())
                .unwrap_or_else(|e| panic!("an imported bundle does not export and import: {e}"));
            assert_eq!(&again, bundle.as_ref(), "changed by export and import");
        }
    }
    // A vCard in any declared charset: the bytes as they are.
    let _ = vcard::parse(file);
});
