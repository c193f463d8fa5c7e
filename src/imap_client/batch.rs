//! Commands over many UIDs at once, for a backlog (the gateway after a restart,
//! a burst of new mail): their sizes, the whole messages in one `UID FETCH`
//! (always `BODY.PEEK[]`: never `\Seen`), and keywords in one `UID STORE`. One
//! round trip per batch instead of one per message; the caller bounds a batch's
//! bytes with the sizes before fetching it ([`size_batches`]).

use std::num::NonZeroU32;

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName,
};
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::client::{ClientError, ImapClient};
use super::mailbox::fetch_uid;

/// A UID set for these UIDs, runs of consecutive UIDs written as ranges
/// (`4:9,12`), so a long backlog stays a short command.
pub fn uid_set(uids: &[u32]) -> Result<SequenceSet, ClientError> {
    let mut sorted: Vec<u32> = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let nz = |n: u32| NonZeroU32::new(n).ok_or(ClientError::Unsendable("UID 0"));
    let mut runs: Vec<Sequence> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && end.checked_add(1) == Some(sorted[i + 1]) {
            i += 1;
            end = sorted[i];
        }
        runs.push(if start == end {
            Sequence::Single(SeqOrUid::Value(nz(start)?))
        } else {
            Sequence::Range(SeqOrUid::Value(nz(start)?), SeqOrUid::Value(nz(end)?))
        });
        i += 1;
    }
    let runs = Vec1::try_from(runs).map_err(|_| ClientError::Unsendable("an empty UID set"))?;
    Ok(SequenceSet(runs))
}

/// Splits UIDs (with their sizes) into batches of at most `max_messages`
/// messages and `max_bytes` bytes; a message larger than `max_bytes` is a batch
/// of its own. Order is kept.
pub fn size_batches(sized: &[(u32, u32)], max_messages: usize, max_bytes: u64) -> Vec<Vec<u32>> {
    let mut out: Vec<Vec<u32>> = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    let mut bytes = 0u64;
    for &(uid, size) in sized {
        let size = u64::from(size);
        let full = current.len() >= max_messages || bytes.saturating_add(size) > max_bytes;
        if !current.is_empty() && full {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(uid);
        bytes = bytes.saturating_add(size);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

impl ImapClient {
    /// The RFC822.SIZE of each of these messages that still exists, by UID order
    /// of the server's answers.
    pub async fn fetch_sizes(&mut self, uids: &[u32]) -> Result<Vec<(u32, u32)>, ClientError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let items = MacroOrMessageDataItemNames::MessageDataItemNames(vec![
            MessageDataItemName::Uid,
            MessageDataItemName::Rfc822Size,
        ]);
        let body = CommandBody::fetch(uid_set(uids)?, items, true)
            .map_err(|_| ClientError::Unsendable("a UID set"))?;
        let r = self.ok("UID FETCH", body).await?;
        let mut out = Vec::with_capacity(uids.len());
        for u in &r.untagged {
            if let Some(Response::Data(Data::Fetch { items, .. })) = u.decode() {
                let mut uid = None;
                let mut size = None;
                for i in items.as_ref() {
                    match i {
                        MessageDataItem::Uid(n) => uid = Some(n.get()),
                        MessageDataItem::Rfc822Size(n) => size = Some(*n),
                        _ => {}
                    }
                }
                // Only what was asked: a server may add FETCH responses of its own.
                if let (Some(uid), Some(size)) = (uid.filter(|u| uids.contains(u)), size) {
                    out.push((uid, size));
                }
            }
        }
        out.sort_unstable();
        out.dedup_by_key(|(u, _)| *u);
        Ok(out)
    }

    /// These whole messages (`BODY.PEEK[]`) in one command, in UID order; a
    /// message expunged meanwhile is simply absent.
    pub async fn fetch_raw_many(
        &mut self,
        uids: &[u32],
    ) -> Result<Vec<(u32, Vec<u8>)>, ClientError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let items = MacroOrMessageDataItemNames::MessageDataItemNames(vec![
            MessageDataItemName::Uid,
            MessageDataItemName::BodyExt {
                section: None,
                partial: None,
                peek: true,
            },
        ]);
        let body = CommandBody::fetch(uid_set(uids)?, items, true)
            .map_err(|_| ClientError::Unsendable("a UID set"))?;
        let r = self.ok("UID FETCH", body).await?;
        let mut out = Vec::with_capacity(uids.len());
        for u in r.untagged {
            if u.literals.is_empty() {
                continue;
            }
            // Only what was asked: a server may add FETCH responses of its own.
            if let Some(uid) = fetch_uid(&u).filter(|n| uids.contains(n)) {
                if let Some(raw) = u.into_literal(0) {
                    out.push((uid, raw));
                }
            }
        }
        out.sort_unstable_by_key(|(u, _)| *u);
        out.dedup_by_key(|(u, _)| *u);
        Ok(out)
    }

    /// Add these keywords to all these messages (`UID STORE … +FLAGS.SILENT`).
    pub async fn add_keywords_many(
        &mut self,
        uids: &[u32],
        keywords: &[&str],
    ) -> Result<(), ClientError> {
        if uids.is_empty() || keywords.is_empty() {
            return Ok(());
        }
        let flags = keywords
            .iter()
            .map(|k| Flag::try_from(*k).map_err(|_| ClientError::Unsendable("a keyword")))
            .collect::<Result<Vec<_>, _>>()?;
        let body = CommandBody::store(
            uid_set(uids)?,
            StoreType::Add,
            StoreResponse::Silent,
            flags,
            true,
        )
        .map_err(|_| ClientError::Unsendable("a UID set"))?;
        self.ok("UID STORE", body).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(uids: &[u32]) -> String {
        uid_set(uids)
            .unwrap()
            .0
            .as_ref()
            .iter()
            .map(|s| match s {
                Sequence::Single(SeqOrUid::Value(n)) => n.to_string(),
                Sequence::Range(SeqOrUid::Value(a), SeqOrUid::Value(b)) => format!("{a}:{b}"),
                other => panic!("unexpected {other:?}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn consecutive_uids_become_ranges() {
        assert_eq!(shown(&[4, 5, 6, 7, 8, 9, 12]), "4:9,12");
        assert_eq!(shown(&[12, 4, 5, 4]), "4:5,12");
        assert_eq!(shown(&[7]), "7");
        assert_eq!(
            shown(&[u32::MAX - 1, u32::MAX]),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
        assert!(uid_set(&[]).is_err());
        assert!(uid_set(&[0, 1]).is_err());
    }

    /// A server's answer to one batch FETCH, with a FETCH of its own (a flag
    /// change of another message) in between: only the messages asked for come
    /// back, in UID order; sizes likewise.
    #[tokio::test]
    async fn only_the_messages_asked_for_come_back() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (client_io, server_io) = tokio::io::duplex(4096);
        let server = tokio::spawn(async move {
            let (r, mut w) = tokio::io::split(server_io);
            let mut lines = BufReader::new(r).lines();
            let line = lines.next_line().await.unwrap().unwrap();
            assert!(
                line.contains("UID FETCH 5:6 ") && line.contains("RFC822.SIZE"),
                "{line}"
            );
            w.write_all(
                b"* 1 FETCH (UID 9 RFC822.SIZE 40)\r\n* 3 FETCH (UID 6 RFC822.SIZE 3)\r\n\
                  * 2 FETCH (UID 5 RFC822.SIZE 2)\r\nW1 OK done\r\n",
            )
            .await
            .unwrap();
            let line = lines.next_line().await.unwrap().unwrap();
            assert!(
                line.starts_with("W2 UID FETCH 5:6 ") && line.contains("BODY.PEEK[]"),
                "{line}"
            );
            w.write_all(
                b"* 3 FETCH (UID 6 BODY[] {3}\r\nbye)\r\n* 1 FETCH (FLAGS (\\Seen) UID 9)\r\n\
                  * 2 FETCH (UID 5 BODY[] {2}\r\nhi)\r\nW2 OK done\r\n",
            )
            .await
            .unwrap();
        });
        let mut c = ImapClient::over(Box::new(client_io), b"* OK ready\r\n");
        assert_eq!(c.fetch_sizes(&[6, 5]).await.unwrap(), vec![(5, 2), (6, 3)]);
        let got = c.fetch_raw_many(&[5, 6]).await.unwrap();
        assert_eq!(got, vec![(5, b"hi".to_vec()), (6, b"bye".to_vec())]);
        server.await.unwrap();
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let sized: Vec<(u32, u32)> = (1..=10).map(|u| (u, 100)).collect();
        assert_eq!(size_batches(&sized, 4, 10_000).len(), 3);
        let b = size_batches(&sized, 100, 250);
        assert_eq!(
            b,
            vec![vec![1, 2], vec![3, 4], vec![5, 6], vec![7, 8], vec![9, 10]]
        );
        // A message larger than the byte bound travels alone; order is kept.
        let big = [(1, 10), (2, 5_000), (3, 10)];
        assert_eq!(
            size_batches(&big, 100, 1_000),
            vec![vec![1], vec![2], vec![3]]
        );
        assert!(size_batches(&[], 4, 10).is_empty());
    }
}
