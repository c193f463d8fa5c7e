//! What a user logs in with, kept so that this program can log in again as the
//! same user on a connection of its own. Never logged: `Debug` shows no secret.

/// A replayable login.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// `LOGIN user password`.
    Login { user: Vec<u8>, password: Vec<u8> },
    /// AUTHENTICATE PLAIN: the client's response, still base64 (authzid, authcid,
    /// password), replayable as a SASL initial response.
    SaslPlain { response_base64: Vec<u8> },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Login { .. } => f.write_str("Credential::Login(<redacted>)"),
            Credential::SaslPlain { .. } => f.write_str("Credential::SaslPlain(<redacted>)"),
        }
    }
}
