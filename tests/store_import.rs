//! Importing address books as real programs write them (fixtures/import/), and
//! bad files: each gives a clear error and changes nothing.

use crmproxy::formats::import::{self, ImportError, ImportKind, Parsed, Row};
use crmproxy::store::*;
use std::path::Path;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/import")
            .join(name),
    )
    .unwrap()
}

fn read_rows(name: &str, kind: Option<ImportKind>) -> (ImportKind, Vec<Row>) {
    match import::parse(&fixture(name), kind).unwrap() {
        Parsed::Rows { kind, rows } => (kind, rows),
        Parsed::Bundle(_) => panic!("not rows"),
    }
}

fn contacts(rows: &[Row]) -> Vec<Contact> {
    rows.iter()
        .filter_map(|r| match r {
            Row::Record {
                record: Record::Contact(c),
                ..
            } => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn skips(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter_map(|r| match r {
            Row::Skip { place, reason } => Some(format!("{place}: {reason}")),
            _ => None,
        })
        .collect()
}

fn open() -> (tempfile::TempDir, SledStore) {
    let d = tempfile::tempdir().unwrap();
    let s = SledStore::open(d.path()).unwrap();
    (d, s)
}

#[test]
fn thunderbird_csv() {
    let (kind, rows) = read_rows("thunderbird.csv", None);
    assert_eq!(kind, ImportKind::Contacts);
    let cs = contacts(&rows);
    assert_eq!(cs.len(), 3, "{:?}", skips(&rows));
    assert_eq!(cs[0].full_name, "Zoë Müller");
    assert_eq!(cs[0].job_title, "Geschäftsführerin");
    assert_eq!(cs[0].company, "Fabrikam Möbel GmbH");
    assert_eq!(cs[0].address.city, "München");
    assert_eq!(cs[1].emails.len(), 2);
    assert_eq!(cs[1].mobile_phone, "+34 600 555 010");
    assert_eq!(cs[2].emails[0].domain(), "xn--r8jz45g.xn--zckzah");
    let sk = skips(&rows);
    assert_eq!(sk.len(), 1);
    assert!(sk[0].contains("not an e-mail address"), "{sk:?}");
}

#[test]
fn outlook_csv_keeps_job_title_apart_from_courtesy_title() {
    let (kind, rows) = read_rows("outlook.csv", None);
    assert_eq!(kind, ImportKind::Contacts);
    let cs = contacts(&rows);
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].full_name, "Nancy Davolio");
    assert_eq!(cs[0].job_title, "Purchasing Manager");
    assert_eq!(cs[0].business_phone, "+1 425 555 0101");
    assert_eq!(cs[0].address.postal_code, "98052");
    assert_eq!(cs[1].full_name, "Søren Jørgensen");
    assert_eq!(cs[1].emails.len(), 2);
    assert!(skips(&rows)[0].contains("needs a name or an e-mail"));
}

#[test]
fn vcards_3_4_and_outlook_2_1() {
    let (_, v3) = read_rows("contacts-v3.vcf", None);
    let v3 = contacts(&v3);
    assert_eq!(v3.len(), 2);
    assert_eq!(v3[0].department, "Management");
    assert_eq!(v3[0].mobile_phone, "+49 170 555 0124");
    assert_eq!(v3[0].address.street, "Leopoldstraße 12");
    assert_eq!(
        v3[1].emails[0].as_str(),
        "nancy.davolio@contoso.example",
        "folded line"
    );

    let (_, v4) = read_rows("contacts-v4.vcf", None);
    let v4 = contacts(&v4);
    assert_eq!(v4[0].full_name, "José Álvarez");
    assert_eq!(v4[0].mobile_phone, "+34-600-555-010");
    assert_eq!(v4[1].full_name, "王李");

    let (_, v21) = read_rows("outlook-v21.vcf", None);
    let v21 = contacts(&v21);
    assert_eq!(v21[0].full_name, "Søren Jørgensen");
    assert_eq!(
        v21[0].department, "Operations and Logistics",
        "soft line break"
    );
    assert_eq!(
        v21[0].address.city, "Düsseldorf",
        "ISO-8859-1 quoted-printable"
    );
}

#[test]
fn accounts_and_leads_csv_are_detected() {
    let (kind, rows) = read_rows("accounts.csv", None);
    assert_eq!(kind, ImportKind::Accounts);
    assert_eq!(
        rows.iter()
            .filter(|r| matches!(r, Row::Record { .. }))
            .count(),
        3
    );
    let (kind, rows) = read_rows("leads.csv", None);
    assert_eq!(kind, ImportKind::Leads);
    let Row::Record {
        record: Record::Lead(l),
        ..
    } = &rows[1]
    else {
        panic!()
    };
    assert_eq!(l.status, LeadStatus::Contacted);
    assert_eq!(l.topic, "Request for a quote");
    let Row::Record {
        record: Record::Lead(t),
        ..
    } = &rows[2]
    else {
        panic!()
    };
    assert_eq!(t.company, "Tailspin Toys");
}

#[test]
fn applying_twice_updates_nothing_and_links_accounts() {
    let (_d, s) = open();
    let (_, acc) = read_rows("accounts.csv", None);
    let sum = import::apply_rows(&s, acc, &mut |_, _| {}).unwrap();
    assert_eq!((sum.created, sum.updated), (3, 0));
    let (_, tb) = read_rows("thunderbird.csv", None);
    let sum = import::apply_rows(&s, tb.clone(), &mut |_, _| {}).unwrap();
    assert_eq!((sum.created, sum.updated, sum.skipped.len()), (3, 0, 1));
    let again = import::apply_rows(&s, tb, &mut |_, _| {}).unwrap();
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 3));
    // Zoë's contact is linked to the Fabrikam account imported before.
    let zoe = s
        .resolve_address(&EmailAddress::parse("zoe.mueller@fabrikam.example").unwrap())
        .unwrap();
    let Some(Record::Contact(z)) = s.record(zoe[0].id).unwrap() else {
        panic!()
    };
    assert!(z.account.is_some());
    // The same person in a vCard updates (merges into) the existing contact.
    let (_, v3) = read_rows("contacts-v3.vcf", None);
    let sum = import::apply_rows(&s, v3, &mut |_, _| {}).unwrap();
    assert_eq!((sum.created, sum.updated), (1, 1));
    let Some(Record::Contact(z2)) = s.record(zoe[0].id).unwrap() else {
        panic!()
    };
    assert_eq!(z2.mobile_phone, "+49 170 555 0124");
    assert_eq!(z2.account, z.account);
}

#[test]
fn the_same_person_twice_in_a_file_is_skipped_with_a_reason() {
    let (_d, s) = open();
    let csv = "First Name,Last Name,E-mail Address\nAda,Lovelace,ada@example.com\nAda,L.,ADA@example.com\n";
    let Parsed::Rows { rows, .. } = import::parse(csv.as_bytes(), None).unwrap() else {
        panic!()
    };
    let sum = import::apply_rows(&s, rows, &mut |_, _| {}).unwrap();
    assert_eq!(sum.created, 1);
    assert_eq!(
        sum.skipped,
        vec![("line 3".to_string(), "same person as line 2".to_string())]
    );
}

fn assert_refused(bytes: &[u8], needle: &str) {
    let e = import::parse(bytes, None).unwrap_err();
    assert!(e.to_string().contains(needle), "{e}");
}

#[test]
fn bad_files_are_refused_clearly() {
    assert_refused(&fixture("bad/truncated.vcf"), "no END:VCARD");
    assert_refused(&fixture("bad/latin1.csv"), "not UTF-8");
    assert_refused(&fixture("bad/latin1.csv"), "line 2");
    assert_refused(&fixture("bad/truncated.csv"), "ends too early");
    assert_refused(&fixture("bad/utf16.csv"), "UTF-16");
    let mut huge = b"First Name,E-mail Address\n".to_vec();
    huge.extend(std::iter::repeat_n(b'a', import::MAX_LINE_BYTES + 10));
    huge.extend(b",a@example.com\n");
    assert!(matches!(
        import::parse(&huge, None),
        Err(ImportError::LineTooLong { line: 2 })
    ));
    let mut huge_vcf = b"BEGIN:VCARD\nFN:".to_vec();
    huge_vcf.extend(std::iter::repeat_n(b'x', import::MAX_LINE_BYTES + 1));
    assert!(matches!(
        import::parse(&huge_vcf, None),
        Err(ImportError::LineTooLong { .. })
    ));
    assert_refused(b"", "empty");
    assert_refused(b"foo;bar\n1;2\n", "no known column");
    assert_refused(b"{\"hello\": 1}", "not a crmproxy export");
    assert_refused(
        b"{\"format\": \"crmproxy-export\", \"version\": 1, \"records\": [{\"type\": \"contact\"",
        "not JSON",
    );
    assert_refused(b"BEGIN:VCARD\nFN:A\nBEGIN:VCARD\n", "missing END:VCARD");
    assert_refused(b"hello\nBEGIN:VCARD\n", "no known column");
}

#[test]
fn a_bad_bundle_changes_nothing() {
    let (_d, s) = open();
    let mut b = demo::bundle().unwrap();
    // A contact whose account is not in the bundle nor the store.
    if let Some(Record::Contact(c)) = b.records.iter_mut().find(|r| r.kind() == Kind::Contact) {
        c.account = Some(AccountId::new());
    }
    let e = s.import_bundle(&b).unwrap_err();
    assert!(matches!(e, StoreError::MissingLink { .. }), "{e}");
    assert!(s.is_empty().unwrap(), "a failed import wrote something");
    assert!(s
        .search(&SearchQuery {
            text: "zoe".into(),
            ..Default::default()
        })
        .unwrap()
        .is_empty());
}
