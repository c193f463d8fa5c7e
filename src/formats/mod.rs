//! File formats the CRM reads: address books and other CRMs' files (CSV, vCard) and
//! crmproxy's own JSON export. Parsing needs no store: the CLI parses, then hands
//! the rows to the store (directly or over the admin socket).

mod csv_rows;
pub mod import;
pub mod vcard;
