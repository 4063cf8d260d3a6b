//! CRI log files through the public API: a writer task and a follower, on the real clock (the
//! follower polls the file). Only bounded waits, to fail instead of hanging; no timing
//! assertions.

use std::time::{Duration, SystemTime};

use localfargate_runtime::LogOptions;
use localfargate_runtime::crilog::{self, LogWriter, Stream};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(30);

fn follow() -> LogOptions {
    LogOptions {
        follow: true,
        ..LogOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crilog_follower_receives_every_line_in_order_until_done() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    // Small files, so the writer rotates several times while the follower reads; enough of them
    // kept that a follower slowed down by a busy machine still finds every one.
    let mut w = LogWriter::open(&path, 4096, 100).unwrap();
    w.write(Stream::Stdout, b"starting\n", SystemTime::now())
        .unwrap();
    let (done_tx, done) = watch::channel(false);
    let mut rx = crilog::stream_log(path.clone(), follow(), done);
    // The follower has the first file open before the writer rotates it.
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no first chunk");
    let mut received = first.expect("the stream closed");
    assert_eq!(received, b"starting\n");

    let writer = tokio::spawn(async move {
        let mut expected = b"starting\n".to_vec();
        for i in 0..300u32 {
            let stream = if i % 7 == 0 {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            // Every third line arrives in two chunks (a P piece, then the rest).
            let line = format!("{stream} line {i:04}\n");
            if i % 3 == 0 {
                let (a, b) = line.as_bytes().split_at(5);
                w.write(stream, a, SystemTime::now()).unwrap();
                w.write(stream, b, SystemTime::now()).unwrap();
            } else {
                w.write(stream, line.as_bytes(), SystemTime::now()).unwrap();
            }
            expected.extend_from_slice(line.as_bytes());
            if i % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
        w.flush().unwrap();
        // The instance exits after its last output was written.
        done_tx.send(true).unwrap();
        expected
    });

    tokio::time::timeout(WAIT, async {
        while let Some(chunk) = rx.recv().await {
            received.extend(chunk);
        }
    })
    .await
    .expect("the follower did not end after done");
    let expected = writer.await.unwrap();
    assert_eq!(
        String::from_utf8(received).unwrap(),
        String::from_utf8(expected).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crilog_follower_that_is_dropped_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut w =
        LogWriter::open(&path, crilog::DEFAULT_MAX_BYTES, crilog::DEFAULT_MAX_FILES).unwrap();
    w.write(Stream::Stdout, b"hello\n", SystemTime::now())
        .unwrap();
    let (done_tx, done) = watch::channel(false);
    let mut rx = crilog::stream_log(path.clone(), follow(), done);
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no first chunk");
    assert_eq!(first.as_deref(), Some(&b"hello\n"[..]));
    // The follower task holds the only other receiver of `done`.
    assert_eq!(done_tx.receiver_count(), 1);
    drop(rx);
    w.write(Stream::Stdout, b"nobody reads this\n", SystemTime::now())
        .unwrap();
    tokio::time::timeout(WAIT, async {
        while done_tx.receiver_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the follower did not stop after its receiver was dropped");
    // The container is still running: `done` was never set.
    assert!(!*done_tx.borrow());
}

#[tokio::test]
async fn crilog_finished_instance_streams_its_log_and_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("1.log");
    let mut w =
        LogWriter::open(&path, crilog::DEFAULT_MAX_BYTES, crilog::DEFAULT_MAX_FILES).unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_417_522);
    w.write(Stream::Stdout, b"one\ntwo\n", t).unwrap();
    w.write(Stream::Stderr, b"exiting", t).unwrap();
    drop(w);
    let (_done_tx, done) = watch::channel(true);
    let options = LogOptions {
        timestamps: true,
        tail_lines: Some(2),
        ..follow()
    };
    let mut rx = crilog::stream_log(path.clone(), options.clone(), done);
    let got = tokio::time::timeout(WAIT, async {
        let mut out = Vec::new();
        while let Some(chunk) = rx.recv().await {
            out.extend(chunk);
        }
        out
    })
    .await
    .expect("the stream did not close");
    let expected = "2026-12-04T20:52:02.000000000Z two\n2026-12-04T20:52:02.000000000Z exiting";
    assert_eq!(String::from_utf8(got).unwrap(), expected);
    assert_eq!(
        String::from_utf8(crilog::read_log(&path, &options).unwrap()).unwrap(),
        expected
    );
}
