//! Moving a personal CRM into the team's: a whole export bundle written into
//! PostgreSQL in chunks (one transaction each, so 100,000 records neither hold
//! one huge transaction nor lose their progress), stamps kept, links checked
//! once everything is in, then every row read back and compared. Writing the
//! same bundle again changes nothing (rows are matched by id), so a copy that
//! stopped half-way is finished by running it again.

use super::book;
use super::db::Db;
use super::rows::{self, Outcome, R};
use super::PgStore;
use crate::store::export::ExportBundle;
use crate::store::{validate, ImportSummary, Result, StoreError};

/// Rows per transaction.
const CHUNK: usize = 500;

/// How a copy went, per kind of row.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopySummary {
    pub files: usize,
    pub records: ImportSummary,
    pub activities: ImportSummary,
    pub tracking: ImportSummary,
    pub address_books: ImportSummary,
    /// Rows that read back different from the source (0 for an exact copy).
    pub differing: usize,
}

fn tally(s: &mut ImportSummary, o: Outcome) {
    match o {
        Outcome::Created => s.created += 1,
        Outcome::Updated => s.updated += 1,
        Outcome::Unchanged => s.unchanged += 1,
    }
}

fn add(into: &mut ImportSummary, from: ImportSummary) {
    into.created += from.created;
    into.updated += from.updated;
    into.unchanged += from.unchanged;
}

impl PgStore {
    /// Write `bundle` into this store; `progress(stage, done, total)` after each chunk.
    pub fn copy_in(
        &self,
        bundle: &ExportBundle,
        progress: &mut dyn FnMut(&str, usize, usize),
    ) -> Result<CopySummary> {
        let records = validate::bundle(bundle)?;
        let mut sum = CopySummary::default();
        let total = bundle.blobs.len();
        for (i, (sha, data)) in bundle.blobs.iter().enumerate() {
            let r = crate::store::CrmStore::put_blob(self, data)?;
            if &r.sha256 != sha {
                return Err(StoreError::invalid(
                    "export",
                    format!("file {sha} does not match its content"),
                ));
            }
            sum.files += 1;
            progress("files", i + 1, total);
        }
        sum.records = self.chunks("records", &records, progress, |db, r| {
            Ok(rows::write_record(db, r, true, false)?.1)
        })?;
        sum.activities = self.chunks("activities", &bundle.activities, progress, |db, a| {
            Ok(rows::write_activity(db, a, true, false)?.1)
        })?;
        sum.address_books = self.chunks(
            "address-book entries",
            &bundle.address_books,
            progress,
            // A closure, not the fn item: the fn is not general over the
            // transaction's lifetime, which `chunks` needs.
            #[allow(clippy::redundant_closure)]
            |db, e| book::import_entry(db, e),
        )?;
        sum.tracking = self.chunks("tracking records", &bundle.tracking, progress, |db, t| {
            rows::write_tracking(db, t, false)
        })?;
        // Every link, now that every row is in.
        self.chunks("checking links (records)", &records, progress, |db, r| {
            rows::check_record_links(db, r).map(|_| Outcome::Unchanged)
        })?;
        self.chunks(
            "checking links (activities)",
            &bundle.activities,
            progress,
            |db, a| rows::check_activity_links(db, a).map(|_| Outcome::Unchanged),
        )?;
        self.chunks(
            "checking links (tracking)",
            &bundle.tracking,
            progress,
            |db, t| rows::check_tracking(db, t).map(|_| Outcome::Unchanged),
        )?;
        self.chunks(
            "checking links (address books)",
            &bundle.address_books,
            progress,
            |db, e| book::check_entry(db, e).map(|_| Outcome::Unchanged),
        )?;
        self.write(|db| rows::put_meta(db, "settings", &bundle.settings))?;
        sum.differing = self.count_differences(bundle, &records, progress)?;
        Ok(sum)
    }

    fn chunks<T>(
        &self,
        stage: &str,
        items: &[T],
        progress: &mut dyn FnMut(&str, usize, usize),
        mut each: impl FnMut(&mut Db<'_, postgres::Transaction<'_>>, &T) -> R<Outcome>,
    ) -> Result<ImportSummary> {
        let mut total = ImportSummary::default();
        let mut done = 0;
        for chunk in items.chunks(CHUNK) {
            // Counted inside: a retried transaction counts afresh.
            let s = self.write(|db| {
                let mut s = ImportSummary::default();
                for item in chunk {
                    tally(&mut s, each(db, item)?);
                }
                Ok(s)
            })?;
            add(&mut total, s);
            done += chunk.len();
            progress(stage, done, items.len());
        }
        Ok(total)
    }

    /// Rows of `bundle` that read back otherwise (or not at all).
    fn count_differences(
        &self,
        bundle: &ExportBundle,
        records: &[crate::store::Record],
        progress: &mut dyn FnMut(&str, usize, usize),
    ) -> Result<usize> {
        let mut differing = 0;
        let n = records.len();
        for (i, r) in records.iter().enumerate() {
            if crate::store::CrmStore::record(self, r.id())?.as_ref() != Some(r) {
                differing += 1;
            }
            if (i + 1) % CHUNK == 0 || i + 1 == n {
                progress("verifying records", i + 1, n);
            }
        }
        let n = bundle.activities.len();
        for (i, a) in bundle.activities.iter().enumerate() {
            if crate::store::CrmStore::activity(self, a.id)?.as_ref() != Some(a) {
                differing += 1;
            }
            if (i + 1) % CHUNK == 0 || i + 1 == n {
                progress("verifying activities", i + 1, n);
            }
        }
        for t in &bundle.tracking {
            if crate::store::CrmStore::tracking(self, t.owner, &t.message_id)?.as_ref() != Some(t) {
                differing += 1;
            }
        }
        for e in &bundle.address_books {
            if crate::store::CrmStore::address_book_entry(self, e.owner, e.id)?.as_ref() != Some(e)
            {
                differing += 1;
            }
        }
        Ok(differing)
    }
}
