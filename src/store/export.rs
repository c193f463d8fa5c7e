//! The JSON export format: everything in the CRM, in a stable order, files
//! included (base64), so that export → import → export gives the same bytes.

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

use super::activity::{Activity, TrackingRecord};
use super::address_book::AddressBookEntry;
use super::error::StoreError;
use super::model::Record;
use super::settings::OrgSettings;
use super::Result;

/// The name in the `format` field of an export file.
pub const FORMAT: &str = "crmproxy-export";
/// The export format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// File contents, base64 in JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}
impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}
impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(Bytes)
            .map_err(serde::de::Error::custom)
    }
}

/// Everything in the CRM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportBundle {
    pub format: String,
    pub version: u32,
    #[serde(default)]
    pub settings: OrgSettings,
    /// Ordered by kind, then id.
    #[serde(default)]
    pub records: Vec<Record>,
    /// Ordered by id.
    #[serde(default)]
    pub activities: Vec<Activity>,
    /// Ordered by owner, then Message-ID.
    #[serde(default)]
    pub tracking: Vec<TrackingRecord>,
    /// SHA-256 → content of every file a record or activity points to.
    #[serde(default)]
    pub blobs: BTreeMap<String, Bytes>,
    /// Users' own address books (mail contacts), ordered by owner, then id; left
    /// out of the file when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address_books: Vec<AddressBookEntry>,
}

impl Default for ExportBundle {
    fn default() -> Self {
        ExportBundle {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            settings: OrgSettings::default(),
            records: Vec::new(),
            activities: Vec::new(),
            tracking: Vec::new(),
            blobs: BTreeMap::new(),
            address_books: Vec::new(),
        }
    }
}

impl ExportBundle {
    /// Parse an export file, checking that it is one and of a version this build reads.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| StoreError::invalid("export file", format!("not JSON: {e}")))?;
        if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(StoreError::invalid(
                "export file",
                format!("no \"format\": \"{FORMAT}\" field; not a crmproxy export"),
            ));
        }
        match v.get("version").and_then(|f| f.as_u64()) {
            Some(n) if n as u32 == FORMAT_VERSION => {}
            Some(n) => {
                return Err(StoreError::invalid(
                    "export file",
                    format!("version {n}; this crmproxy reads version {FORMAT_VERSION}"),
                ))
            }
            None => return Err(StoreError::invalid("export file", "no version field")),
        }
        let mut b: ExportBundle = serde_json::from_value(v)
            .map_err(|e| StoreError::invalid("export file", e.to_string()))?;
        b.sort();
        Ok(b)
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("export serialises");
        s.push('\n');
        s
    }

    /// Put everything in the canonical order.
    /// Put in every file its records and activities point to, read from
    /// `store`, and sort: what an export holds besides the rows.
    pub fn fill_blobs(&mut self, store: &dyn super::CrmStore) -> Result<()> {
        let refs: Vec<_> = self
            .records
            .iter()
            .flat_map(|r| r.blobs())
            .chain(self.activities.iter().flat_map(|a| a.blobs()))
            .cloned()
            .collect();
        for r in refs {
            let data = store.blob(&r)?;
            self.blobs.insert(r.sha256.clone(), Bytes(data));
        }
        self.sort();
        Ok(())
    }

    pub fn sort(&mut self) {
        self.records.sort_by_key(|r| (r.kind(), r.id()));
        self.activities.sort_by_key(|a| a.id);
        self.tracking
            .sort_by(|a, b| (a.owner, &a.message_id).cmp(&(b.owner, &b.message_id)));
        self.address_books.sort_by_key(|e| (e.owner, e.id));
    }
}
