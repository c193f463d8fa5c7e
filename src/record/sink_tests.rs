//! Tests of `sink.rs`: chunks and immediate writes in order, bounded waiting,
//! whole pages direct, a runtime shutting down.

use super::*;

fn sink() -> (tempfile::TempDir, PathBuf, Arc<Sink>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    let file = File::create(&path).unwrap();
    let s = Sink::new(file, path.clone());
    (dir, path, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_and_immediate_writes_land_in_order() {
    let (_d, path, s) = sink();
    let mut want = Vec::new();
    for i in 0..40u8 {
        let mut c = s.buffer();
        c.extend_from_slice(&[b'a' + i % 26; 100_000]);
        want.extend_from_slice(c.as_slice());
        s.queue(c);
        if i % 10 == 9 {
            s.write_now(&[b"line\n", b"more\n"]);
            want.extend_from_slice(b"line\nmore\n");
        }
    }
    s.close(false);
    assert_eq!(std::fs::read(&path).unwrap(), want);
    // Handed over after closing: dropped, nothing written.
    let mut late = s.buffer();
    late.extend_from_slice(b"late");
    s.queue(late);
    s.write_now(&[b"late"]);
    assert_eq!(std::fs::read(&path).unwrap().len(), want.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_waits_to_be_written_is_bounded() {
    let (_d, path, s) = sink();
    let mut peak = 0;
    let mut want = Vec::new();
    for i in 0..200usize {
        let mut c = s.buffer();
        // Odd sizes: chunks start anywhere in a page.
        let len = CHUNK - 1 + i % 3;
        c.extend_from_slice(&vec![b'a' + (i % 26) as u8; len]);
        want.extend_from_slice(c.as_slice());
        s.queue(c);
        peak = peak.max(s.lock().queued);
    }
    assert!(peak <= QUEUE_MAX + CHUNK, "{peak} bytes waited");
    s.close(false);
    // The writer fell behind (direct or not, all of it is there, in order).
    assert!(std::fs::read(&path).unwrap() == want);
}

/// Chunks of every size and place, between writes of the relay: the same
/// bytes, whole pages direct where the file system takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_pages_go_direct_and_the_file_is_the_same() {
    let (_d, path, s) = sink();
    let on = s.direct().on;
    let mut want = Vec::new();
    let page = align();
    let sizes = [
        1,
        page - 1,
        page,
        page + 1,
        3 * page + 17,
        100_000,
        CHUNK + 3,
        7,
    ];
    for (i, &len) in sizes.iter().cycle().take(40).enumerate() {
        let fill = b'A' + (i % 26) as u8;
        let mut c = s.buffer();
        c.extend_from_slice(&vec![fill; len]);
        if i % 5 == 4 {
            // Written before the chunk is handed over: it is out of place
            // (its bytes no longer go where it was laid out for).
            s.write_now(&[b"\nanswer\n"]);
            want.extend_from_slice(b"\nanswer\n");
        }
        want.extend_from_slice(c.as_slice());
        s.queue(c);
        if i % 7 == 6 {
            s.settle();
        }
    }
    let stats = s.direct();
    s.close(false);
    assert!(std::fs::read(&path).unwrap() == want, "the file differs");
    if on {
        let big: usize = sizes.iter().filter(|&&n| n >= 2 * page).sum();
        assert!(stats.on && stats.bytes >= big as u64, "{stats:?}");
        // Each fifth chunk was out of place; the rest were laid out right.
        assert!(stats.misplaced <= 8, "{stats:?}");
    } else {
        eprintln!("this file system takes no direct writes: not tested here");
    }
}

/// A runtime shutting down refuses the writer's job and drops it on the
/// caller's thread: the job writes there, and the relay does not hang.
#[test]
fn handing_over_while_the_runtime_shuts_down_writes_and_returns() {
    let (_d, path, s) = sink();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    rt.shutdown_background();
    let (done, returned) = std::sync::mpsc::channel();
    let sink = s.clone();
    std::thread::spawn(move || {
        let _in = handle.enter();
        let mut c = sink.buffer();
        c.extend_from_slice(b"abc");
        sink.queue(c);
        let _ = done.send(());
    });
    let waited = returned.recv_timeout(std::time::Duration::from_secs(10));
    assert!(waited.is_ok(), "queue() hung");
    assert_eq!(std::fs::read(&path).unwrap(), b"abc");
}

#[test]
fn without_a_runtime_it_writes_in_place() {
    let (_d, path, s) = sink();
    let mut c = s.buffer();
    c.extend_from_slice(b"abc");
    s.queue(c);
    assert!(s.is_idle());
    assert_eq!(std::fs::read(&path).unwrap(), b"abc");
    s.close(true);
    assert!(!path.exists());
}
