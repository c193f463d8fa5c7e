//! Prometheus text exposition of the gateway's mailboxes (`/metrics`):
//! tracked, skipped and failed messages, connections, backlog and state.

use std::fmt::Write;

use crate::sync::worker::plan::MailboxState;

use super::status::MailboxReport;

/// A label value escaped as the exposition format wants.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One series: name, type, help, and its value for a mailbox.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&MailboxReport) -> u64,
);

/// The metrics text for these mailboxes.
pub fn render(reports: &[MailboxReport]) -> String {
    let mut out = String::new();
    let series: [Series; 7] = [
        (
            "crmproxy_gateway_folders_watched",
            "gauge",
            "Folders being watched.",
            |r| r.folders_watched,
        ),
        (
            "crmproxy_gateway_tracked_total",
            "counter",
            "Messages tracked by the rules.",
            |r| r.tracked,
        ),
        (
            "crmproxy_gateway_skipped_total",
            "counter",
            "Messages the rules left alone.",
            |r| r.skipped,
        ),
        (
            "crmproxy_gateway_failed_total",
            "counter",
            "Messages whose tracking failed.",
            |r| r.failed,
        ),
        (
            "crmproxy_gateway_connections",
            "gauge",
            "IMAP connections open.",
            |r| r.connections,
        ),
        (
            "crmproxy_gateway_backlog",
            "gauge",
            "Messages found new and not judged yet.",
            |r| r.backlog,
        ),
        (
            "crmproxy_gateway_mailbox_up",
            "gauge",
            "1 unless the mailbox is in error.",
            |r| u64::from(r.state != MailboxState::Error),
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for r in reports {
            let _ = writeln!(out, "{name}{{mailbox=\"{}\"}} {}", label(&r.name), value(r));
        }
    }
    let _ = writeln!(
        out,
        "# HELP crmproxy_gateway_mailboxes Mailboxes configured.\n# TYPE crmproxy_gateway_mailboxes gauge\ncrmproxy_gateway_mailboxes {}",
        reports.len()
    );
    out
}
