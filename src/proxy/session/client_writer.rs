//! The client's write half with a small coalescing buffer: server responses that
//! arrive back to back (a folder sync's FETCH responses) leave in one send
//! instead of one each. The session flushes it whenever it has nothing more at
//! hand from the upstream, so nothing waits in it on a read.

use super::BoxedIo;
use std::io;
use tokio::io::{AsyncWriteExt, WriteHalf};

/// Bytes gathered before a send; a write at least this big goes straight out.
const COALESCE_MAX: usize = crate::wire::LITERAL_CHUNK;
/// A buffer grown beyond this is given back at a flush (idle sessions stay small).
const KEEP_CAPACITY: usize = 8 * 1024;

pub(super) struct ClientWriter {
    io: WriteHalf<BoxedIo>,
    pending: Vec<u8>,
}

impl ClientWriter {
    pub(super) fn new(io: WriteHalf<BoxedIo>) -> Self {
        ClientWriter {
            io,
            pending: Vec::new(),
        }
    }

    /// Queue `bytes` after everything queued before; sends when the buffer is full.
    pub(super) async fn queue(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.pending.len() + bytes.len() > COALESCE_MAX {
            self.send_pending().await?;
            if bytes.len() >= COALESCE_MAX {
                return self.io.write_all(bytes).await;
            }
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    /// Send everything queued and flush the transport (TLS records included).
    pub(super) async fn flush(&mut self) -> io::Result<()> {
        self.send_pending().await?;
        if self.pending.capacity() > KEEP_CAPACITY {
            self.pending = Vec::new();
        }
        self.io.flush().await
    }

    /// Flushed, the write half itself (for STARTTLS to rejoin the stream).
    pub(super) async fn into_inner(mut self) -> io::Result<WriteHalf<BoxedIo>> {
        self.flush().await?;
        Ok(self.io)
    }

    /// Flush, then close the client's side for writing.
    pub(super) async fn shutdown(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.io.shutdown().await
    }

    async fn send_pending(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.io.write_all(&self.pending).await?;
            self.pending.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn pair() -> (ClientWriter, tokio::io::DuplexStream) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let (_r, w) = tokio::io::split(Box::new(a) as BoxedIo);
        (ClientWriter::new(w), b)
    }

    async fn available(peer: &mut tokio::io::DuplexStream) -> Vec<u8> {
        let mut out = vec![0; 1 << 20];
        match tokio::time::timeout(std::time::Duration::from_millis(50), peer.read(&mut out)).await
        {
            Ok(Ok(n)) => out[..n].to_vec(),
            _ => Vec::new(),
        }
    }

    #[tokio::test]
    async fn queued_bytes_leave_in_order_at_a_flush() {
        let (mut w, mut peer) = pair();
        w.queue(b"* 1 EXISTS\r\n").await.unwrap();
        w.queue(b"a OK done\r\n").await.unwrap();
        assert!(available(&mut peer).await.is_empty(), "held until flushed");
        w.flush().await.unwrap();
        assert_eq!(available(&mut peer).await, b"* 1 EXISTS\r\na OK done\r\n");
    }

    #[tokio::test]
    async fn a_full_buffer_and_big_writes_go_out_without_a_flush() {
        let (mut w, mut peer) = pair();
        w.queue(b"head ").await.unwrap();
        let big = vec![b'x'; COALESCE_MAX];
        w.queue(&big).await.unwrap();
        let got = available(&mut peer).await;
        assert_eq!(got.len(), 5 + COALESCE_MAX);
        assert!(got.starts_with(b"head x"));
        w.queue(b"tail").await.unwrap();
        let out = w.into_inner().await.unwrap();
        drop(out);
        assert_eq!(available(&mut peer).await, b"tail");
    }
}
