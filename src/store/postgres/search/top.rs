//! The best rows of a query without reading every row its words reach, for a
//! single word or words of one letter each ("O'B": "o" and "b", each a prefix of
//! a quarter of all postings): a threshold algorithm (Fagin's TA). Each word's
//! postings are read in the result's own order, best score first, then id
//! (`postings_initial` for a one-letter word; for a longer one the postings of
//! the word itself and those of longer tokens, from `postings_cover`, the best
//! of each picked up to the depth), to a depth; every row read gets its score
//! for every word by one probe of `postings_id_token`; the search stops once the
//! `limit`-th full match beats any row not yet read: such a row scores at most
//! the sum of each word's last score read, and on a tie its id comes after every
//! word's last id read (within a score a list is in id order). Else the depth
//! doubles. A word whose lists run out has had every row it reaches read, so
//! every match.
//!
//! Several words whose best scores are rarely met together would be read deep,
//! each row probed: past [`GIVE_UP`] postings a word, the caller reads every
//! match by range instead (the cost before this module).

use std::collections::{HashMap, HashSet};
use uuid::Uuid;

use super::super::db::Db;
use super::super::rows::R;
use super::Found;

/// Postings read from each word's lists in the first round of a query of
/// several words (one word needs `limit` rows: its list is the answer).
const FIRST_DEPTH: i64 = 64;
/// The deepest round of a query of several words before giving up.
const GIVE_UP: i64 = 1_024;

/// Which of a word's lists a posting came from: the first letter's, the word's
/// own token, longer tokens.
const INITIAL: i32 = 0;
const EXACT: i32 = 1;
const LONGER: i32 = 2;

/// A posting read: word (index), list, id, kind code, score.
type Read = (usize, i32, Uuid, i16, i64);

/// The full matches read, scored (among them the best `limit` of all), or
/// `None` when the words would have to be read too deep.
pub(super) fn best(
    db: &mut Db<'_, postgres::Client>,
    words: &[String],
    ends: &[String],
    kinds: &[i16],
    limit: usize,
) -> R<Option<Vec<Found>>> {
    let n = words.len();
    let wanted = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut depth = if n == 1 {
        wanted
    } else {
        FIRST_DEPTH.max(wanted.saturating_mul(2))
    };
    // Each row read: its kind and its total (`None`: a word misses it).
    let mut seen: HashMap<Uuid, (i16, Option<i64>)> = HashMap::new();
    let mut probed: HashSet<Uuid> = HashSet::new();
    loop {
        let rows = sorted(db, words, ends, depth, kinds)?;
        // Per word and list: postings read, and the last in the list's order.
        let mut got: HashMap<(usize, i32), (i64, (i64, Uuid))> = HashMap::new();
        let mut kind_of: HashMap<Uuid, i16> = HashMap::new();
        for (i, list, id, kind, score) in rows {
            let g = got.entry((i, list)).or_insert((0, (score, id)));
            g.0 += 1;
            if later((score, id), g.1) {
                g.1 = (score, id);
            }
            if !probed.contains(&id) {
                kind_of.insert(id, kind);
            }
        }
        // Rows read for the first time: their score for every word.
        let ask: Vec<Uuid> = kind_of.keys().copied().collect();
        if !ask.is_empty() {
            let mut scores: HashMap<Uuid, (usize, i64)> = HashMap::new();
            for r in db.query(
                "SELECT p.id,
                        max(CASE WHEN p.token = w.word THEN p.weight * 4 + 2 ELSE p.weight * 2 END)::bigint
                 FROM unnest($1::text[], $2::text[]) AS w(word, wend)
                 JOIN postings p ON p.id = ANY($3) AND p.token >= w.word AND p.token < w.wend
                 GROUP BY w.word, p.id",
                &[&words, &ends, &ask],
            )? {
                let e = scores.entry(r.get(0)).or_insert((0, 0));
                e.0 += 1;
                e.1 += r.get::<_, i64>(1);
            }
            for (id, kind) in kind_of {
                let total = scores.get(&id).filter(|(k, _)| *k == n).map(|(_, s)| *s);
                seen.insert(id, (kind, total));
            }
            probed.extend(ask);
        }
        let mut full: Vec<Found> = seen
            .iter()
            .filter_map(|(id, (k, t))| Some((*id, *k, (*t)?)))
            .collect();
        // Each word: where an unread posting may come (the earliest last read of
        // its lists that may hold more); a word with none has been read whole.
        let mut open: Vec<(i64, Uuid)> = Vec::with_capacity(n);
        for i in 0..n {
            let first = got
                .iter()
                .filter(|((w, _), (count, _))| *w == i && *count >= depth)
                .map(|(_, (_, last))| *last)
                .reduce(|a, b| if later(a, b) { b } else { a });
            match first {
                Some(f) => open.push(f),
                None => return Ok(Some(full)),
            }
        }
        if limit > 0 && full.len() >= limit {
            let best_first = |a: &Found, b: &Found| b.2.cmp(&a.2).then(a.0.cmp(&b.0));
            full.select_nth_unstable_by(limit - 1, best_first);
            let kth = full[limit - 1];
            let bound: i64 = open.iter().map(|(s, _)| s).sum();
            let after = open.iter().map(|(_, id)| *id).max();
            if kth.2 > bound || (kth.2 == bound && after.is_some_and(|a| kth.0 <= a)) {
                return Ok(Some(full));
            }
        }
        if n > 1 && depth >= GIVE_UP {
            return Ok(None);
        }
        depth = depth.saturating_mul(2);
    }
}

/// Is `a` after `b` in a list's order (score down, then id up)?
fn later(a: (i64, Uuid), b: (i64, Uuid)) -> bool {
    a.0 < b.0 || (a.0 == b.0 && a.1 > b.1)
}

/// Each word's first `depth` postings of each of its lists, best first:
/// (word, list, id, kind, score). The first-letter expressions are the index's,
/// spelled alike (the planner matches them as text).
fn sorted(
    db: &mut Db<'_, postgres::Client>,
    words: &[String],
    ends: &[String],
    depth: i64,
    kinds: &[i16],
) -> R<Vec<Read>> {
    let rows = db.query(
        "WITH w AS (SELECT * FROM unnest($1::text[], $2::text[])
                    WITH ORDINALITY AS w(word, wend, i))
         SELECT w.i, 0, p.id, p.kind, p.score::bigint FROM w CROSS JOIN LATERAL (
             SELECT id, kind, CASE WHEN length(token) = 1 THEN weight * 4 + 2 ELSE weight * 2 END AS score
             FROM postings
             WHERE left(token, 1) = w.word AND (cardinality($4::smallint[]) = 0 OR kind = ANY($4))
             ORDER BY CASE WHEN length(token) = 1 THEN weight * 4 + 2 ELSE weight * 2 END DESC, id
             LIMIT $3) p
         WHERE length(w.word) = 1
         UNION ALL
         SELECT w.i, 1, p.id, p.kind, (p.weight * 4 + 2)::bigint FROM w CROSS JOIN LATERAL (
             SELECT id, kind, weight FROM postings
             WHERE token = w.word AND (cardinality($4::smallint[]) = 0 OR kind = ANY($4))
             ORDER BY weight DESC, id LIMIT $3) p
         WHERE length(w.word) > 1
         UNION ALL
         SELECT w.i, 2, p.id, p.kind, (p.weight * 2)::bigint FROM w CROSS JOIN LATERAL (
             SELECT id, kind, weight FROM postings
             WHERE token > w.word AND token < w.wend
               AND (cardinality($4::smallint[]) = 0 OR kind = ANY($4))
             ORDER BY weight DESC, id LIMIT $3) p
         WHERE length(w.word) > 1",
        &[&words, &ends, &depth, &kinds],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let i = usize::try_from(r.get::<_, i64>(0) - 1).unwrap_or(0);
            let list: i32 = r.get(1);
            debug_assert!([INITIAL, EXACT, LONGER].contains(&list));
            (i, list, r.get(2), r.get(3), r.get(4))
        })
        .collect())
}
