//! The headless gateway (issue 13) against the private Dovecot: rules over 50
//! mailboxes, bad credentials beside good ones, exactly once across kill -9,
//! Dovecot restarted under it, `gateway test`, SIGHUP, JSON logs, two gateways
//! (or a gateway and a proxy) on one PostgreSQL CRM, bulk and automatic mail,
//! LMTP delivery. One test binary; its parts in tests/gateway/.

mod common;
#[allow(unused_imports)]
mod store_support;

#[path = "gateway/harness.rs"]
mod harness;

#[path = "gateway/rules.rs"]
mod rules;

#[path = "gateway/restarts.rs"]
mod restarts;

#[path = "gateway/operations.rs"]
mod operations;

#[path = "gateway/cases.rs"]
mod cases;
