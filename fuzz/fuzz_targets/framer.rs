//! The wire framer on arbitrary bytes, delivered in arbitrary chunks, with reads
//! that are sometimes not ready and `next()` futures dropped half-way (as a
//! `select!` does): it never panics, hands out every byte once and in order, and
//! its literal accounting matches the announcements it reports, and a frame it
//! says is ready comes without a read.
//!
//! Input: byte 0 picks `max_line_bytes`, byte 1 how many chunk-size bytes follow;
//! those bytes are the sizes of successive reads (0: "not ready"); the rest is
//! the stream.

#![no_main]

use crmproxy::wire::{parse_literal_announcement, Frame, Framer, Literal, LITERAL_CHUNK};
use libfuzzer_sys::fuzz_target;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, ReadBuf};

/// An in-memory reader that hands out its bytes in the given chunk sizes.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    next_size: usize,
    /// The last poll was answered "not ready": the next one makes progress.
    pended: bool,
    /// Polls so far.
    polls: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.polls += 1;
        let size = if self.sizes.is_empty() {
            usize::MAX
        } else {
            let s = self.sizes[self.next_size % self.sizes.len()] as usize;
            self.next_size += 1;
            s
        };
        if size == 0 && !self.pended {
            // Not ready now; ready at the next poll.
            self.pended = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.pended = false;
        let size = size.max(1);
        let n = size.min(buf.remaining()).min(self.data.len());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

/// One `next()` poll: a pending future is dropped, as a `select!` does.
fn poll_once(framer: &mut Framer<Chunked<'_>>) -> Option<io::Result<Option<Frame>>> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut fut = std::pin::pin!(framer.next());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(r) => Some(r),
        Poll::Pending => None,
    }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let max_line = input[0] as usize * 4;
    let n_sizes = (input[1] as usize).min(input.len() - 2);
    let sizes = &input[2..2 + n_sizes];
    let data = &input[2 + n_sizes..];
    let mut framer = Framer::new(
        Chunked {
            data,
            sizes,
            next_size: 0,
            pended: false,
            polls: 0,
        },
        max_line,
    );
    let max_line = max_line.max(16);

    let mut out: Vec<u8> = Vec::new();
    // The over-long line being handed out in parts.
    let mut long_line: Option<Vec<u8>> = None;
    // The literal announced last, and its payload bytes seen so far.
    let mut literal: Option<(Literal, u64)> = None;
    let mut pendings = 0usize;
    loop {
        // A relay flushes what it holds before it waits on a read: a frame said
        // to be ready comes without a read.
        let ready = framer.frame_ready();
        let polls = framer.get_mut().polls;
        let result = poll_once(&mut framer);
        if ready {
            assert!(
                matches!(result, Some(Ok(Some(_)))) && framer.get_mut().polls == polls,
                "frame_ready() but next() read"
            );
        }
        let Some(result) = result else {
            pendings += 1;
            assert!(pendings <= input.len() + 2, "the framer makes no progress");
            continue;
        };
        let frame = match result {
            Ok(Some(f)) => f,
            Ok(None) => {
                assert!(literal.is_none(), "clean end inside a literal");
                assert!(long_line.is_none(), "clean end inside a line");
                assert_eq!(out, data, "bytes lost or reordered");
                assert_eq!(framer.buffered(), 0);
                return;
            }
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
                let mut all = out.clone();
                let (_, rest) = framer.into_parts();
                all.extend_from_slice(&rest);
                assert_eq!(all, data, "bytes lost or reordered at the end");
                assert!(
                    literal.is_some() || long_line.is_some() || !rest.is_empty(),
                    "end of stream between frames reported as an error"
                );
                return;
            }
        };
        match &frame {
            Frame::Line { bytes, literal: l } => {
                assert!(literal.is_none(), "a line inside a literal");
                assert!(long_line.is_none(), "a line inside an over-long line");
                assert!(bytes.ends_with(b"\n"));
                assert!(bytes.len() <= max_line, "line longer than max_line_bytes");
                assert_eq!(memchr_count(bytes), 1, "a line holds one line ending");
                assert_eq!(*l, parse_literal_announcement(bytes));
                literal = l.filter(|l| l.len > 0).map(|l| (l, 0));
                out.extend_from_slice(bytes);
            }
            Frame::LongLinePart(bytes) => {
                assert!(literal.is_none(), "a line inside a literal");
                assert!(!bytes.is_empty());
                assert!(!bytes.contains(&b'\n'), "a line part holds a line ending");
                long_line
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(bytes);
                out.extend_from_slice(bytes);
            }
            Frame::LongLineEnd { bytes, literal: l } => {
                assert!(literal.is_none(), "a line inside a literal");
                let mut whole = long_line.take().expect("a line end without its start");
                assert!(bytes.ends_with(b"\n"));
                assert_eq!(memchr_count(bytes), 1);
                whole.extend_from_slice(bytes);
                assert!(whole.len() > max_line, "a short line came out in parts");
                assert_eq!(
                    *l,
                    parse_literal_announcement(&whole),
                    "the literal of an over-long line differs from the whole line's"
                );
                literal = l.filter(|l| l.len > 0).map(|l| (l, 0));
                out.extend_from_slice(bytes);
            }
            Frame::LiteralData { bytes, remaining } => {
                let (lit, seen) = literal.as_mut().expect("literal data without a literal");
                assert!(!bytes.is_empty());
                assert!(bytes.len() <= LITERAL_CHUNK);
                *seen += bytes.len() as u64;
                assert_eq!(*seen + *remaining, lit.len, "literal accounting");
                if *remaining == 0 {
                    literal = None;
                }
                out.extend_from_slice(bytes);
            }
        }
        let expected = literal.map_or(0, |(l, seen)| l.len - seen);
        assert_eq!(framer.literal_remaining(), expected);
        // A peer that refuses a sync literal: what follows is a line again.
        if let Some((l, 0)) = literal {
            if l.sync && data.len() % 7 == 3 {
                framer.cancel_literal();
                literal = None;
            }
        }
    }
});

fn memchr_count(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}
