//! The full-text postings that searches run on, in memory. Scanning thousands of
//! sled entries per query word costs ~2 µs each; the same postings in a sorted map,
//! naming documents by number and scored into arrays, cost nanoseconds. They are not kept in sled: 1.5 million postings for 100,000
//! contacts made three quarters of the store's size on disk (sled spends ~120 bytes
//! on each entry) and took seconds to load at every start. The index follows every
//! committed write (the store applies each transaction's posting changes after
//! commit, under its write lock, so it never runs ahead or behind), is saved to a
//! snapshot file when the store closes, and loaded from it at the next open when
//! the snapshot is known current; otherwise (a crash, an older store) it is rebuilt
//! from the records and activities, which are the durable source.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use uuid::Uuid;

use super::index::decode;
use crate::store::activity::Activity;
use crate::store::error::StoreError;
use crate::store::model::{Kind, Record};
use crate::store::text::Document;

/// The first bytes of a snapshot file (format version 2: postings name their
/// document by number, from a table of documents written first). A version 1
/// file (16-byte ids in every posting) is not read: the index is rebuilt from
/// the rows once and saved in this format.
const MAGIC: &[u8] = b"crmproxy-search-2\n";
/// Bytes of a document in the table (id, kind code) and of a posting (number, weight).
const DOC_BYTES: usize = 17;
const POSTING_BYTES: usize = 5;

/// Reads a snapshot front to back; `None` when fewer bytes are left than asked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
}

/// One posting change made by a committed transaction.
#[derive(Debug, Clone)]
pub(crate) struct PostingChange {
    pub token: String,
    pub id: Uuid,
    pub kind: Kind,
    pub weight: u8,
    pub add: bool,
}

/// A posting names its document by number (4 bytes, not a 16-byte id), so a
/// search scores into arrays indexed by document instead of hash maps.
#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: u32,
    weight: u8,
}

/// Per document, while one search runs: how many of its words (in the order
/// they are looked at) the document matched, the sum of their scores, and the
/// best score of the word being looked at.
#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    matched: u32,
    total: u32,
    best: u32,
}

#[derive(Debug, Default)]
pub(crate) struct MemIndex {
    postings: BTreeMap<Box<str>, Vec<Posting>>,
    /// Each document's id and kind, by number. A number is never reused while
    /// the index lives (a deleted document keeps its slot, 17 bytes, until the
    /// next load), so a posting never names the wrong document.
    docs: Vec<(Uuid, Kind)>,
    numbers: HashMap<Uuid, u32>,
    /// Score arrays of finished searches, for the next ones (zeroed where used):
    /// a million-document store would otherwise allocate and clear megabytes
    /// per search.
    scratch: Mutex<Vec<Vec<Slot>>>,
}

impl MemIndex {
    /// Build from the rows themselves: every record and activity's [`Document`].
    pub fn rebuild(records: &sled::Tree, activities: &sled::Tree) -> Result<MemIndex, StoreError> {
        let mut index = MemIndex::default();
        for item in records.iter() {
            let (_, v) = item?;
            let r: Record = decode("record", &v)?;
            index.add_document(&Document::of_record(&r), r.id(), r.kind());
        }
        for item in activities.iter() {
            let (_, v) = item?;
            let a: Activity = decode("activity", &v)?;
            index.add_document(&Document::of_activity(&a), a.id.uuid(), a.kind());
        }
        Ok(index)
    }

    fn add_document(&mut self, doc: &Document, id: Uuid, kind: Kind) {
        for (token, weight) in &doc.0 {
            self.insert(token, id, kind, *weight);
        }
    }

    /// The number of document `id`, given one if it has none yet (`None` past
    /// four billion documents, which no store here reaches).
    fn number(&mut self, id: Uuid, kind: Kind) -> Option<u32> {
        if let Some(n) = self.numbers.get(&id) {
            return Some(*n);
        }
        let n = u32::try_from(self.docs.len()).ok()?;
        self.docs.push((id, kind));
        self.numbers.insert(id, n);
        Some(n)
    }

    /// The snapshot file's bytes: `MAGIC`, the 16-byte stamp that the store's
    /// `meta` tree must hold for the snapshot to be current, the documents (their
    /// count as u32, then each id and kind code, by number), the number of tokens
    /// (u32, so a file cut short at a token's end is not taken for a whole one),
    /// then per token its length (u16), its bytes, its posting count (u32) and the
    /// postings (document number as u32, weight). Loading it is a table read,
    /// not an id lookup per posting.
    pub fn snapshot(&self, stamp: &[u8; 16]) -> Vec<u8> {
        let postings: usize = self.postings.values().map(Vec::len).sum();
        let mut out = Vec::with_capacity(
            28 + self.docs.len() * DOC_BYTES + self.postings.len() * 16 + postings * POSTING_BYTES,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(stamp);
        // `number` never lets the table grow past u32.
        out.extend_from_slice(&(self.docs.len() as u32).to_be_bytes());
        for (id, kind) in &self.docs {
            out.extend_from_slice(id.as_bytes());
            out.push(kind.code());
        }
        // Tokens are cut to a few dozen bytes by `text::tokens`; a longer one could
        // not be written, so it is left out rather than corrupting the file.
        let written: Vec<_> = self
            .postings
            .iter()
            .filter(|(t, l)| t.len() <= u16::MAX as usize && u32::try_from(l.len()).is_ok())
            .collect();
        out.extend_from_slice(&(written.len() as u32).to_be_bytes());
        for (token, list) in written {
            let len = token.len() as u16;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(token.as_bytes());
            out.extend_from_slice(&(list.len() as u32).to_be_bytes());
            for p in list {
                out.extend_from_slice(&p.doc.to_be_bytes());
                out.push(p.weight);
            }
        }
        out
    }

    /// Read a snapshot written by [`MemIndex::snapshot`] with this `stamp`; `None`
    /// for any other file (another stamp or format, truncated, damaged): then the
    /// caller rebuilds.
    pub fn from_snapshot(bytes: &[u8], stamp: &[u8; 16]) -> Option<MemIndex> {
        let mut r = Reader(bytes);
        if r.take(MAGIC.len())? != MAGIC || r.take(16)? != stamp {
            return None;
        }
        let mut index = MemIndex::default();
        let docs = u32::from_be_bytes(r.take(4)?.try_into().ok()?) as usize;
        // A count the file cannot hold is damage (checked before allocating).
        let table = r.take(docs.checked_mul(DOC_BYTES)?)?;
        index.docs.reserve_exact(docs);
        index.numbers.reserve(docs);
        for (n, d) in table.chunks_exact(DOC_BYTES).enumerate() {
            let id = Uuid::from_slice(&d[..16]).ok()?;
            index.docs.push((id, Kind::from_code(d[16])?));
            // An id twice in the table: not a file this code wrote.
            if index.numbers.insert(id, n as u32).is_some() {
                return None;
            }
        }
        let tokens = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
        for _ in 0..tokens {
            let len = u16::from_be_bytes(r.take(2)?.try_into().ok()?) as usize;
            let token = std::str::from_utf8(r.take(len)?).ok()?;
            let count = u32::from_be_bytes(r.take(4)?.try_into().ok()?) as usize;
            let body = r.take(count.checked_mul(POSTING_BYTES)?)?;
            let mut list = Vec::with_capacity(count);
            for c in body.chunks_exact(POSTING_BYTES) {
                let doc = u32::from_be_bytes(c[..4].try_into().ok()?);
                if doc as usize >= docs {
                    return None;
                }
                list.push(Posting { doc, weight: c[4] });
            }
            if !list.is_empty() {
                index.postings.insert(token.into(), list);
            }
        }
        // Bytes after the last token: not a file this code wrote.
        r.0.is_empty().then_some(index)
    }

    /// Add a posting. The store never adds a (token, id) pair twice: an update
    /// removes the old postings first, as the sled keys are unique.
    pub fn insert(&mut self, token: &str, id: Uuid, kind: Kind, weight: u8) {
        let Some(doc) = self.number(id, kind) else {
            tracing::error!(%id, "the search index is full; this row is not searchable");
            return;
        };
        let p = Posting { doc, weight };
        match self.postings.get_mut(token) {
            Some(list) => list.push(p),
            None => {
                self.postings.insert(token.into(), vec![p]);
            }
        }
    }

    pub fn remove(&mut self, token: &str, id: Uuid) {
        let Some(&doc) = self.numbers.get(&id) else {
            return;
        };
        if let Some(list) = self.postings.get_mut(token) {
            list.retain(|p| p.doc != doc);
            if list.is_empty() {
                self.postings.remove(token);
            }
        }
    }

    pub fn apply(&mut self, changes: &[PostingChange]) {
        for c in changes {
            if c.add {
                self.insert(&c.token, c.id, c.kind, c.weight);
            } else {
                self.remove(&c.token, c.id);
            }
        }
    }

    fn range<'a>(
        &'a self,
        word: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Vec<Posting>)> + 'a {
        self.postings
            .range::<str, _>((std::ops::Bound::Included(word), std::ops::Bound::Unbounded))
            .take_while(move |(t, _)| t.starts_with(word))
            .map(|(t, l)| (&**t, l))
    }

    /// How many postings a word (as a prefix) reaches.
    fn reach(&self, word: &str) -> usize {
        self.range(word).map(|(_, l)| l.len()).sum()
    }

    /// Ids matching every word (each as a prefix), with their kind and score.
    /// Exact words beat prefixes; field weights rank names above companies, etc.
    /// A word's score for a document is its best token's; the words' scores add.
    pub fn search(&self, words: &[String], kinds: &[Kind]) -> Vec<(Uuid, Kind, u32)> {
        let mut order: Vec<&String> = words.iter().collect();
        order.sort_by_key(|w| self.reach(w));
        let mut slots = self
            .scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        slots.resize(self.docs.len(), Slot::default());
        // The documents the first word reaches: every later word only looks at
        // these, and they are the slots to clear afterwards.
        let mut first: Vec<u32> = Vec::new();
        let mut touched: Vec<u32> = Vec::new();
        for (round, word) in order.iter().enumerate() {
            let round = u32::try_from(round).unwrap_or(u32::MAX);
            let next = round.saturating_add(1);
            touched.clear();
            for (token, list) in self.range(word) {
                let exact = token.len() == word.len();
                for p in list {
                    let slot = &mut slots[p.doc as usize];
                    let s = u32::from(p.weight) * if exact { 4 } else { 2 } + u32::from(exact) * 2;
                    if slot.matched == round {
                        if round == 0
                            && !kinds.is_empty()
                            && !kinds.contains(&self.docs[p.doc as usize].1)
                        {
                            continue;
                        }
                        // The first of this word's tokens to reach the document.
                        slot.matched = next;
                        slot.best = s;
                        touched.push(p.doc);
                    } else if slot.matched == next {
                        slot.best = slot.best.max(s);
                    }
                }
            }
            for &d in &touched {
                let slot = &mut slots[d as usize];
                slot.total = slot.total.saturating_add(slot.best);
            }
            if round == 0 {
                first.clone_from(&touched);
            }
            if touched.is_empty() {
                break;
            }
        }
        // Those the last word reached matched every word before it.
        let found = if order.is_empty() {
            Vec::new()
        } else {
            touched
                .iter()
                .map(|&d| {
                    let (id, kind) = self.docs[d as usize];
                    (id, kind, slots[d as usize].total)
                })
                .collect()
        };
        for &d in &first {
            slots[d as usize] = Slot::default();
        }
        self.scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(slots);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MemIndex {
        let mut index = MemIndex::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        index.insert("zoe", a, Kind::Contact, 8);
        index.insert("muller", a, Kind::Contact, 8);
        index.insert("muller", b, Kind::Account, 4);
        index.insert("zürich", b, Kind::Account, 2);
        index
    }

    fn hits(index: &MemIndex, words: &[&str]) -> Vec<(Uuid, Kind, u32)> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let mut found = index.search(&words, &[]);
        found.sort();
        found
    }

    #[test]
    fn a_snapshot_reads_back_as_the_same_index() {
        let index = sample();
        let stamp = *Uuid::new_v4().as_bytes();
        let back = MemIndex::from_snapshot(&index.snapshot(&stamp), &stamp).unwrap();
        for q in [&["mul"][..], &["zoe", "muller"], &["zü"], &["nothing"]] {
            assert_eq!(hits(&back, q), hits(&index, q), "{q:?}");
        }
        assert_eq!(back.postings.len(), index.postings.len());
    }

    /// A document of the test: its id, kind and (token, weight) pairs.
    type Doc<'a> = (Uuid, Kind, Vec<(&'a str, u8)>);

    /// What a search must find, worked out the slow way: per word the best
    /// score of the document's tokens it prefixes, summed; every word must match.
    fn by_hand(docs: &[Doc<'_>], words: &[&str], kinds: &[Kind]) -> Vec<(Uuid, Kind, u32)> {
        let mut out = Vec::new();
        for (id, kind, tokens) in docs {
            if !kinds.is_empty() && !kinds.contains(kind) {
                continue;
            }
            let per_word: Option<Vec<u32>> = words
                .iter()
                .map(|w| {
                    tokens
                        .iter()
                        .filter(|(t, _)| t.starts_with(w))
                        .map(|(t, wt)| {
                            let exact = t.len() == w.len();
                            u32::from(*wt) * if exact { 4 } else { 2 } + u32::from(exact) * 2
                        })
                        .max()
                })
                .collect();
            if let Some(scores) = per_word {
                out.push((*id, *kind, scores.iter().sum()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn search_scores_every_word_by_its_best_token_and_keeps_only_full_matches() {
        let tokens = [
            "o", "obrien", "oslo", "omar", "b", "bauer", "brien", "5", "55", "555",
        ];
        let kinds = [Kind::Contact, Kind::Account, Kind::Lead];
        let mut docs = Vec::new();
        let mut index = MemIndex::default();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let (id, kind) = (Uuid::new_v4(), kinds[(next() % 3) as usize]);
            let mut mine: Vec<(&str, u8)> = Vec::new();
            for t in tokens {
                if next() % 3 == 0 {
                    mine.push((t, [2, 3, 6, 10][(next() % 4) as usize]));
                }
            }
            for (t, w) in &mine {
                index.insert(t, id, kind, *w);
            }
            docs.push((id, kind, mine));
        }
        // Removed documents and postings are never found.
        for (id, _, mine) in docs.iter_mut().take(40) {
            if let Some((t, _)) = mine.pop() {
                index.remove(t, *id);
            }
        }
        let queries: [&[&str]; 7] = [
            &["o"],
            &["o", "b"],
            &["b", "o", "5"],
            &["obrien", "55"],
            &["os", "bauer", "brien", "555"],
            &["nothing", "o"],
            &["5", "o", "bauer"],
        ];
        for q in queries {
            for k in [&[][..], &[Kind::Contact], &[Kind::Account, Kind::Lead]] {
                let words: Vec<String> = q.iter().map(|w| w.to_string()).collect();
                let mut found = index.search(&words, k);
                found.sort();
                assert_eq!(found, by_hand(&docs, q, k), "{q:?} {k:?}");
            }
        }
    }

    #[test]
    fn another_stamp_or_a_damaged_snapshot_is_refused_not_trusted() {
        let index = sample();
        let stamp = *Uuid::new_v4().as_bytes();
        let bytes = index.snapshot(&stamp);
        assert!(MemIndex::from_snapshot(&bytes, Uuid::new_v4().as_bytes()).is_none());
        // Every truncation is refused (none panics), and so is anything appended.
        for cut in 0..bytes.len() {
            assert!(
                MemIndex::from_snapshot(&bytes[..cut], &stamp).is_none(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(MemIndex::from_snapshot(&longer, &stamp).is_none());
        // A document count, and a posting count, far beyond the file.
        let mut huge = bytes[..MAGIC.len() + 16].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(MemIndex::from_snapshot(&huge, &stamp).is_none());
        let mut huge = bytes[..MAGIC.len() + 16].to_vec();
        huge.extend_from_slice(&0u32.to_be_bytes());
        huge.extend_from_slice(&1u32.to_be_bytes());
        huge.extend_from_slice(&3u16.to_be_bytes());
        huge.extend_from_slice(b"zoe");
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(MemIndex::from_snapshot(&huge, &stamp).is_none());
        // An unknown kind code in the document table.
        let mut bad = bytes.clone();
        let kind_at = MAGIC.len() + 16 + 4 + 16;
        bad[kind_at] = 0xEE;
        assert!(MemIndex::from_snapshot(&bad, &stamp).is_none());
        // A posting naming a document past the table.
        let docs = index.docs.len();
        let first_posting = MAGIC.len() + 16 + 4 + docs * DOC_BYTES + 4 + 2;
        let token_len = u16::from_be_bytes([bytes[first_posting - 2], bytes[first_posting - 1]]);
        let at = first_posting + token_len as usize + 4;
        let mut bad = bytes.clone();
        bad[at..at + 4].copy_from_slice(&(docs as u32).to_be_bytes());
        assert!(MemIndex::from_snapshot(&bad, &stamp).is_none());
        // A version 1 file (the magic of the earlier format) is rebuilt, not read.
        let mut v1 = bytes.clone();
        v1[..MAGIC.len()].copy_from_slice(b"crmproxy-search-1\n");
        assert!(MemIndex::from_snapshot(&v1, &stamp).is_none());
    }

    mod store {
        use crate::store::sled::SledStore;
        use crate::store::*;
        use std::sync::atomic::Ordering;

        fn contact(first: &str, last: &str) -> Record {
            Record::Contact(Contact {
                id: ContactId::new(),
                stamps: Stamps::default(),
                first_name: first.into(),
                last_name: last.into(),
                full_name: String::new(),
                job_title: String::new(),
                department: String::new(),
                company: String::new(),
                account: None,
                emails: vec![],
                business_phone: String::new(),
                mobile_phone: String::new(),
                address: PostalAddress::default(),
                categories: Vec::new(),
            })
        }

        fn finds(s: &SledStore, text: &str) -> usize {
            s.search(&SearchQuery {
                text: text.into(),
                ..Default::default()
            })
            .unwrap()
            .len()
        }

        #[test]
        fn a_closed_store_opens_with_its_snapshot_and_a_damaged_one_is_rebuilt() {
            let d = tempfile::tempdir().unwrap();
            {
                let s = SledStore::open(d.path()).unwrap();
                s.put_record(contact("Zoë", "Müller")).unwrap();
                s.close().unwrap();
            }
            let file = d.path().join(super::super::super::SEARCH_SNAPSHOT);
            assert!(file.exists());
            {
                let s = SledStore::open(d.path()).unwrap();
                s.warm_up().unwrap();
                assert!(
                    s.snapshot_current.load(Ordering::SeqCst),
                    "read from the snapshot"
                );
                assert_eq!(finds(&s, "zoe mull"), 1);
                // A write makes the snapshot old; closing saves a new one.
                s.put_record(contact("Ada", "Lovelace")).unwrap();
                assert!(!s.snapshot_current.load(Ordering::SeqCst));
            }
            // Damaged on disk: rebuilt from the records, nothing lost, no error.
            let mut bytes = std::fs::read(&file).unwrap();
            bytes.truncate(bytes.len() - 3);
            std::fs::write(&file, bytes).unwrap();
            let s = SledStore::open(d.path()).unwrap();
            assert_eq!(finds(&s, "lovelace"), 1);
            assert_eq!(finds(&s, "müller"), 1);
            assert!(!s.snapshot_current.load(Ordering::SeqCst), "rebuilt");
        }
    }
}
