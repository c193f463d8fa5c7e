//! The in-memory copy of the full-text postings that searches run on. Scanning
//! thousands of sled entries per query word costs ~2 µs each; the same postings
//! in a sorted map cost nanoseconds. The sled `text` tree stays the durable
//! source: this copy is loaded from it on first use and then follows every
//! committed write (the store applies each transaction's posting changes after
//! commit, under its write lock, so the copy never runs ahead or behind).

use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

use crate::store::error::StoreError;
use crate::store::model::Kind;

/// One posting change made by a committed transaction.
#[derive(Debug, Clone)]
pub(crate) struct PostingChange {
    pub token: String,
    pub id: Uuid,
    pub kind: Kind,
    pub weight: u8,
    pub add: bool,
}

#[derive(Debug, Clone, Copy)]
struct Posting {
    id: Uuid,
    kind: Kind,
    weight: u8,
}

#[derive(Debug, Default)]
pub(crate) struct MemIndex {
    postings: BTreeMap<Box<str>, Vec<Posting>>,
}

impl MemIndex {
    /// Load from the sled `text` tree (keys `token 0 id`, values `[kind, weight]`).
    pub fn load(text: &sled::Tree) -> Result<MemIndex, StoreError> {
        let mut index = MemIndex::default();
        for item in text.iter() {
            let (k, v) = item?;
            if k.len() < 17 || v.len() != 2 {
                return Err(StoreError::Corrupt(
                    "a search index entry is malformed".into(),
                ));
            }
            let token = std::str::from_utf8(&k[..k.len() - 17])
                .map_err(|_| StoreError::Corrupt("a search token is not UTF-8".into()))?;
            let id = Uuid::from_slice(&k[k.len() - 16..])
                .map_err(|_| StoreError::Corrupt("bad id in search index".into()))?;
            let Some(kind) = Kind::from_code(v[0]) else {
                continue;
            };
            index.insert(token, id, kind, v[1]);
        }
        Ok(index)
    }

    /// Add a posting. The store never adds a (token, id) pair twice: an update
    /// removes the old postings first, as the sled keys are unique.
    pub fn insert(&mut self, token: &str, id: Uuid, kind: Kind, weight: u8) {
        let p = Posting { id, kind, weight };
        match self.postings.get_mut(token) {
            Some(list) => list.push(p),
            None => {
                self.postings.insert(token.into(), vec![p]);
            }
        }
    }

    pub fn remove(&mut self, token: &str, id: Uuid) {
        if let Some(list) = self.postings.get_mut(token) {
            list.retain(|p| p.id != id);
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
    pub fn search(&self, words: &[String], kinds: &[Kind]) -> Vec<(Uuid, Kind, u32)> {
        let mut order: Vec<&String> = words.iter().collect();
        order.sort_by_key(|w| self.reach(w));
        let Some((first, rest)) = order.split_first() else {
            return Vec::new();
        };
        let score = |token: &str, word: &str, weight: u8| {
            let exact = token.len() == word.len();
            weight as u32 * if exact { 4 } else { 2 } + u32::from(exact) * 2
        };
        let mut acc: HashMap<Uuid, (Kind, u32)> = HashMap::new();
        for (token, list) in self.range(first) {
            for p in list {
                if kinds.is_empty() || kinds.contains(&p.kind) {
                    let e = acc.entry(p.id).or_insert((p.kind, 0));
                    e.1 = e.1.max(score(token, first, p.weight));
                }
            }
        }
        for w in rest {
            if acc.is_empty() {
                break;
            }
            let mut best: HashMap<Uuid, u32> = HashMap::new();
            for (token, list) in self.range(w) {
                for p in list {
                    if acc.contains_key(&p.id) {
                        let s = score(token, w, p.weight);
                        let e = best.entry(p.id).or_insert(0);
                        *e = (*e).max(s);
                    }
                }
            }
            acc.retain(|id, (_, s)| match best.get(id) {
                Some(b) => {
                    *s += b;
                    true
                }
                None => false,
            });
        }
        acc.into_iter().map(|(id, (k, s))| (id, k, s)).collect()
    }
}
