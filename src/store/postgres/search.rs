//! Full-text search in PostgreSQL over the `postings` table: the query's words
//! are folded by [`text::tokens`] (accents and case, as every row's tokens were
//! when written), each must be a prefix of a token of the row, kinds filter, and
//! the score is sled's: per word the best `weight × (4 exact | 2 prefix) + 2 if
//! exact`, summed; the best `limit` by score, then id.
//!
//! A single word, or words of one letter each ("O'B": "o" and "b", each a prefix
//! of a quarter of all postings), go to [`top`]: postings read best first, the
//! search stopping as soon as no row unread can enter the result, so "mul" or
//! "O'B" read a few dozen postings, not thousands grouped by row.
//!
//! Otherwise (or when [`top`] would read too deep), as sled's index does, the
//! search starts from the word that reaches the fewest postings (counted up to
//! [`REACH_CAP`], again up to [`REACH_CAP_WIDE`] when every word reaches the
//! first cap) and keeps only the rows every word reaches: a later word is looked
//! up by range (`postings_cover`) when it reaches fewer than [`PROBE_RATIO`]
//! times the candidates left (counted up to that), else only for those
//! candidates (`postings_id_token`, one index-only probe each). A one-letter word
//! ("5", every phone number) is thus never read whole. The first counts decide
//! that without counting again unless they were cut at a cap below what decides,
//! and the hits' titles come in one statement: each round trip, on a loaded
//! machine, waits for a CPU on both sides.

use std::collections::HashMap;
use uuid::Uuid;

use super::db::{decode, Db};
use super::rows::{code, kind_of, R};
use super::PgStore;
use crate::store::Record;
use crate::store::{text, Result, SearchHit, SearchQuery};

mod top;

/// The highest code point: `word || MAX` bounds every token that starts with `word`.
const MAX_CHAR: char = '\u{10FFFF}';
/// Postings counted per word to find the rarest (a cheap index-only count).
const REACH_CAP: i64 = 5_000;
/// The second count's cap, when every word reached the first.
const REACH_CAP_WIDE: i64 = 200_000;
/// A word is probed per candidate when it reaches this many times more postings
/// than there are candidates (a probe costs a few entries of a range scan).
const PROBE_RATIO: i64 = 4;

/// A hit before its title: id, kind code, score.
type Found = (Uuid, i16, i64);

pub fn search(store: &PgStore, query: &SearchQuery) -> Result<Vec<SearchHit>> {
    let mut words = text::tokens(&query.text);
    words.sort();
    words.dedup();
    // Drop words that are prefixes of other words: "jo john" means "john".
    let all = words.clone();
    words.retain(|w| !all.iter().any(|o| o != w && o.starts_with(w.as_str())));
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let kinds: Vec<i16> = query.kinds.iter().map(|k| code(*k)).collect();
    let limit = if query.limit == 0 { 20 } else { query.limit };
    let mut hits = store.read(|db| {
        let ends: Vec<String> = words.iter().map(|w| format!("{w}{MAX_CHAR}")).collect();
        let ranked = if words.len() == 1 || words.iter().all(|w| w.chars().count() == 1) {
            top::best(db, &words, &ends, &kinds, limit)?
        } else {
            None
        };
        let mut found = match ranked {
            Some(found) => found,
            None => every_match(db, &words, &ends, &kinds)?,
        };
        // The best `limit` by score, then id (as sled picks them).
        let best_first = |a: &Found, b: &Found| b.2.cmp(&a.2).then(a.0.cmp(&b.0));
        if found.len() > limit {
            found.select_nth_unstable_by(limit, best_first);
            found.truncate(limit);
        }
        found.sort_by(best_first);
        let ids: Vec<Uuid> = found.iter().map(|f| f.0).collect();
        let titles = titles(db, &ids)?;
        found
            .into_iter()
            .map(|(id, kind, score)| {
                Ok(SearchHit {
                    kind: kind_of(kind)?,
                    id,
                    title: titles
                        .iter()
                        .find(|(i, _)| *i == id)
                        .map(|(_, t)| t.clone())
                        .unwrap_or_default(),
                    score: u32::try_from(score).unwrap_or(u32::MAX),
                })
            })
            .collect::<R<Vec<_>>>()
    })?;
    // Equal scores: alphabetical, as a list would show them (as sled orders them).
    hits.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| text::fold(&a.title).cmp(&text::fold(&b.title)))
    });
    Ok(hits)
}

/// Every row that all `words` reach, scored: from the rarest word's postings,
/// the others by range or by probe.
fn every_match(
    db: &mut Db<'_, postgres::Client>,
    words: &[String],
    ends: &[String],
    kinds: &[i16],
) -> R<Vec<Found>> {
    // The cap the counts were taken with: a count below it is exact.
    let mut cap = REACH_CAP;
    let mut order: Vec<(i64, usize)> = if words.len() == 1 {
        vec![(0, 0)]
    } else {
        let mut reach = count(db, words, ends, cap)?;
        if reach.iter().all(|n| *n >= cap) {
            cap = REACH_CAP_WIDE;
            reach = count(db, words, ends, cap)?;
        }
        reach.into_iter().enumerate().map(|(i, n)| (n, i)).collect()
    };
    order.sort();
    let mut acc: HashMap<Uuid, (i16, i64)> = HashMap::new();
    for (n, &(reach, w)) in order.iter().enumerate() {
        let (word, end) = (&words[w], &ends[w]);
        if n == 0 {
            for r in db.query(
                "SELECT id, min(kind), max(weight * CASE WHEN token = $1 THEN 4 ELSE 2 END
                                      + CASE WHEN token = $1 THEN 2 ELSE 0 END)::bigint
                 FROM postings WHERE token >= $1 AND token < $2
                   AND (cardinality($3::smallint[]) = 0 OR kind = ANY($3))
                 GROUP BY id",
                &[word, end, &kinds],
            )? {
                acc.insert(r.get(0), (r.get(1), r.get(2)));
            }
            continue;
        }
        if acc.is_empty() {
            break;
        }
        let ids: Vec<Uuid> = acc.keys().copied().collect();
        let enough = i64::try_from(ids.len())
            .unwrap_or(i64::MAX)
            .saturating_mul(PROBE_RATIO);
        // The first counts decide unless the word reached their cap and the
        // cap is below what decides: only then count again (a round trip).
        let probe = if reach < cap || cap >= enough {
            reach >= enough
        } else {
            count(
                db,
                std::slice::from_ref(word),
                std::slice::from_ref(end),
                enough,
            )?
            .first()
            .is_some_and(|n| *n >= enough)
        };
        let rows = if probe {
            db.query(
                "SELECT id, max(weight * CASE WHEN token = $1 THEN 4 ELSE 2 END
                                + CASE WHEN token = $1 THEN 2 ELSE 0 END)::bigint
                 FROM postings WHERE id = ANY($3) AND token >= $1 AND token < $2
                 GROUP BY id",
                &[word, end, &ids],
            )?
        } else {
            db.query(
                "SELECT id, max(weight * CASE WHEN token = $1 THEN 4 ELSE 2 END
                                + CASE WHEN token = $1 THEN 2 ELSE 0 END)::bigint
                 FROM postings WHERE token >= $1 AND token < $2
                 GROUP BY id",
                &[word, end],
            )?
        };
        let best: HashMap<Uuid, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        acc.retain(|id, (_, s)| match best.get(id) {
            Some(b) => {
                *s += b;
                true
            }
            None => false,
        });
    }
    Ok(acc.into_iter().map(|(id, (k, s))| (id, k, s)).collect())
}

/// How many postings each word reaches, counted up to `cap` (an index-only scan
/// that stops there).
fn count(
    db: &mut Db<'_, postgres::Client>,
    words: &[String],
    ends: &[String],
    cap: i64,
) -> R<Vec<i64>> {
    Ok(db
        .query(
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM postings p
                      WHERE p.token >= w.word AND p.token < w.wend LIMIT $3) c)
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS w(word, wend, i)
             ORDER BY w.i",
            &[&words, &ends, &cap],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Titles of hits, for search results: a record's from its document, an
/// activity's subject (one statement, one round trip).
fn titles(db: &mut Db<'_, postgres::Client>, ids: &[Uuid]) -> R<Vec<(Uuid, String)>> {
    let mut out = Vec::with_capacity(ids.len());
    for row in db.query(
        "SELECT id, doc, NULL FROM records WHERE id = ANY($1)
         UNION ALL
         SELECT id, NULL, doc->>'subject' FROM activities WHERE id = ANY($1)",
        &[&ids],
    )? {
        let title = match row.get::<_, Option<postgres::types::Json<serde_json::Value>>>(1) {
            Some(_) => decode::<Record>("record", &row, 1)?.title(),
            None => row.get::<_, Option<String>>(2).unwrap_or_default(),
        };
        out.push((row.get(0), title));
    }
    Ok(out)
}
