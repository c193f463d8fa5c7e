//! Durability: a child process writes in a loop and prints each id once the write
//! has returned; it is killed with SIGKILL at an arbitrary moment, and on reopen
//! every acknowledged write must be there, indexes included. Repeated several
//! times on the same store so recovery after recovery is exercised.

use chrono::Utc;
use crmproxy::store::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const WRITER_ENV: &str = "CRMPROXY_TEST_CRASH_WRITER_DIR";

fn user_id(s: &SledStore) -> UserId {
    let login = EmailAddress::parse("writer@example.test").unwrap();
    if let Some(u) = s.user_by_login(&login).unwrap() {
        return u.id;
    }
    let u = s
        .put_record(Record::User(SystemUser {
            id: UserId::new(),
            stamps: Stamps::default(),
            full_name: "Writer".into(),
            logins: vec![login],
            imap_logins: Vec::new(),
            privileges: Default::default(),
            delegates: Default::default(),
            options: Default::default(),
        }))
        .unwrap();
    UserId::from_uuid(u.id())
}

/// The child: runs only when re-executed by `acknowledged_writes_survive_sigkill`.
#[test]
#[ignore = "helper process for acknowledged_writes_survive_sigkill"]
fn crash_writer() {
    let Some(dir) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let s = SledStore::open(&dir).unwrap();
    let owner = user_id(&s);
    let round = std::process::id();
    for i in 0u64.. {
        let email = EmailAddress::parse(&format!("w{round}x{i}@example.com")).unwrap();
        let c = s
            .put_record(Record::Contact(Contact {
                id: ContactId::new(),
                stamps: Stamps::default(),
                first_name: format!("Writer{i}"),
                last_name: format!("Round{round}"),
                full_name: String::new(),
                job_title: String::new(),
                department: String::new(),
                company: String::new(),
                account: None,
                emails: vec![email.clone()],
                business_phone: String::new(),
                mobile_phone: String::new(),
                address: PostalAddress::default(),
                categories: Vec::new(),
            }))
            .unwrap();
        println!("ACK contact {} {}", c.id(), email.as_str());
        let raw = s
            .put_blob(format!("Message-ID: <{round}.{i}@example.com>\r\n\r\nbody").as_bytes())
            .unwrap();
        let msgid = MessageId::parse(&format!("{round}.{i}@example.com")).unwrap();
        let a = s
            .put_activity(Activity {
                id: ActivityId::new(),
                stamps: Stamps::default(),
                owner,
                subject: format!("mail {i}"),
                regarding: Some(c.as_ref()),
                parties: vec![],
                details: ActivityDetails::Email(EmailActivity {
                    content_digest: None,
                    message_id: msgid.clone(),
                    date: Utc::now(),
                    direction: Direction::Incoming,
                    body_text: String::new(),
                    in_reply_to: None,
                    references: vec![],
                    thread_index: None,
                    attachments: vec![],
                    raw: Some(raw),
                    smime: None,
                    correlation: Correlation::None,
                    correlated_with: None,
                }),
            })
            .unwrap();
        println!("ACK activity {} {}", a.id, msgid.as_str());
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let d = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut contacts: Vec<(uuid::Uuid, String)> = Vec::new();
    let mut activities: Vec<(uuid::Uuid, String)> = Vec::new();
    // Kill after different numbers of acknowledgements, to land at different moments.
    for kill_after in [1usize, 37, 120, 5, 260] {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_writer",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_ENV, d.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acks = 0;
        while acks < kill_after {
            let Some(line) = lines.next() else {
                panic!("the writer stopped early")
            };
            let line = line.unwrap();
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["ACK", "contact", id, key] => {
                    contacts.push((id.parse().unwrap(), key.to_string()))
                }
                ["ACK", "activity", id, key] => {
                    activities.push((id.parse().unwrap(), key.to_string()))
                }
                _ => continue,
            }
            acks += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let s = SledStore::open(d.path()).expect("the store opens after a kill");
        for (id, key) in &contacts {
            let r = s
                .record(*id)
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged contact {id} lost"));
            let found = s
                .resolve_address(&EmailAddress::parse(key).unwrap())
                .unwrap();
            assert_eq!(
                found.iter().map(|r| r.id).collect::<Vec<_>>(),
                vec![*id],
                "address index of {key}"
            );
            let hits = s
                .search(&SearchQuery {
                    text: r.title(),
                    kinds: vec![Kind::Contact],
                    limit: 5,
                })
                .unwrap();
            assert_eq!(
                hits.first().map(|h| h.id),
                Some(*id),
                "search index of {}",
                r.title()
            );
        }
        for (id, msgid) in &activities {
            let a = s
                .activity(ActivityId::from_uuid(*id))
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged activity {id} lost"));
            let m = MessageId::parse(msgid).unwrap();
            assert_eq!(
                s.activity_by_message_id(&m).unwrap().map(|a| a.id.uuid()),
                Some(*id)
            );
            let raw = a.blobs()[0].clone();
            assert!(
                s.blob(&raw).is_ok(),
                "the raw message of an acknowledged activity is whole"
            );
            let regarding = a.regarding.unwrap().id;
            assert!(s
                .activities_of(regarding, 10)
                .unwrap()
                .iter()
                .any(|x| x.id == a.id));
        }
        // Nothing dangles: every activity's regarding exists (even unacknowledged ones).
        for a in s.export().unwrap().activities {
            assert!(s.record(a.regarding.unwrap().id).unwrap().is_some());
        }
    }
    assert!(contacts.len() >= 200, "the writer wrote {}", contacts.len());
}
