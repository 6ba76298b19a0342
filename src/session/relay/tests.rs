//! Relay loop tests over in-memory pipes: ordering, coalescing, huge frames, invalid frames,
//! termination and graceful shutdown.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

struct Harness {
    app: DuplexStream,
    server: DuplexStream,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<(Result<End, SessionError>, BytesMut)>,
}

fn start(greeting: &[u8]) -> Harness {
    let (app, client_side) = duplex(256 * 1024);
    let (upstream_side, server) = duplex(256 * 1024);
    let (stop, mut rx) = watch::channel(false);
    let mut relay = Relay::new(
        client_side,
        upstream_side,
        BytesMut::from(greeting),
        BytesMut::new(),
    );
    let task = tokio::spawn(async move {
        let r = relay.run(&mut rx).await;
        if let Err(e) = &r
            && let Some(pg) = e.pg_error()
        {
            relay.send_to_client(&pg.encode());
        }
        relay.close(r.as_ref().ok().copied()).await;
        (r, BytesMut::new())
    });
    Harness {
        app,
        server,
        stop,
        task,
    }
}

async fn read_n(s: &mut DuplexStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v).await.unwrap();
    v
}

#[tokio::test]
async fn pipelined_messages_pass_byte_for_byte_both_ways() {
    let greeting = msg(b'Z', b"I");
    let mut h = start(&greeting);
    assert_eq!(read_n(&mut h.app, 6).await, greeting);
    let mut up = Vec::new();
    for i in 0..200 {
        up.extend(msg(b'Q', format!("select {i}\0").as_bytes()));
    }
    h.app.write_all(&up).await.unwrap();
    assert_eq!(read_n(&mut h.server, up.len()).await, up);
    let mut down = Vec::new();
    for _ in 0..200 {
        down.extend(msg(b'T', &[0, 0]));
        down.extend(msg(b'C', b"SELECT 1\0"));
        down.extend(msg(b'Z', b"I"));
    }
    h.server.write_all(&down).await.unwrap();
    assert_eq!(read_n(&mut h.app, down.len()).await, down);
    h.app.write_all(&msg(b'X', b"")).await.unwrap();
    assert_eq!(read_n(&mut h.server, 5).await, msg(b'X', b""));
    let (r, _) = h.task.await.unwrap();
    assert_eq!(r.unwrap(), End::ClientTerminated);
}

#[tokio::test]
async fn twenty_megabyte_frames_pass_both_ways() {
    let mut h = start(b"");
    let big: Vec<u8> = (0..20 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let up = msg(b'd', &big);
    let down = msg(b'D', &big);
    let mut app = h.app;
    let mut server = h.server;
    let (up2, down2) = (up.clone(), down.clone());
    let writer = tokio::spawn(async move {
        app.write_all(&up2).await.unwrap();
        let got = read_n(&mut app, down2.len()).await;
        (app, got)
    });
    let got_up = read_n(&mut server, up.len()).await;
    assert!(got_up == up, "client → server frame changed");
    server.write_all(&down).await.unwrap();
    let (app, got_down) = writer.await.unwrap();
    assert!(got_down == down, "server → client frame changed");
    drop(server);
    let (r, _) = h.task.await.unwrap();
    assert_eq!(r.unwrap(), End::UpstreamClosed);
    drop(app);
    let _ = &mut h.stop;
}

#[tokio::test]
async fn invalid_client_frame_gets_fatal_and_closes_both() {
    let mut h = start(b"");
    h.app.write_all(&[b'Q', 0, 0, 0, 2]).await.unwrap();
    let (r, _) = h.task.await.unwrap();
    assert!(matches!(r, Err(SessionError::ClientFrame(_))));
    let mut rest = Vec::new();
    h.app.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest[0], b'E');
    assert!(rest.windows(5).any(|w| w == b"08P01"));
    let mut up = Vec::new();
    h.server.read_to_end(&mut up).await.unwrap();
    assert!(up.is_empty(), "nothing of the invalid frame goes upstream");
}

#[tokio::test]
async fn backend_key_data_after_login_is_not_relayed() {
    let mut h = start(b"");
    let mut down = msg(b'K', &[0, 0, 0, 9, 1, 2, 3, 4]);
    down.extend(msg(b'N', b"SNOTICE\0Mhi\0\0"));
    h.server.write_all(&down).await.unwrap();
    let notice = msg(b'N', b"SNOTICE\0Mhi\0\0");
    assert_eq!(read_n(&mut h.app, notice.len()).await, notice);
}

#[tokio::test]
async fn shutdown_waits_for_the_transaction_then_says_why() {
    let mut h = start(b"");
    h.app.write_all(&msg(b'Q', b"begin\0")).await.unwrap();
    read_n(&mut h.server, 11).await;
    h.server.write_all(&msg(b'Z', b"T")).await.unwrap();
    read_n(&mut h.app, 6).await;
    h.stop.send(true).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!h.task.is_finished(), "must not close inside a transaction");
    h.app.write_all(&msg(b'Q', b"commit\0")).await.unwrap();
    read_n(&mut h.server, 12).await;
    h.server.write_all(&msg(b'Z', b"I")).await.unwrap();
    let (r, _) = h.task.await.unwrap();
    assert_eq!(r.unwrap(), End::Shutdown);
    let mut rest = Vec::new();
    h.app.read_to_end(&mut rest).await.unwrap();
    assert_eq!(&rest[..6], &msg(b'Z', b"I")[..]);
    assert!(rest.windows(5).any(|w| w == b"57P01"));
    let mut up = Vec::new();
    h.server.read_to_end(&mut up).await.unwrap();
    assert_eq!(up, msg(b'X', b""));
}
