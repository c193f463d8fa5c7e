//! Sessions through the in-process proxy against a scripted fake upstream on
//! loopback: relaying, literals, capability filtering, local answers, faults.

mod proxy_support;

use proxy_support::*;

#[tokio::test]
async fn commands_and_responses_pass_unchanged() {
    let mut s = setup(None).await;
    assert_eq!(s.greeting, GREETING);
    // Pipelined, odd spacing and case, an unknown extension: all byte-identical.
    s.client
        .send("a1 noop\r\nA2 x-unknown  (weird  stuff)\r\na3 uid fetch 5:1,3 (flags)\r\n")
        .await;
    assert_eq!(s.server.line().await, "a1 noop\r\n");
    assert_eq!(s.server.line().await, "A2 x-unknown  (weird  stuff)\r\n");
    assert_eq!(s.server.line().await, "a3 uid fetch 5:1,3 (flags)\r\n");
    // Garbage is not the proxy's to judge: the upstream answers it.
    s.client.send(b"\x01\xff}{ garbage \0\r\n").await;
    assert_eq!(s.server.bytes(16).await, b"\x01\xff}{ garbage \0\r\n");
    let answers = [
        "a1 OK noop done\r\n",
        "* XAPPLEPUSHSERVICE aps-version 2\r\n",
        "A2 BAD what?\r\n",
        "* 1 FETCH (UID 19436 FLAGS (\\Seen) X-GM-LABELS (\"\\\\Important\"))\r\n",
        "a3 OK done\r\n",
    ];
    for a in answers {
        s.server.send(a).await;
        assert_eq!(s.client.line().await, a);
    }
    s.proxy.shutdown().await;
}

#[tokio::test]
async fn sync_literal_waits_for_the_server_and_no_proxy_continuation() {
    let mut s = setup(None).await;
    s.client.send("a APPEND INBOX {5}\r\n").await;
    assert_eq!(s.server.line().await, "a APPEND INBOX {5}\r\n");
    // The first thing the client sees is what the server sends, not a `+` from the proxy.
    s.server.send("* 3 EXISTS\r\n+ go ahead\r\n").await;
    assert_eq!(s.client.line().await, "* 3 EXISTS\r\n");
    assert_eq!(s.client.line().await, "+ go ahead\r\n");
    s.client.send("hello\r\n").await;
    assert_eq!(s.server.bytes(5).await, b"hello");
    assert_eq!(s.server.line().await, "\r\n");
    s.server.send("a OK appended\r\n").await;
    assert_eq!(s.client.line().await, "a OK appended\r\n");
}

#[tokio::test]
async fn sync_literal_refused_by_the_server_is_cancelled() {
    let mut s = setup(None).await;
    s.client.send("a APPEND INBOX {5}\r\n").await;
    assert_eq!(s.server.line().await, "a APPEND INBOX {5}\r\n");
    s.server.send("a NO [TOOBIG] too big\r\n").await;
    assert_eq!(s.client.line().await, "a NO [TOOBIG] too big\r\n");
    // What follows is a new command, not 5 payload bytes.
    s.client.send("b NOOP\r\n").await;
    assert_eq!(s.server.line().await, "b NOOP\r\n");
}

#[tokio::test]
async fn non_sync_and_binary_literals_flow_directly_with_nul_bytes() {
    let mut s = setup(None).await;
    s.client
        .send(b"a APPEND INBOX (\\Seen) ~{4+}\r\n\0\x01\r\n {3+}\r\nxyz\r\n")
        .await;
    assert_eq!(s.server.line().await, "a APPEND INBOX (\\Seen) ~{4+}\r\n");
    assert_eq!(s.server.bytes(4).await, b"\0\x01\r\n");
    assert_eq!(s.server.line().await, " {3+}\r\n");
    assert_eq!(s.server.bytes(3).await, b"xyz");
    assert_eq!(s.server.line().await, "\r\n");
    let resp = b"* 1 FETCH (BINARY[] ~{3}\r\n\0a\n UID 4)\r\n";
    s.server.send(resp).await;
    assert_eq!(s.client.bytes(resp.len()).await, resp);
}

#[tokio::test]
async fn large_fetch_literal_streams_through_intact() {
    let mut s = setup(None).await;
    let body: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    s.client.send("f UID FETCH 9 BODY.PEEK[]\r\n").await;
    assert_eq!(s.server.line().await, "f UID FETCH 9 BODY.PEEK[]\r\n");
    let head = format!("* 2 FETCH (UID 9 BODY[] {{{}}}\r\n", body.len());
    let server = async {
        s.server.send(&head).await;
        s.server.send(&body).await;
        s.server.send(" FLAGS (\\Seen))\r\nf OK done\r\n").await;
    };
    let client = async {
        assert_eq!(s.client.line().await, head);
        let got = s.client.bytes(body.len()).await;
        assert!(got == body, "body changed in transit");
        assert_eq!(s.client.line().await, " FLAGS (\\Seen))\r\n");
        assert_eq!(s.client.line().await, "f OK done\r\n");
    };
    tokio::join!(server, client);
}

#[tokio::test]
async fn over_long_client_line_gets_bad_and_the_session_continues() {
    let mut s = setup(None).await;
    let long = format!("t1 SEARCH TEXT \"{}\"\r\n", "x".repeat(5000));
    s.client.send(&long).await;
    assert_eq!(s.client.line().await, "t1 BAD command line too long\r\n");
    // A non-sync literal announced at the end of an over-long line is skipped too.
    let long_lit = format!("t2 APPEND \"{}\" {{4+}}\r\nabcd\r\n", "y".repeat(3000));
    s.client.send(&long_lit).await;
    assert_eq!(s.client.line().await, "t2 BAD command line too long\r\n");
    s.client.send("t3 NOOP\r\n").await;
    assert_eq!(s.server.line().await, "t3 NOOP\r\n");
}

#[tokio::test]
async fn over_long_server_line_streams_through_unchanged() {
    let mut s = setup(None).await;
    let long = format!("* SEARCH {}\r\n", "12345 ".repeat(2000).trim_end());
    s.server.send(&long).await;
    assert_eq!(s.client.line().await, long);
    // …even with a literal announced at its end.
    let long_lit = format!(
        "* 1 FETCH (X-LONG \"{}\" BODY[] {{3}}\r\nabc)\r\n",
        "z".repeat(3000)
    );
    s.server.send(&long_lit).await;
    assert_eq!(s.client.bytes(long_lit.len()).await, long_lit.as_bytes());
}

#[tokio::test]
async fn capabilities_filtered_in_greeting_untagged_and_tagged() {
    let upstream = FakeUpstream::start().await;
    let proxy = start_proxy(config_for(upstream.addr), None).await;
    let mut c = Peer::connect(proxy.imap).await;
    let mut u = upstream
        .accept("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=SCRAM-SHA-256-PLUS AUTH=PLAIN COMPRESS=DEFLATE X-FOO] hi\r\n")
        .await;
    // No client TLS configured: STARTTLS is not offered.
    assert_eq!(
        c.line().await,
        "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN X-FOO] hi\r\n"
    );
    c.send("a CAPABILITY\r\n").await;
    assert_eq!(u.line().await, "a CAPABILITY\r\n");
    u.send("* CAPABILITY IMAP4rev1 LOGINDISABLED Compress=Deflate IDLE\r\na OK [CAPABILITY IMAP4rev1 AUTH=OAUTHBEARER AUTH=SCRAM-SHA-1-PLUS] done\r\n").await;
    assert_eq!(c.line().await, "* CAPABILITY IMAP4rev1 IDLE\r\n");
    assert_eq!(
        c.line().await,
        "a OK [CAPABILITY IMAP4rev1 AUTH=OAUTHBEARER] done\r\n"
    );
}

#[tokio::test]
async fn compress_and_starttls_are_answered_locally() {
    let mut s = setup(None).await;
    s.client.send("c1 COMPRESS DEFLATE\r\n").await;
    assert_eq!(
        s.client.line().await,
        "c1 NO COMPRESS is not available through crmproxy\r\n"
    );
    s.client.send("c2 STARTTLS\r\n").await;
    assert_eq!(
        s.client.line().await,
        "c2 BAD STARTTLS is not available\r\n"
    );
    s.client.send("c3 NOOP\r\n").await;
    // Neither reached the upstream.
    assert_eq!(s.server.line().await, "c3 NOOP\r\n");
}

#[tokio::test]
async fn idle_and_done_pass_through() {
    let mut s = setup(None).await;
    s.client.send("i IDLE\r\n").await;
    assert_eq!(s.server.line().await, "i IDLE\r\n");
    s.server.send("+ idling\r\n* 4 EXISTS\r\n").await;
    assert_eq!(s.client.line().await, "+ idling\r\n");
    assert_eq!(s.client.line().await, "* 4 EXISTS\r\n");
    s.client.send("DONE\r\n").await;
    assert_eq!(s.server.line().await, "DONE\r\n");
    s.server.send("i OK idle done\r\n").await;
    assert_eq!(s.client.line().await, "i OK idle done\r\n");
}

#[tokio::test]
async fn upstream_loss_mid_session_says_bye_and_other_sessions_live_on() {
    let upstream = FakeUpstream::start().await;
    let proxy = start_proxy(config_for(upstream.addr), None).await;
    let mut c1 = Peer::connect(proxy.imap).await;
    let u1 = upstream.accept(GREETING).await;
    c1.line().await;
    let mut c2 = Peer::connect(proxy.imap).await;
    let mut u2 = upstream.accept(GREETING).await;
    c2.line().await;
    drop(u1);
    let bye = c1.line().await;
    assert!(bye.starts_with("* BYE "), "{bye}");
    assert!(c1.closed().await);
    c2.send("n NOOP\r\n").await;
    assert_eq!(u2.line().await, "n NOOP\r\n");
    u2.send("n OK\r\n").await;
    assert_eq!(c2.line().await, "n OK\r\n");
}

#[tokio::test]
async fn upstream_loss_mid_streamed_literal_just_closes() {
    let mut s = setup(None).await;
    // Bigger than what the proxy holds whole: it is already streaming to the client.
    s.server.send("* 1 FETCH (BODY[] {200000}\r\n").await;
    s.server.send(vec![b'a'; 100_000]).await;
    drop(s.server);
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut s.client.io, &mut rest)
        .await
        .unwrap();
    assert_eq!(rest.len(), "* 1 FETCH (BODY[] {200000}\r\n".len() + 100_000);
    assert!(!String::from_utf8_lossy(&rest).contains("BYE"));
}

#[tokio::test]
async fn upstream_loss_inside_a_held_message_says_bye() {
    let mut s = setup(None).await;
    // Small message not yet relayed at all: the client is at a boundary.
    s.server.send("* 1 FETCH (BODY[] {100}\r\nonly part").await;
    drop(s.server);
    let bye = s.client.line().await;
    assert!(bye.starts_with("* BYE "), "{bye}");
    assert!(s.client.closed().await);
}

#[tokio::test]
async fn upstream_down_at_connect_gives_bye_unavailable() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let proxy = start_proxy(config_for(addr), None).await;
    let mut c = Peer::connect(proxy.imap).await;
    let bye = c.line().await;
    assert!(bye.starts_with("* BYE [UNAVAILABLE] "), "{bye}");
    assert!(c.closed().await);
}

#[tokio::test]
async fn client_disconnect_mid_literal_ends_only_that_session() {
    let upstream = FakeUpstream::start().await;
    let proxy = start_proxy(config_for(upstream.addr), None).await;
    let mut c1 = Peer::connect(proxy.imap).await;
    let mut u1 = upstream.accept(GREETING).await;
    c1.line().await;
    c1.send("a APPEND INBOX {10+}\r\nabc").await;
    assert_eq!(u1.line().await, "a APPEND INBOX {10+}\r\n");
    assert_eq!(u1.bytes(3).await, b"abc");
    drop(c1);
    assert!(
        u1.closed().await,
        "upstream connection of the dead client stays open"
    );
    let mut c2 = Peer::connect(proxy.imap).await;
    let mut u2 = upstream.accept(GREETING).await;
    assert_eq!(c2.line().await, GREETING);
    c2.send("b NOOP\r\n").await;
    assert_eq!(u2.line().await, "b NOOP\r\n");
}

#[tokio::test]
async fn shutdown_says_bye_to_idle_sessions() {
    let s = setup(None).await;
    let mut client = s.client;
    let stop = tokio::spawn(s.proxy.shutdown());
    let bye = client.line().await;
    assert!(bye.starts_with("* BYE "), "{bye}");
    assert!(client.closed().await);
    stop.await.unwrap();
}

#[tokio::test]
async fn over_long_tagged_refusal_still_cancels_the_sync_literal() {
    let mut s = setup(None).await;
    s.client.send("a APPEND INBOX {5}\r\n").await;
    assert_eq!(s.server.line().await, "a APPEND INBOX {5}\r\n");
    let refusal = format!("a NO {}\r\n", "n".repeat(3000));
    s.server.send(&refusal).await;
    assert_eq!(s.client.line().await, refusal);
    s.client.send("b NOOP\r\n").await;
    assert_eq!(s.server.line().await, "b NOOP\r\n");
}
