//! APPEND: copying a message whole on the server (its flags and INTERNALDATE,
//! then APPEND with them) and saving a new one (a draft); the new UID from
//! UIDPLUS's APPENDUID when the server gives it.

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName,
};
use imap_codec::imap_types::flag::{Flag, FlagFetch};
use imap_codec::imap_types::response::{Code, Data, Response};
use imap_codec::imap_types::IntoStatic;
use std::num::NonZeroU32;

use super::client::{ClientError, ImapClient};

/// A message's flags (without `\Recent`, which no client may set) and
/// INTERNALDATE, as the server has them.
#[derive(Debug, Clone)]
pub struct FlagsAndDate {
    pub flags: Vec<Flag<'static>>,
    pub date: Option<DateTime>,
}

/// Where an APPEND put the message (UIDPLUS), when the server said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendUid {
    pub uid_validity: u32,
    pub uid: u32,
}

impl ImapClient {
    /// FLAGS and INTERNALDATE of message `uid`, or `None` if it is gone.
    pub async fn flags_and_date(&mut self, uid: u32) -> Result<Option<FlagsAndDate>, ClientError> {
        let n = NonZeroU32::new(uid).ok_or(ClientError::Unsendable("UID 0"))?;
        let items = MacroOrMessageDataItemNames::MessageDataItemNames(vec![
            MessageDataItemName::Uid,
            MessageDataItemName::Flags,
            MessageDataItemName::InternalDate,
        ]);
        let body =
            CommandBody::fetch(n, items, true).map_err(|_| ClientError::Unsendable("a UID"))?;
        let r = self.ok("UID FETCH", body).await?;
        for u in &r.untagged {
            let Some(Response::Data(Data::Fetch { items, .. })) = u.decode() else {
                continue;
            };
            let (mut this, mut flags, mut date) = (false, None, None);
            for item in items.into_inner() {
                match item {
                    MessageDataItem::Uid(v) => this = v.get() == uid,
                    MessageDataItem::Flags(f) => {
                        flags = Some(
                            f.into_iter()
                                .filter_map(|f| match f {
                                    FlagFetch::Flag(f) => Some(f.into_static()),
                                    FlagFetch::Recent => None,
                                })
                                .collect::<Vec<_>>(),
                        )
                    }
                    MessageDataItem::InternalDate(d) => date = Some(d),
                    _ => {}
                }
            }
            if let (true, Some(flags)) = (this, flags) {
                return Ok(Some(FlagsAndDate { flags, date }));
            }
        }
        Ok(None)
    }

    /// APPEND `message` to `folder` with `flags` and `date`; where it went.
    /// The reply is returned whatever its status, for the caller to judge
    /// (`[TRYCREATE]`, a quota).
    pub async fn append(
        &mut self,
        folder: &str,
        flags: Vec<Flag<'_>>,
        date: Option<DateTime>,
        message: &[u8],
    ) -> Result<Result<Option<AppendUid>, super::Reply>, ClientError> {
        let body = CommandBody::append(folder, flags, date, message)
            .map_err(|_| ClientError::Unsendable("a mailbox name or message"))?;
        let r = match self.run(body).await {
            Ok(r) => r,
            // The server may refuse before the literal (a quota it checks up front).
            Err(ClientError::Refused {
                command: "APPEND",
                text,
            }) => {
                let tagged = super::RawResponse {
                    bytes: format!("{text}\r\n").into_bytes(),
                    literals: Vec::new(),
                };
                return Ok(Err(super::client::finish(tagged, Vec::new())));
            }
            Err(e) => return Err(e),
        };
        if !r.ok {
            return Ok(Err(r));
        }
        Ok(Ok(match r.code {
            Some(Code::AppendUid { uid_validity, uid }) => Some(AppendUid {
                uid_validity: uid_validity.get(),
                uid: uid.get(),
            }),
            _ => None,
        }))
    }
}
