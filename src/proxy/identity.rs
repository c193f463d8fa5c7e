//! Who a session belongs to: the user named by LOGIN, AUTHENTICATE PLAIN (with
//! or without SASL-IR, with an authzid), XOAUTH2 or OAUTHBEARER. Only the user
//! names are kept, never a password or token. Also the redaction used for every
//! client line that may reach a log or a recording.

use base64::Engine;
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::command::{Command, CommandBody};

/// The owner of a session, known once LOGIN/AUTHENTICATE got its tagged OK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The mailbox user the session acts as.
    pub user: String,
    /// The authenticating user when it differs from `user` (PLAIN authzid).
    pub delegate: Option<String>,
    pub mechanism: Mechanism,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Login,
    Plain,
    XOAuth2,
    OAuthBearer,
}

/// A SASL mechanism whose client response names the user.
pub fn sasl_mechanism(m: &AuthMechanism<'_>) -> Option<Mechanism> {
    match m {
        AuthMechanism::Plain => Some(Mechanism::Plain),
        AuthMechanism::XOAuth2 => Some(Mechanism::XOAuth2),
        AuthMechanism::OAuthBearer => Some(Mechanism::OAuthBearer),
        _ => None,
    }
}

/// What a login command tells before the server answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginAttempt {
    /// The identity is known from the command itself.
    Known(Identity),
    /// AUTHENTICATE without initial response: the identity is in the next client line.
    AwaitingResponse(Mechanism),
    /// A mechanism whose messages name no user we can read (SCRAM, …).
    Opaque,
}

/// The login attempt a decoded command makes, if it is LOGIN or AUTHENTICATE.
pub fn login_attempt(cmd: &Command<'_>) -> Option<LoginAttempt> {
    match &cmd.body {
        CommandBody::Login { username, .. } => Some(LoginAttempt::Known(Identity {
            user: String::from_utf8_lossy(username.as_ref()).into_owned(),
            delegate: None,
            mechanism: Mechanism::Login,
        })),
        CommandBody::Authenticate {
            mechanism,
            initial_response,
        } => Some(match (sasl_mechanism(mechanism), initial_response) {
            (None, _) => LoginAttempt::Opaque,
            (Some(m), Some(ir)) => from_sasl(m, ir.declassify())
                .map(LoginAttempt::Known)
                .unwrap_or(LoginAttempt::Opaque),
            (Some(m), None) => LoginAttempt::AwaitingResponse(m),
        }),
        _ => None,
    }
}

/// The identity in a base64 SASL response line (`+` answer), if readable.
pub fn from_sasl_line(m: Mechanism, line: &[u8]) -> Option<Identity> {
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    from_sasl(m, &raw)
}

/// The identity in a decoded SASL client response.
pub fn from_sasl(m: Mechanism, raw: &[u8]) -> Option<Identity> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match m {
        Mechanism::Plain => {
            let mut parts = raw.splitn(3, |&b| b == 0);
            let authzid = parts.next()?;
            let authcid = parts.next()?;
            parts.next()?; // the password must be there, but is not kept
            if authcid.is_empty() {
                return None;
            }
            let (user, delegate) = if authzid.is_empty() || authzid == authcid {
                (text(authcid), None)
            } else {
                (text(authzid), Some(text(authcid)))
            };
            Some(Identity {
                user,
                delegate,
                mechanism: m,
            })
        }
        Mechanism::XOAuth2 => {
            // user=<user>\x01auth=Bearer <token>\x01\x01
            let user = raw
                .split(|&b| b == 1)
                .find_map(|kv| kv.strip_prefix(b"user="))?;
            (!user.is_empty()).then(|| Identity {
                user: text(user),
                delegate: None,
                mechanism: m,
            })
        }
        Mechanism::OAuthBearer => {
            // gs2-header: n,a=<user>,\x01host=…\x01auth=Bearer …\x01\x01
            let gs2 = raw.split(|&b| b == 1).next()?;
            let a = gs2
                .split(|&b| b == b',')
                .find_map(|f| f.strip_prefix(b"a="))?;
            let user = text(a).replace("=2C", ",").replace("=3D", "=");
            (!user.is_empty()).then_some(Identity {
                user,
                delegate: None,
                mechanism: m,
            })
        }
        Mechanism::Login => None,
    }
}

/// A client message made safe for a log or a recording: LOGIN and AUTHENTICATE
/// keep only tag, command and mechanism; SASL response lines become `<redacted>`;
/// other lines are shown escaped and cut to `max` bytes.
pub fn redact_client_message(message: &[u8], sasl_response: bool, max: usize) -> String {
    if sasl_response {
        return "<redacted SASL response>".into();
    }
    if let Some((tag, name)) = crate::wire::command_start(message) {
        let tag = String::from_utf8_lossy(tag);
        if name.is("LOGIN") {
            return format!("{tag} LOGIN <redacted>");
        }
        if name.is("AUTHENTICATE") {
            let after = &message[message.len().min(tag.len() + 1 + 13)..];
            let mech = crate::wire::token::first_token(after);
            return format!(
                "{tag} AUTHENTICATE {} <redacted>",
                escape(&mech[..mech.len().min(40)])
            );
        }
    }
    let cut = &message[..message.len().min(max)];
    let mut s = escape(cut);
    if message.len() > max {
        s.push('…');
    }
    s
}

fn escape(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use imap_codec::{decode::Decoder, CommandCodec};

    fn attempt(line: &[u8]) -> Option<LoginAttempt> {
        let (_, cmd) = CommandCodec::default().decode(line).unwrap();
        login_attempt(&cmd)
    }

    fn known(user: &str, delegate: Option<&str>, mechanism: Mechanism) -> Option<LoginAttempt> {
        Some(LoginAttempt::Known(Identity {
            user: user.into(),
            delegate: delegate.map(Into::into),
            mechanism,
        }))
    }

    #[test]
    fn login_atom_quoted_literal() {
        let l = Mechanism::Login;
        assert_eq!(
            attempt(b"a LOGIN alice secret\r\n"),
            known("alice", None, l)
        );
        assert_eq!(
            attempt(b"a LOGIN \"bob smith\" \"p w\"\r\n"),
            known("bob smith", None, l)
        );
        assert_eq!(
            attempt(b"a LOGIN {5}\r\ncarol {3}\r\npw!\r\n"),
            known("carol", None, l)
        );
        assert_eq!(attempt(b"a NOOP\r\n"), None);
    }

    #[test]
    fn plain_with_and_without_ir_and_authzid() {
        let ir = B64.encode(b"\0alice\0secret");
        let line = format!("a AUTHENTICATE PLAIN {ir}\r\n");
        assert_eq!(
            attempt(line.as_bytes()),
            known("alice", None, Mechanism::Plain)
        );
        assert_eq!(
            attempt(b"a AUTHENTICATE PLAIN\r\n"),
            Some(LoginAttempt::AwaitingResponse(Mechanism::Plain))
        );
        let resp = format!("{}\r\n", B64.encode(b"boss\0assistant\0secret"));
        assert_eq!(
            from_sasl_line(Mechanism::Plain, resp.as_bytes()).unwrap(),
            Identity {
                user: "boss".into(),
                delegate: Some("assistant".into()),
                mechanism: Mechanism::Plain
            }
        );
        let same = B64.encode(b"alice\0alice\0pw");
        assert_eq!(
            from_sasl_line(Mechanism::Plain, same.as_bytes())
                .unwrap()
                .delegate,
            None
        );
        assert_eq!(from_sasl_line(Mechanism::Plain, b"*\r\n"), None);
    }

    #[test]
    fn oauth_mechanisms() {
        let x = B64.encode(b"user=dave@example.org\x01auth=Bearer tok123\x01\x01");
        assert_eq!(
            attempt(format!("a AUTHENTICATE XOAUTH2 {x}\r\n").as_bytes()),
            known("dave@example.org", None, Mechanism::XOAuth2)
        );
        let o = B64.encode(b"n,a=erin=2Cx@example.org,\x01host=h\x01auth=Bearer tok\x01\x01");
        assert_eq!(
            from_sasl_line(Mechanism::OAuthBearer, o.as_bytes())
                .unwrap()
                .user,
            "erin,x@example.org"
        );
        assert_eq!(
            attempt(b"a AUTHENTICATE SCRAM-SHA-256 abcd\r\n"),
            Some(LoginAttempt::Opaque)
        );
    }

    #[test]
    fn redaction_removes_secrets() {
        let cases: [(&[u8], bool); 5] = [
            (b"a LOGIN alice hunter2secret\r\n", false),
            (b"a login {5}\r\nalice {13}\r\nhunter2secret\r\n", false),
            (
                b"a AUTHENTICATE PLAIN AGFsaWNlAGh1bnRlcjJzZWNyZXQ=\r\n",
                false,
            ),
            (b"AGFsaWNlAGh1bnRlcjJzZWNyZXQ=\r\n", true),
            (
                b"a authenticate XOAUTH2 dXNlcj1hAWF1dGg9QmVhcmVyIGh1bnRlcjJzZWNyZXQBAQ==\r\n",
                false,
            ),
        ];
        for (msg, sasl) in cases {
            let r = redact_client_message(msg, sasl, 200);
            assert!(!r.contains("hunter2secret"), "{r}");
            assert!(!r.contains("AGFsaWNl"), "{r}");
            assert!(!r.contains("dXNlcj1h"), "{r}");
        }
        assert_eq!(
            redact_client_message(
                b"a AUTHENTICATE PLAIN AGFsaWNlAGh1bnRlcjJzZWNyZXQ=\r\n",
                false,
                200
            ),
            "a AUTHENTICATE PLAIN <redacted>"
        );
        assert_eq!(
            redact_client_message(b"a NOOP\r\n", false, 200),
            "a NOOP\\r\\n"
        );
    }
}
