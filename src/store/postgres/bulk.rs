//! The bulk side of `CrmStore` for [`PgStore`]: the whole CRM out (export, files
//! included) and in (an export bundle as one transaction, matched by id, stamps
//! kept, links checked after everything is in), and many records in chunks.

use super::book;
use super::rows::{self, Outcome};
use super::{PgError, PgStore};
use crate::store::export::ExportBundle;
use crate::store::model::Record;
use crate::store::{validate, CrmStore, ImportSummary, Result, StoreError};

/// Records per transaction in a bulk write.
const BULK_CHUNK: usize = 2_000;

impl PgStore {
    pub(super) fn export_all(&self) -> Result<ExportBundle> {
        let mut b = self.read(|db| {
            Ok(ExportBundle {
                records: db.docs("record", "SELECT doc FROM records ORDER BY id", &[])?,
                activities: db.docs("activity", "SELECT doc FROM activities ORDER BY id", &[])?,
                tracking: db.docs("tracking", "SELECT doc FROM tracking", &[])?,
                address_books: db.docs("address-book entry", "SELECT doc FROM book", &[])?,
                ..ExportBundle::default()
            })
        })?;
        b.settings = self.settings()?;
        b.fill_blobs(self)?;
        Ok(b)
    }

    pub(super) fn import_all(&self, bundle: &ExportBundle) -> Result<ImportSummary> {
        let records = validate::bundle(bundle)?;
        for (sha, data) in &bundle.blobs {
            if &self.put_blob(data)?.sha256 != sha {
                return Err(StoreError::invalid(
                    "export file",
                    format!("file {sha} does not match its content"),
                ));
            }
        }
        let needed: Vec<String> = records
            .iter()
            .flat_map(|r| r.blobs())
            .chain(bundle.activities.iter().flat_map(|a| a.blobs()))
            .map(|b| b.sha256.clone())
            .collect();
        let settings = bundle.settings.clone();
        self.write(|db| {
            let present: i64 = db
                .one(
                    "SELECT count(DISTINCT sha256) FROM blobs WHERE sha256 = ANY($1)",
                    &[&needed],
                )?
                .get(0);
            let mut distinct = needed.clone();
            distinct.sort();
            distinct.dedup();
            if present as usize != distinct.len() {
                for sha in &distinct {
                    if db
                        .opt("SELECT 1 FROM blobs WHERE sha256 = $1", &[sha])?
                        .is_none()
                    {
                        return rows::abort(StoreError::invalid(
                            "export file",
                            format!("file {sha} is referred to but not included"),
                        ));
                    }
                }
            }
            let mut s = ImportSummary::default();
            let mut count = |o: Outcome| match o {
                Outcome::Created => s.created += 1,
                Outcome::Updated => s.updated += 1,
                Outcome::Unchanged => s.unchanged += 1,
            };
            for r in &records {
                count(rows::write_record(db, r, true, false)?.1);
            }
            for a in &bundle.activities {
                count(rows::write_activity(db, a, true, false)?.1);
            }
            for e in &bundle.address_books {
                count(book::import_entry(db, e)?);
            }
            for t in &bundle.tracking {
                count(rows::write_tracking(db, t, false)?);
            }
            for r in &records {
                rows::check_record_links(db, r)?;
            }
            for a in &bundle.activities {
                rows::check_activity_links(db, a)?;
            }
            for t in &bundle.tracking {
                rows::check_tracking(db, t)?;
            }
            for e in &bundle.address_books {
                book::check_entry(db, e)?;
            }
            rows::put_meta(db, "settings", &settings)?;
            Ok(s)
        })
    }

    pub(super) fn put_records_chunked(
        &self,
        mut records: Vec<Record>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<()> {
        for r in &mut records {
            validate::record(r)?;
        }
        let mut done = 0;
        for chunk in records.chunks(BULK_CHUNK) {
            self.write(|db| {
                for r in chunk {
                    rows::write_record(db, r, true, true)?;
                }
                Ok::<_, PgError>(())
            })?;
            done += chunk.len();
            progress(done);
        }
        Ok(())
    }
}
