//! The pane benchmark (SPEC section 11: "Pane pages p95 < 30 ms with 100,000
//! records"), not a test: `cargo bench --bench pane`.
//!
//! A sled store in a temp dir with N records (default 100,000: accounts, contacts,
//! leads, opportunities, cases) written in bulk, and M tracked emails plus some
//! appointments and tasks (default 20,000 activities) for one user; the pane started
//! in-process on loopback; one signed-in HTTPS client over ONE keep-alive connection
//! (as a browser's pane would). Measures p50/p95 of the current-message page (each
//! time another tracked message, with its people, regarding and assistant cards),
//! search, Set Regarding (a form POST, durable write through the tracking engine)
//! and Home. Prints a markdown table.
//!
//! Environment: BENCH_RECORDS (100000), BENCH_EMAILS (20000), BENCH_REQUESTS (300).

use chrono::{Duration as Days, Utc};
use crmproxy::config::Config;
use crmproxy::pane::{MessageOpened, PaneEvents};
use crmproxy::store::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_num(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const FIRST: &[&str] = &[
    "Ada", "Alan", "Anna", "Björn", "Carla", "Chen", "Dario", "Elena", "Émile", "Fatima", "Grace",
    "Hana", "Igor", "Jamal", "José", "Kenji", "Lena", "Maria", "Omar", "Priya", "Søren", "Zoë",
];
const LAST: &[&str] = &[
    "Abbott", "Álvarez", "Bauer", "Chen", "Dubois", "Fischer", "García", "Ito", "Jensen", "Müller",
    "Novak", "Okafor", "Rossi", "Silva", "Tanaka", "Weber", "Xu", "Yilmaz",
];
const COMPANY: &[&str] = &[
    "Contoso",
    "Fabrikam",
    "Northwind",
    "Litware",
    "Tailspin",
    "Wingtip",
    "Proseware",
    "Woodgrove",
];

fn pick<'a>(v: &[&'a str], i: usize) -> &'a str {
    v[i % v.len()]
}

/// The bulk records: accounts first (contacts and opportunities link to them).
fn records(n: usize) -> (Vec<Record>, Vec<ContactId>, Vec<AccountId>) {
    let accounts = n / 20;
    let leads = n / 10;
    let opportunities = n / 25;
    let cases = n / 100;
    let contacts = n - accounts - leads - opportunities - cases;
    let mut out = Vec::with_capacity(n);
    let mut acc_ids = Vec::new();
    for i in 0..accounts {
        let id = AccountId::new();
        acc_ids.push(id);
        out.push(Record::Account(Account {
            id,
            stamps: Stamps::default(),
            name: format!("{} {i}", pick(COMPANY, i)),
            website: String::new(),
            phone: String::new(),
            emails: vec![],
            address: Default::default(),
            primary_contact: None,
        }));
    }
    let mut contact_ids = Vec::new();
    for i in 0..contacts {
        let id = ContactId::new();
        contact_ids.push(id);
        out.push(Record::Contact(Contact {
            id,
            stamps: Stamps::default(),
            first_name: pick(FIRST, i * 7).into(),
            last_name: pick(LAST, i * 13 + i / 7).into(),
            full_name: String::new(),
            job_title: "Buyer".into(),
            department: String::new(),
            company: format!("{} {}", pick(COMPANY, i), i % accounts),
            account: Some(acc_ids[i % accounts]),
            emails: vec![EmailAddress::parse(&format!(
                "contact{i}@company{}.example",
                i % accounts
            ))
            .unwrap()],
            business_phone: String::new(),
            mobile_phone: String::new(),
            address: Default::default(),
            categories: Vec::new(),
        }));
    }
    for i in 0..leads {
        out.push(Record::Lead(Lead {
            id: LeadId::new(),
            stamps: Stamps::default(),
            first_name: pick(FIRST, i * 3).into(),
            last_name: pick(LAST, i * 5).into(),
            full_name: String::new(),
            company: format!("Prospect {i}"),
            topic: "Analytics".into(),
            job_title: String::new(),
            emails: vec![EmailAddress::parse(&format!("lead{i}@prospect.example")).unwrap()],
            phone: String::new(),
            address: Default::default(),
            status: LeadStatus::New,
        }));
    }
    let today = Utc::now().date_naive();
    for i in 0..opportunities {
        out.push(Record::Opportunity(Opportunity {
            id: OpportunityId::new(),
            stamps: Stamps::default(),
            name: format!("Deal {i}"),
            account: Some(acc_ids[i % accounts]),
            contact: None,
            estimated_close: Some(today + Days::days((i % 90) as i64 - 10)),
            estimated_value: None,
            status: DealStatus::Open,
        }));
    }
    for i in 0..cases {
        out.push(Record::Case(Case {
            id: CaseId::new(),
            stamps: Stamps::default(),
            title: format!("Case {i}"),
            customer: RecordRef::new(Kind::Account, acc_ids[i % accounts]),
            status: CaseStatus::Active,
            description: String::new(),
        }));
    }
    (out, contact_ids, acc_ids)
}

fn party(role: PartyRole, r: RecordRef) -> Party {
    Party {
        role,
        address: None,
        name: String::new(),
        records: vec![r],
    }
}

fn email(user: UserId, i: usize, contacts: &[ContactId]) -> (Activity, TrackingRecord) {
    let c = |k: usize| RecordRef::new(Kind::Contact, contacts[k % contacts.len()]);
    let mid = MessageId::parse(&format!("<bench-{i}@company.example>")).unwrap();
    let a = Activity {
        id: ActivityId::new(),
        stamps: Stamps::default(),
        owner: user,
        subject: format!("Order {i}"),
        regarding: Some(c(i * 31)),
        parties: vec![
            party(PartyRole::Sender, c(i * 31)),
            party(PartyRole::To, RecordRef::new(Kind::User, user)),
            party(PartyRole::Cc, c(i * 31 + 1)),
            party(PartyRole::Cc, c(i * 31 + 2)),
        ],
        details: ActivityDetails::Email(EmailActivity {
            content_digest: None,
            message_id: mid.clone(),
            date: Utc::now() - Days::hours((i % 2000) as i64),
            direction: Direction::Incoming,
            body_text: "Hello, please confirm the order. ".repeat(20),
            in_reply_to: None,
            references: vec![],
            thread_index: None,
            attachments: vec![],
            raw: None,
            smime: None,
            correlation: Correlation::None,
            correlated_with: None,
        }),
    };
    let t = TrackingRecord {
        status: TrackStatus::Tracked,
        activity: Some(a.id),
        ..TrackingRecord::pending(user, mid, user)
    };
    (a, t)
}

fn planned(user: UserId, i: usize, contacts: &[ContactId]) -> Activity {
    let who = RecordRef::new(Kind::Contact, contacts[(i * 31) % contacts.len()]);
    let details = if i.is_multiple_of(2) {
        let start = Utc::now() + Days::hours((i % 500) as i64);
        ActivityDetails::Appointment(AppointmentActivity {
            start,
            end: start + Days::hours(1),
            location: String::new(),
            uid: None,
            recurrence: None,
            raw_invitation: None,
            message_id: None,
            calendar: Default::default(),
        })
    } else {
        ActivityDetails::Task(TaskActivity {
            due: Some(Utc::now() + Days::hours((i % 300) as i64 - 50)),
            state: TaskState::Open,
            description: String::new(),
        })
    };
    Activity {
        id: ActivityId::new(),
        stamps: Stamps::default(),
        owner: user,
        subject: format!("Follow-up {i}"),
        regarding: Some(who),
        parties: vec![party(PartyRole::Participant, who)],
        details,
    }
}

/// One HTTPS keep-alive connection, with the session cookie.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
    cookie: String,
}

impl Conn {
    async fn open(addr: SocketAddr, ca: &std::path::Path) -> Conn {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        Conn {
            sender,
            host: format!("localhost:{}", addr.port()),
            cookie: String::new(),
        }
    }

    async fn send(&mut self, method: &str, path: &str, form: Option<String>) -> (u16, String) {
        self.sender.ready().await.unwrap();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        if !self.cookie.is_empty() {
            req = req.header("cookie", &self.cookie);
        }
        let body = match form {
            Some(f) => {
                req = req
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("origin", format!("https://{}", self.host));
                f
            }
            None => String::new(),
        };
        let resp = self
            .sender
            .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        for c in resp.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            if c.starts_with("__Host-crmproxy-session=") {
                self.cookie = c.split(';').next().unwrap().to_owned();
            }
        }
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn timed(
        &mut self,
        method: &str,
        path: &str,
        form: Option<String>,
        want: u16,
    ) -> Duration {
        let t = Instant::now();
        let (status, body) = self.send(method, path, form).await;
        let e = t.elapsed();
        assert_eq!(
            status,
            want,
            "{method} {path}: {}",
            &body[..body.len().min(300)]
        );
        e
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    let n = env_num("BENCH_RECORDS", 100_000);
    let emails = env_num("BENCH_EMAILS", 20_000);
    let requests = env_num("BENCH_REQUESTS", 300);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    cfg.pane.addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));

    // The store: records in bulk, then tracked emails and planned activities in batches.
    let t = Instant::now();
    let store = SledStore::open(cfg.store_dir()).unwrap();
    let user = store
        .put_record(Record::User(SystemUser {
            id: UserId::new(),
            stamps: Stamps::default(),
            full_name: "Bench User".into(),
            logins: vec![EmailAddress::parse("bench@example.test").unwrap()],
            imap_logins: Vec::new(),
            privileges: [Privilege::UseApp].into_iter().collect(),
            delegates: Default::default(),
            options: Default::default(),
        }))
        .unwrap();
    let user = UserId::from_uuid(user.id());
    let (recs, contacts, accounts) = records(n);
    store.put_records_bulk(recs, &mut |_| {}).unwrap();
    let records_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for chunk in (0..emails).collect::<Vec<_>>().chunks(500) {
        let items = chunk
            .iter()
            .map(|i| {
                let (a, t) = email(user, *i, &contacts);
                (Some(a), t)
            })
            .collect();
        store.track_batch(items).unwrap();
    }
    let planned_n = emails / 10;
    for chunk in (0..planned_n).collect::<Vec<_>>().chunks(500) {
        let acts = chunk.iter().map(|i| planned(user, *i, &contacts)).collect();
        store.put_tracked(acts, vec![]).unwrap();
    }
    let activities_secs = t.elapsed().as_secs_f64();
    store.warm_up().unwrap();
    let store: Arc<dyn CrmStore> = Arc::new(store);

    // The pane, in-process, and a signed-in keep-alive client.
    let events = PaneEvents::new();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pane = crmproxy::pane::start(&cfg, events.clone(), store.clone(), async move {
        let _ = stop_rx.await;
    })
    .await
    .unwrap();
    let mut c = Conn::open(pane.local_addr, &cfg.cert_dir().join("ca.pem")).await;
    let token = crmproxy::pane::link::issue(&cfg.data_dir, "bench@example.test").unwrap();
    let (status, _) = c
        .send("GET", &format!("/signin/link?token={token}"), None)
        .await;
    assert_eq!(status, 303);
    let (_, session) = c.send("GET", "/api/session", None).await;
    let session: serde_json::Value = serde_json::from_str(&session).unwrap();
    let csrf = session["csrf_token"].as_str().unwrap().to_owned();

    // What is measured is the real page: tracked regarding, people, assistant cards.
    events.publish_opened(
        "bench@example.test",
        MessageOpened::new("<bench-0@company.example>"),
    );
    let (_, page) = c.send("GET", "/current", None).await;
    for part in ["Tracked regarding", "id=\"h-people\"", "class=\"acard\""] {
        assert!(
            page.contains(part),
            "{part} missing from the current message page"
        );
    }

    let mut current = Vec::new();
    let mut search = Vec::new();
    let mut regarding = Vec::new();
    let mut home = Vec::new();
    let warm = 20;
    for k in 0..requests + warm {
        let i = (k * 7919) % emails;
        let mut ev = MessageOpened::new(&format!("<bench-{i}@company.example>"));
        ev.from = Some(format!(
            "contact{}@company.example",
            (i * 31) % contacts.len()
        ));
        events.publish_opened("bench@example.test", ev);
        let d = c.timed("GET", "/current", None, 200).await;
        if k >= warm {
            current.push(d);
        }

        let q = match k % 3 {
            0 => format!("{} {}", pick(FIRST, k), pick(LAST, k * 5)),
            1 => format!("{} {}", pick(COMPANY, k), k % 997),
            _ => pick(LAST, k).chars().take(3).collect(),
        };
        let path = format!(
            "/search?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("q", &q)
                .finish()
        );
        let d = c.timed("GET", &path, None, 200).await;
        if k >= warm {
            search.push(d);
        }

        let target = RecordRef::new(Kind::Account, accounts[k % accounts.len()]);
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("csrf", &csrf)
            .append_pair("message_id", &format!("<bench-{i}@company.example>"))
            .append_pair("regarding", &format!("account:{}", target.id))
            .finish();
        let d = c.timed("POST", "/regarding", Some(form), 303).await;
        if k >= warm {
            regarding.push(d);
        }

        if k.is_multiple_of(3) {
            let d = c.timed("GET", "/", None, 200).await;
            if k >= warm {
                home.push(d);
            }
        }
    }
    let _ = stop_tx.send(());
    pane.wait().await;

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "| pane benchmark ({n} records, {} activities; {requests} requests each, one keep-alive HTTPS connection) | p50 / p95 | target |",
        emails + planned_n
    );
    println!("|---|---|---|");
    for (name, v) in [
        (
            "current message page (people, tracking, assistant cards)",
            &mut current,
        ),
        (
            "search (words, company + number, 3-letter prefix)",
            &mut search,
        ),
        ("Set Regarding (form POST, durable write)", &mut regarding),
        (
            "Home (counts, newest, favourites, recent, assistant)",
            &mut home,
        ),
    ] {
        println!(
            "| {name} | {} / {} | p95 < 30 ms |",
            ms(pct(v, 0.5)),
            ms(pct(v, 0.95))
        );
    }
    println!(
        "| generating the store: records / activities | {records_secs:.1} s / {activities_secs:.1} s | |"
    );
    println!(
        "| machine load average (1/5/15 min) after | {} | (2 cores) |",
        load.join(" ")
    );
}
