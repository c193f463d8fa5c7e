//! The demo CRM's people and records the pane tests name (fixtures/demo/crm.json).

use crmproxy::store::{MessageId, UserId};
use uuid::Uuid;

pub const ALICE: &str = "alice@example.test";
pub const BOB: &str = "bob@example.test";
pub const ALICE_ID: &str = "0193a1b2-c3d4-7001-8000-000000000001";
pub const BOB_ID: &str = "0193a1b2-c3d4-7002-8000-000000000002";
pub const CONTOSO: &str = "0193a1b2-c3d4-7005-8000-000000000005";
/// An email in the demo CRM, tracked in Alice's mailbox regarding a Contoso opportunity.
pub const DEMO_MID: &str = "demo-0001@mail.contoso.example";

pub fn uid(s: &str) -> UserId {
    UserId::from_uuid(Uuid::parse_str(s).unwrap())
}

pub fn mid(s: &str) -> MessageId {
    MessageId::parse(s).unwrap()
}
