//! Copying a message whole on the server: its flags and INTERNALDATE, and
//! APPEND with them (the new UID from UIDPLUS when the server gives it).

use super::client::{quoted, ClientError, ImapClient};

impl ImapClient {
    /// FLAGS (without `\Recent`, which no client may set) and INTERNALDATE (as
    /// the server wrote it, quoted) of message `uid`, or `None` if it is gone.
    pub async fn flags_and_date(
        &mut self,
        uid: u32,
    ) -> Result<Option<(Vec<String>, String)>, ClientError> {
        let r = self
            .ok(
                "UID FETCH",
                &format!("UID FETCH {uid} (UID FLAGS INTERNALDATE)"),
            )
            .await?;
        for u in &r.untagged {
            let text = String::from_utf8_lossy(&u.text);
            let (Some(flags), Some(date)) = (
                text.split("FLAGS (")
                    .nth(1)
                    .and_then(|f| f.split(')').next()),
                text.split("INTERNALDATE \"")
                    .nth(1)
                    .and_then(|d| d.split('"').next()),
            ) else {
                continue;
            };
            if !super::client::contains_uid(&u.text, uid) {
                continue;
            }
            let flags = flags
                .split_whitespace()
                .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                .map(str::to_owned)
                .collect();
            return Ok(Some((flags, format!("\"{date}\""))));
        }
        Ok(None)
    }

    /// APPEND `message` to `folder` with `flags` and `date` (a quoted
    /// INTERNALDATE); the new UID from APPENDUID (`None` when the server gave none).
    pub async fn append(
        &mut self,
        folder: &str,
        flags: &[String],
        date: &str,
        message: &[u8],
    ) -> Result<Option<u32>, ClientError> {
        use tokio::io::AsyncWriteExt;
        let tag = self.tag();
        let line = format!(
            "{tag} APPEND {} ({}) {date} {{{}}}\r\n",
            quoted(folder),
            flags.join(" "),
            message.len()
        );
        self.writer.write_all(line.as_bytes()).await?;
        self.writer.flush().await?;
        // The server may refuse before the literal (a quota it checks up front).
        loop {
            let (u, tagged) = self.read_response().await?;
            if u.text.starts_with(b"+") {
                break;
            }
            if tagged.as_deref() == Some(tag.as_str()) {
                return Err(ClientError::Refused {
                    command: "APPEND",
                    text: String::from_utf8_lossy(&u.text).trim_end().to_string(),
                });
            }
        }
        self.writer.write_all(message).await?;
        self.writer.write_all(b"\r\n").await?;
        self.writer.flush().await?;
        let r = self.read_reply(&tag).await?;
        if !r.ok {
            return Err(ClientError::Refused {
                command: "APPEND",
                text: r.status,
            });
        }
        // `TAG OK [APPENDUID <uidvalidity> <uid>] …`
        Ok(r.status
            .to_ascii_uppercase()
            .split("[APPENDUID ")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .and_then(|v| v.split_whitespace().nth(1))
            .and_then(|uid| uid.parse().ok()))
    }
}
