//! A tiny LMTP client (RFC 2033) for delivering mail to the private Dovecot the
//! way a mail server does: LHLO, MAIL FROM, RCPT TO, DATA with dot-stuffing.
//! Plain TCP on loopback; one message to one recipient per call.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Deliver `raw` (CRLF line ends) to `rcpt` over LMTP at `addr`. `Err` holds
/// the first reply that was not the expected one.
pub fn deliver(addr: SocketAddr, from: &str, rcpt: &str, raw: &[u8]) -> Result<(), String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut s = Session {
        reader: BufReader::new(stream.try_clone().map_err(|e| e.to_string())?),
        writer: stream,
    };
    s.expect("220", "greeting")?;
    s.command("LHLO localhost", "250")?;
    s.command(&format!("MAIL FROM:<{from}>"), "250")?;
    s.command(&format!("RCPT TO:<{rcpt}>"), "250")?;
    s.command("DATA", "354")?;
    s.writer
        .write_all(&dot_stuffed(raw))
        .map_err(|e| e.to_string())?;
    // LMTP answers once per accepted recipient: here one.
    s.expect("250", "end of data")?;
    s.command("QUIT", "221")
}

/// One LMTP connection.
struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Session {
    /// Send `line`, then expect a reply with `code`.
    fn command(&mut self, line: &str, code: &str) -> Result<(), String> {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        self.expect(code, line)
    }

    fn expect(&mut self, code: &str, after: &str) -> Result<(), String> {
        let reply = self.reply()?;
        if reply.starts_with(code) {
            Ok(())
        } else {
            Err(format!("{after}: {reply}"))
        }
    }

    /// One whole reply (the lines of a multi-line one joined), e.g. "250 2.0.0 OK".
    fn reply(&mut self) -> Result<String, String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("connection closed after {all:?}"));
            }
            all.push_str(&line);
            // "250-…" continues, "250 …" ends.
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(all.trim_end().to_string());
            }
        }
    }
}

/// The message as DATA sends it: every line that starts with `.` gets another,
/// the last line ends with CRLF, then the lone `.` that ends the data.
pub fn dot_stuffed(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 8);
    let mut at_line_start = true;
    for &b in raw {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}
