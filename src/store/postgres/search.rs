//! Full-text search in PostgreSQL over the `postings` table: the query's words
//! are folded by [`text::tokens`] (accents and case, as every row's tokens were
//! when written), each must be a prefix of a token of the row (a range scan on
//! the token index), kinds filter, and the score is sled's: per word the best
//! `weight × (4 exact | 2 prefix) + 2 if exact`, summed.

use uuid::Uuid;

use super::db::{decode, Db};
use super::rows::{code, kind_of, R};
use super::PgStore;
use crate::store::Record;
use crate::store::{text, Result, SearchHit, SearchQuery};

/// The highest code point: `word || MAX` bounds every token that starts with `word`.
const MAX_CHAR: char = '\u{10FFFF}';

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
    let ends: Vec<String> = words.iter().map(|w| format!("{w}{MAX_CHAR}")).collect();
    let kinds: Vec<i16> = query.kinds.iter().map(|k| code(*k)).collect();
    let limit = if query.limit == 0 { 20 } else { query.limit } as i64;
    let n_words = words.len() as i64;
    let mut hits = store.read(|db| {
        let rows = db.query(
            "SELECT id, min(kind), sum(best)::bigint AS score FROM (
               SELECT p.id, p.kind, w.i,
                 max(p.weight * CASE WHEN p.token = w.word THEN 4 ELSE 2 END
                     + CASE WHEN p.token = w.word THEN 2 ELSE 0 END) AS best
               FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS w(word, wend, i)
               JOIN postings p ON p.token >= w.word AND p.token < w.wend
               WHERE cardinality($3::smallint[]) = 0 OR p.kind = ANY($3)
               GROUP BY p.id, p.kind, w.i
             ) s GROUP BY id HAVING count(*) = $4
             ORDER BY score DESC, id LIMIT $5",
            &[&words, &ends, &kinds, &n_words, &limit],
        )?;
        let found: Vec<(Uuid, i16, i64)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
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
                    score: score as u32,
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

/// Titles of hits, for search results.
fn titles(db: &mut Db<'_, postgres::Client>, ids: &[Uuid]) -> R<Vec<(Uuid, String)>> {
    let mut out = Vec::with_capacity(ids.len());
    for row in db.query("SELECT id, doc FROM records WHERE id = ANY($1)", &[&ids])? {
        let r: Record = decode("record", &row, 1)?;
        out.push((row.get(0), r.title()));
    }
    for row in db.query(
        "SELECT id, doc->>'subject' FROM activities WHERE id = ANY($1)",
        &[&ids],
    )? {
        out.push((
            row.get(0),
            row.get::<_, Option<String>>(1).unwrap_or_default(),
        ));
    }
    Ok(out)
}
