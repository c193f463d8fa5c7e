//! The pane's HTML, rendered on the server with maud (which escapes every interpolated
//! text). The chrome follows the Dynamics 365 pane of the guide: a header with the
//! signed-in user, then the menu bar, then the page. Pages work without JavaScript;
//! `pane.js` only adds live updates and Outlook integration.

use axum::http::StatusCode;
use maud::{html, Markup, DOCTYPE};

use super::events::MessageOpened;
use super::guard::CSRF_FIELD;

/// The menu bar's entries, in the guide's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Home,
    Current,
    Create,
    Search,
    Contacts,
    Documents,
}

/// (entry, path, label, shorter label for a narrow pane), in the guide's order (Home, Quick Create, Search, Documents), with the current
/// message after Home and the Contacts page last.
const NAV: [(Nav, &str, &str, &str); 6] = [
    (Nav::Home, "/", "Home", "Home"),
    (Nav::Current, "/current", "Current message", "Message"),
    (Nav::Create, "/create", "Quick Create", "New"),
    (Nav::Search, "/search", "Search", "Search"),
    (Nav::Documents, "/documents", "Documents", "Docs"),
    (Nav::Contacts, "/contacts", "Contacts", "Contacts"),
];

/// What every signed-in page needs for its chrome.
pub struct Chrome<'a> {
    /// Who signed in.
    pub user: &'a str,
    pub csrf: &'a str,
    /// Opened inside Outlook: load Office.js (allowed by the CSP only then).
    pub office: bool,
    /// A delegate acting for an owner's mailbox: every page says so.
    pub acting_for: Option<ActingFor<'a>>,
    /// What stands in the way of tracking in this mailbox: every page says so.
    pub problems: &'a [String],
}

/// The owner whose mailbox a delegate acts for.
pub struct ActingFor<'a> {
    pub owner_name: &'a str,
    pub owner_login: &'a str,
}

/// The delegate banner (SPEC section 8, the guide's "Use delegate access"): whose
/// mailbox this is, that actions are recorded as the delegate's, what a delegate
/// may not do, and the way back to one's own mailbox.
fn delegate_banner(chrome: &Chrome<'_>) -> Markup {
    html! {
        @if let Some(a) = &chrome.acting_for {
            div.banner.delegate role="status" data-acting-for=(a.owner_login) {
                p {
                    "You are acting for " strong { (a.owner_name) } "\u{2019}s mailbox ("
                    span.addr { (a.owner_login) } "). What you track shows for both of you and "
                    "is recorded as yours. A delegate cannot set regarding to a new contact."
                }
                form.inline method="post" action="/mailbox" {
                    input type="hidden" name=(CSRF_FIELD) value=(chrome.csrf);
                    input type="hidden" name="owner" value="";
                    button.link type="submit" { "Back to my mailbox" }
                }
            }
        }
    }
}

fn head(title: &str, office: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · crmproxy" }
            link rel="stylesheet" href="/assets/pane.css";
            link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
            @if office {
                script src=(format!("{}/lib/1/hosted/office.js", super::guard::OFFICE_JS_ORIGIN)) {}
            }
            script src="/assets/pane.js" defer {}
        }
    }
}

/// A signed-in page: header, menu bar, content.
pub fn layout(chrome: &Chrome<'_>, active: Option<Nav>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, chrome.office))
            body {
                a.skip href="#main" { "Skip to content" }
                header.bar {
                    a.brand href="/" aria-label="crmproxy home" {
                        img src="/assets/icon.svg" alt="" width="20" height="20";
                        span { "crmproxy" }
                    }
                    span.user title="Signed in as" { (chrome.user) }
                    a.mailboxes href="/mailbox" title="Mailboxes you may act for" { "Mailbox" }
                    form.signout method="post" action="/signout" {
                        input type="hidden" name=(CSRF_FIELD) value=(chrome.csrf);
                        button.link type="submit" { "Sign out" }
                    }
                }
                nav.menu aria-label="Pane" {
                    ul {
                        @for (nav, href, label, short) in NAV {
                            li {
                                a href=(href) aria-current=[(Some(nav) == active).then_some("page")] {
                                    @if label == short {
                                        (label)
                                    } @else {
                                        span.wide { (label) }
                                        span.narrow aria-hidden="true" { (short) }
                                    }
                                }
                            }
                        }
                    }
                }
                (delegate_banner(chrome))
                @for problem in chrome.problems {
                    div.banner.warn role="alert" { p { (problem) } }
                }
                main #main data-csrf=(chrome.csrf) { (body) }
            }
        }
    }
}

/// A page without the menu (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, false))
            body.bare {
                header.bar {
                    a.brand href="/" {
                        img src="/assets/icon.svg" alt="" width="20" height="20";
                        span { "crmproxy" }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

pub fn error_page(status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    bare(
        title,
        html! {
            section.card.problem role="alert" {
                h1 { (title) }
                p { (message) }
                p { a href="/" { "Back to the pane" } }
            }
        },
    )
}

/// The sign-in form. `error` is shown above it; `next` is where to go afterwards.
pub fn signin(csrf: &str, next: &str, user: &str, error: Option<&str>) -> Markup {
    bare(
        "Sign in",
        html! {
            section.card.signin {
                h1 { "Sign in" }
                p.hint { "Use your mailbox's e-mail address and password; the mail server checks them." }
                @if let Some(e) = error {
                    p.error role="alert" { (e) }
                }
                form method="post" action="/signin" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    input type="hidden" name="next" value=(next);
                    label for="user" { "E-mail address" }
                    input #user type="email" name="user" value=(user) autocomplete="username" required autofocus[user.is_empty()];
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required autofocus[!user.is_empty()];
                    button.primary type="submit" { "Sign in" }
                }
                p.hint { "Or run " code { "crmproxy pane-url --user you@example.com" } " and open the one-time link it prints." }
            }
        },
    )
}

/// A one-time link that did not work.
pub fn link_refused(reason: &str) -> Markup {
    bare(
        "Sign-in link refused",
        html! {
            section.card.problem role="alert" {
                h1 { "Sign-in link refused" }
                p { (reason) "." }
                p { "Each link works once and for 10 minutes. Run "
                    code { "crmproxy pane-url --user you@example.com" }
                    " for a new one, or " a href="/signin" { "sign in with your mailbox password" } "." }
            }
        },
    )
}

fn message_summary(m: &MessageOpened) -> Markup {
    html! {
        dl.facts {
            dt { "Subject" } dd { (m.subject.as_deref().unwrap_or("(no subject)")) }
            @if let Some(from) = &m.from { dt { "From" } dd { (from) } }
            dt { "Message-ID" } dd.mono { (m.message_id) }
            @if let Some(mb) = &m.mailbox {
                dt { "Folder" } dd { (mb) @if let Some(uid) = m.uid { " · UID " (uid) } }
            }
            dt { "Opened" } dd { time datetime=(m.opened_at.to_rfc3339()) { (m.opened_at.format("%Y-%m-%d %H:%M UTC")) } }
        }
    }
}

fn message_href(m: &MessageOpened) -> String {
    format!(
        "/message?id={}",
        form_urlencoded::byte_serialize(m.message_id.as_bytes()).collect::<String>()
    )
}

fn recent_list(recent: &[MessageOpened]) -> Markup {
    html! {
        @if recent.is_empty() {
            p.empty { "No message opened yet. Open one in your mail client and it appears here." }
        } @else {
            ul.list {
                @for m in recent {
                    li {
                        a href=(message_href(m)) { (m.subject.as_deref().unwrap_or(&m.message_id)) }
                        span.meta { @if let Some(f) = &m.from { (f) " · " } (m.opened_at.format("%H:%M")) }
                    }
                }
            }
        }
    }
}

fn lookup_form() -> Markup {
    html! {
        form.inline method="get" action="/message" role="search" {
            label for="mid" { "Message-ID" }
            div.row {
                input #mid type="text" name="id" placeholder="abc123@example.com" required;
                button type="submit" { "Open" }
            }
        }
    }
}

/// Home: the current message, the recent ones, and a look-up by Message-ID.
pub fn home(chrome: &Chrome<'_>, recent: &[MessageOpened], dashboard: Markup) -> Markup {
    layout(
        chrome,
        Some(Nav::Home),
        "Home",
        html! {
            h1 { "Home" }
            section.card aria-labelledby="h-current" {
                h2 #h-current { "Current message" }
                @if let Some(m) = recent.first() {
                    (message_summary(m))
                    p { a href="/current" { "Open current message" } }
                } @else {
                    p.empty { "No message opened yet." }
                }
            }
            section.card aria-labelledby="h-recent" {
                h2 #h-recent { "Recent messages" }
                (recent_list(recent))
            }
            (dashboard)
            section.card aria-labelledby="h-find" {
                h2 #h-find { "Find a message" }
                (lookup_form())
            }
        },
    )
}

/// The message the user last opened; live-updated by `pane.js` through `/events`.
pub fn current(
    chrome: &Chrome<'_>,
    current: Option<&MessageOpened>,
    crm_panels: Option<Markup>,
) -> Markup {
    let shown = current.map(|m| m.message_id.as_str()).unwrap_or("");
    layout(
        chrome,
        Some(Nav::Current),
        "Current message",
        html! {
            h1 { "Current message" }
            section.card data-live="current" data-shown=(shown) aria-live="polite" {
                @if let Some(m) = current {
                    (message_summary(m))
                } @else {
                    p.empty { "No message opened yet. Open a message in your mail client: it appears here by itself." }
                }
            }
            @if let Some(p) = crm_panels { (p) }
            p.hint { "This page follows the message you open in your mail client." }
        },
    )
}

/// One message by Message-ID, with a form to make it the current one.
pub fn message(
    chrome: &Chrome<'_>,
    id: &str,
    found: Option<&MessageOpened>,
    crm_panels: Markup,
) -> Markup {
    layout(
        chrome,
        None,
        "Message",
        html! {
            h1 { "Message" }
            section.card {
                @if let Some(m) = found {
                    (message_summary(m))
                } @else {
                    dl.facts { dt { "Message-ID" } dd.mono { (id) } }
                    p.empty { "You have not opened this message in your mail client since the pane started." }
                }
                form method="post" action="/current" {
                    input type="hidden" name=(CSRF_FIELD) value=(chrome.csrf);
                    input type="hidden" name="message_id" value=(id);
                    button.primary type="submit" { "Show as current message" }
                }
            }
            (crm_panels)
            section.card { h2 { "Find another message" } (lookup_form()) }
        },
    )
}
