//! The framer over arbitrary chunkings: framing a stream delivered in any
//! pieces equals framing it whole, and every byte comes out exactly once; and
//! `frame_ready` says true exactly when the next frame needs no read.

use bytes::Bytes;
use crmproxy::wire::{Frame, Framer, Literal};
use proptest::prelude::*;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// Hands out the input in the given chunk sizes, one chunk per read.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    next: usize,
}

impl Chunked {
    fn reads(&self) -> usize {
        self.next
    }
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = if self.sizes.is_empty() {
            usize::MAX
        } else {
            self.sizes[self.next % self.sizes.len()].max(1)
        };
        self.next += 1;
        let n = size.min(buf.remaining()).min(self.data.len() - self.pos);
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// A frame with pieces of one line or one literal merged.
#[derive(Debug, PartialEq, Eq)]
enum Unit {
    Line(Vec<u8>, Option<Literal>, bool),
    Literal(Vec<u8>),
}

async fn frame_all(data: &[u8], sizes: Vec<usize>, max_line: usize) -> (Vec<Unit>, bool) {
    let reader = Chunked {
        data: data.to_vec(),
        pos: 0,
        sizes,
        next: 0,
    };
    let mut f = Framer::new(reader, max_line);
    let mut units = Vec::new();
    let mut long: Vec<u8> = Vec::new();
    let mut lit: Option<Vec<u8>> = None;
    loop {
        let (ready, reads) = (f.frame_ready(), f.get_mut().reads());
        let next = f.next().await;
        if ready {
            assert_eq!(f.get_mut().reads(), reads, "frame_ready, yet next() read");
        } else if matches!(next, Ok(Some(_))) {
            assert!(f.get_mut().reads() > reads, "not frame_ready, yet no read");
        }
        match next {
            Ok(Some(Frame::Line { bytes, literal })) => {
                assert!(bytes.len() <= max_line);
                units.push(Unit::Line(bytes.to_vec(), literal, false));
                if literal.is_some_and(|l| l.len > 0) {
                    lit = Some(Vec::new());
                }
            }
            Ok(Some(Frame::LongLinePart(b))) => long.extend_from_slice(&b),
            Ok(Some(Frame::LongLineEnd { bytes, literal })) => {
                long.extend_from_slice(&bytes);
                units.push(Unit::Line(std::mem::take(&mut long), literal, true));
                if literal.is_some_and(|l| l.len > 0) {
                    lit = Some(Vec::new());
                }
            }
            Ok(Some(Frame::LiteralData { bytes, remaining })) => {
                assert!(bytes.len() <= crmproxy::wire::LITERAL_CHUNK);
                let l = lit.as_mut().expect("literal data without announcement");
                l.extend_from_slice(&bytes);
                if remaining == 0 {
                    units.push(Unit::Literal(lit.take().unwrap()));
                }
            }
            Ok(None) => return (units, true),
            Err(_) => return (units, false),
        }
    }
}

fn concat(units: &[Unit]) -> Vec<u8> {
    let mut out = Vec::new();
    for u in units {
        match u {
            Unit::Line(b, ..) | Unit::Literal(b) => out.extend_from_slice(b),
        }
    }
    out
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

const SAMPLE: &[u8] = b"* OK [CAPABILITY IMAP4rev1] hi\r\n\
a1 LOGIN {5}\r\nalice {3+}\r\npw!\r\n\
* 1 FETCH (BINARY[] ~{4}\r\n\0\r\n\0 UID 3)\r\n\
* 2 FETCH (BODY[] {0}\r\n)\r\n\
a2 SEARCH TEXT \"0123456789012345678901234567890123456789012345678901234567890123456789\" {2}\r\nab\r\n\
bare lf\n\
a3 OK done\r\n";

#[test]
fn every_two_piece_split_frames_the_same() {
    rt().block_on(async {
        let (whole, clean) = frame_all(SAMPLE, vec![], 64).await;
        assert!(clean);
        assert_eq!(concat(&whole), SAMPLE);
        assert!(
            whole.iter().any(|u| matches!(u, Unit::Line(_, _, true))),
            "long line expected"
        );
        assert!(whole.contains(&Unit::Literal(b"\0\r\n\0".to_vec())));
        for cut in 1..SAMPLE.len() {
            let (units, clean) = frame_all(SAMPLE, vec![cut, usize::MAX], 64).await;
            assert!(clean);
            assert_eq!(units, whole, "split at {cut}");
        }
        for size in 1..8 {
            let (units, _) = frame_all(SAMPLE, vec![size], 64).await;
            assert_eq!(units, whole, "chunks of {size}");
        }
    });
}

#[test]
fn end_inside_a_literal_is_an_error_not_a_clean_end() {
    rt().block_on(async {
        let (_, clean) = frame_all(b"a APPEND x {10}\r\nabc", vec![], 64).await;
        assert!(!clean);
        let (_, clean) = frame_all(b"a NOOP", vec![], 64).await;
        assert!(!clean);
    });
}

#[test]
fn a_big_literal_comes_in_bounded_chunks() {
    rt().block_on(async {
        let mut data = b"* 1 FETCH (BODY[] {1000000}\r\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 1_000_000));
        data.extend_from_slice(b")\r\n");
        let reader = Chunked {
            data: data.clone(),
            pos: 0,
            sizes: vec![],
            next: 0,
        };
        let mut f = Framer::new(reader, 1024);
        let mut chunks = 0;
        let mut total = 0;
        while let Some(fr) = f.next().await.unwrap() {
            if let Frame::LiteralData { bytes, .. } = fr {
                assert!(bytes.len() <= crmproxy::wire::LITERAL_CHUNK);
                total += bytes.len();
                chunks += 1;
            }
        }
        assert_eq!(total, 1_000_000);
        assert!(chunks >= 1_000_000 / crmproxy::wire::LITERAL_CHUNK);
    });
}

fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // An ordinary line.
        "[ -|~]{0,40}".prop_map(|s| format!("{s}\r\n").into_bytes()),
        // A line with a literal of any kind, payload of arbitrary bytes.
        (
            "[a-z ]{0,10}",
            proptest::collection::vec(any::<u8>(), 0..50),
            0..3u8
        )
            .prop_map(|(p, payload, kind)| {
                let ann = match kind {
                    0 => format!("{{{}}}", payload.len()),
                    1 => format!("{{{}+}}", payload.len()),
                    _ => format!("~{{{}}}", payload.len()),
                };
                let mut v = format!("{p}{ann}\r\n").into_bytes();
                v.extend_from_slice(&payload);
                v
            }),
        // An over-long line.
        "[a-z]{70,200}".prop_map(|s| format!("{s}\r\n").into_bytes()),
    ]
}

proptest! {
    #[test]
    fn any_chunking_frames_like_the_whole(
        pieces in proptest::collection::vec(piece(), 1..12),
        sizes in proptest::collection::vec(1usize..70, 1..6),
    ) {
        let mut data: Vec<u8> = pieces.concat();
        data.extend_from_slice(b"end\r\n");
        let rt = rt();
        let (whole, clean) = rt.block_on(frame_all(&data, vec![], 64));
        prop_assert!(clean);
        prop_assert_eq!(concat(&whole), data.clone());
        let (chunked, clean) = rt.block_on(frame_all(&data, sizes, 64));
        prop_assert!(clean);
        prop_assert_eq!(chunked, whole);
    }
}

#[test]
fn cancel_literal_returns_to_lines() {
    rt().block_on(async {
        let reader = Chunked {
            data: b"a APPEND x {5}\r\nb NOOP\r\n".to_vec(),
            pos: 0,
            sizes: vec![],
            next: 0,
        };
        let mut f = Framer::new(reader, 1024);
        let first = f.next().await.unwrap().unwrap();
        assert!(matches!(
            first,
            Frame::Line {
                literal: Some(_),
                ..
            }
        ));
        f.cancel_literal();
        assert_eq!(
            f.next().await.unwrap().unwrap(),
            Frame::Line {
                bytes: Bytes::from_static(b"b NOOP\r\n"),
                literal: None
            }
        );
    });
}
