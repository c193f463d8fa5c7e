//! A raw IMAP client for tests: writes exact bytes, reads responses line by line with
//! literals taken by their announced length, so a test sees every byte as sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct RawImap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_tag: u32,
    /// The greeting line.
    pub greeting: String,
}

/// One response: the untagged/continuation lines (literals included) and the tagged line.
#[derive(Debug, Clone)]
pub struct Response {
    pub bytes: Vec<u8>,
    pub tagged: String,
}

impl Response {
    pub fn ok(&self) -> bool {
        self.tagged
            .split(' ')
            .nth(1)
            .is_some_and(|s| s.eq_ignore_ascii_case("OK"))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

impl RawImap {
    pub fn connect(addr: SocketAddr) -> std::io::Result<RawImap> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.set_nodelay(true)?;
        let mut c = RawImap {
            reader: BufReader::with_capacity(256 * 1024, s.try_clone()?),
            writer: s,
            next_tag: 1,
            greeting: String::new(),
        };
        let mut g = Vec::new();
        c.read_line_into(&mut g)?;
        c.greeting = String::from_utf8_lossy(&g).into_owned();
        Ok(c)
    }

    /// Connect and LOGIN; panics on failure.
    pub fn login(addr: SocketAddr, user: &str, password: &str) -> RawImap {
        let mut c = RawImap::connect(addr).expect("connect");
        let r = c.cmd(&format!("LOGIN {user} {password}"));
        assert!(r.ok(), "LOGIN failed: {}", r.tagged);
        c
    }

    pub fn set_read_timeout(&self, d: Option<Duration>) {
        self.writer.set_read_timeout(d).unwrap();
    }

    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    fn tag(&mut self) -> String {
        let t = format!("t{}", self.next_tag);
        self.next_tag += 1;
        t
    }

    /// Send `TAG command\r\n` and read up to the tagged response.
    pub fn cmd(&mut self, command: &str) -> Response {
        let tag = self.tag();
        self.send(format!("{tag} {command}\r\n").as_bytes());
        self.read_until_tagged(&tag).expect("read response")
    }

    /// Send raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Read one line (CRLF included) and, when it announces a literal, the literal and
    /// the rest of the response line, all appended to `out`. Returns the first line.
    pub fn read_response_line(&mut self, out: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
        let start = out.len();
        let mut first = None;
        loop {
            let line_start = out.len();
            self.read_line_into(out)?;
            if first.is_none() {
                first = Some(out[start..].to_vec());
            }
            match literal_len(&out[line_start..]) {
                Some(n) => {
                    let at = out.len();
                    out.resize(at + n, 0);
                    self.reader.read_exact(&mut out[at..])?;
                }
                None => return Ok(first.unwrap()),
            }
        }
    }

    fn read_line_into(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        let n = self.reader.read_until(b'\n', out)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        Ok(())
    }

    /// Read responses until the line tagged `tag`.
    pub fn read_until_tagged(&mut self, tag: &str) -> std::io::Result<Response> {
        let mut bytes = Vec::new();
        loop {
            let first = self.read_response_line(&mut bytes)?;
            if first.starts_with(format!("{tag} ").as_bytes()) {
                let tagged = String::from_utf8_lossy(&first).trim_end().to_string();
                return Ok(Response { bytes, tagged });
            }
        }
    }

    /// Read one response line (with literals) and return it as text.
    pub fn read_line(&mut self) -> std::io::Result<String> {
        let mut bytes = Vec::new();
        self.read_response_line(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// APPEND `message` to `mailbox` with a synchronising literal (waits for `+`).
    pub fn append(&mut self, mailbox: &str, message: &[u8]) -> Response {
        self.cmd_with_literal(&format!("APPEND {mailbox}"), message)
    }

    /// `command {n}` then, after the server's `+`, `literal` (e.g. an APPEND with
    /// flags and a date).
    pub fn cmd_with_literal(&mut self, command: &str, literal: &[u8]) -> Response {
        let message = literal;
        let tag = self.tag();
        self.send(format!("{tag} {command} {{{}}}\r\n", message.len()).as_bytes());
        let cont = self.read_line().expect("continuation");
        assert!(cont.starts_with('+'), "expected +, got {cont}");
        self.send(message);
        self.send(b"\r\n");
        self.read_until_tagged(&tag).expect("append response")
    }

    /// FETCH `BODY.PEEK[]` of one UID and return the literal's exact bytes.
    pub fn fetch_body(&mut self, uid: u32) -> Vec<u8> {
        let r = self.cmd(&format!("UID FETCH {uid} BODY.PEEK[]"));
        assert!(r.ok(), "fetch: {}", r.tagged);
        first_literal(&r.bytes).expect("a literal in the FETCH response")
    }
}

/// The length of the literal a line announces: `{n}`, `{n+}` or `~{n}` before CRLF.
pub fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n").or(line.strip_suffix(b"\n"))?;
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The bytes of the first literal in a response.
pub fn first_literal(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut at = 0;
    while at < bytes.len() {
        let end = at + memchr_nl(&bytes[at..])? + 1;
        if let Some(n) = literal_len(&bytes[at..end]) {
            return Some(bytes[end..end + n].to_vec());
        }
        at = end;
    }
    None
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}
