//! The demo CRM (`fixtures/demo/`): a few accounts with contacts, leads, open
//! opportunities, cases, invoices, templates, sales literature with files,
//! knowledge articles, and users alice/bob/carol/dave@example.test (carol is
//! alice's delegate; dave lacks `use_app`). Compiled into the binary.

use std::collections::BTreeMap;

use super::export::{Bytes, ExportBundle};
use super::{BlobRef, CrmStore, ImportSummary, Result};

const CRM_JSON: &str = include_str!("../../fixtures/demo/crm.json");
const FILES: [&[u8]; 3] = [
    include_bytes!("../../fixtures/demo/files/contoso-product-overview.txt"),
    include_bytes!("../../fixtures/demo/files/price-list-2027.csv"),
    include_bytes!("../../fixtures/demo/files/support-plans.md"),
];

/// The demo CRM as an export bundle, files included.
pub fn bundle() -> Result<ExportBundle> {
    let mut b = ExportBundle::from_json(CRM_JSON)?;
    let blobs: BTreeMap<String, Bytes> = FILES
        .iter()
        .map(|f| (BlobRef::of(f).sha256, Bytes(f.to_vec())))
        .collect();
    b.blobs = blobs;
    Ok(b)
}

/// Load the demo CRM when the store holds nothing; `serve` calls this on first
/// run when `tracking.load_demo_on_first_run` is on. Returns what was loaded.
pub fn load_if_empty(store: &dyn CrmStore) -> Result<Option<ImportSummary>> {
    if !store.is_empty()? {
        return Ok(None);
    }
    Ok(Some(store.import_bundle(&bundle()?)?))
}
