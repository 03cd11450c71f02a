//! The web listener under slow and hostile clients, over real TCP on loopback: the connection
//! cap, the header and request timeouts, peer addresses reaching handlers, and shutdown.
//!
//! Only generous upper bounds on time are asserted (how long we wait before calling something
//! hung); how fast things happen is for `dispatch-bench`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use dispatch::config::Config;
use dispatch::store::Store;
use dispatch::web::{self, AppState, RateLimits, ServeLimits};
use governor::Quota;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

/// Longest we wait for anything before calling the server stuck.
const PATIENCE: Duration = Duration::from_secs(30);

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(limits: ServeLimits, rate: Option<RateLimits>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("web.db")).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::default();
    config.web.public_url = dispatch::domain::WebUrl::parse(&format!("http://{addr}")).unwrap();
    let mut state = AppState::new(store, Arc::new(config));
    if let Some(rate) = rate {
        state.limits = Arc::new(rate);
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(web::serve_with(listener, state, limits, async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        stop: Some(tx),
        task,
        _dir: dir,
    }
}

/// A client that sends half a request line and then nothing.
async fn slow_client(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HT").await.unwrap();
    s
}

/// Sends `request` from `from` (any loopback address) and reads the answer to the end.
async fn exchange(addr: SocketAddr, from: Option<IpAddr>, request: &str) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";

/// Waits until the server closes `s` (EOF or reset), discarding anything it sends first.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn slow_clients_beyond_the_cap_cannot_lock_out_a_normal_request() {
    let limits = ServeLimits {
        max_connections: 8,
        header_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(30),
    };
    let server = start(limits, None).await;
    // More half-sent requests than there are slots: 8 are served, 4 wait in the backlog.
    let mut slow = Vec::new();
    for _ in 0..12 {
        slow.push(slow_client(server.addr).await);
    }

    // A normal request, queued behind them all, is answered once the first slow ones time out.
    let answer = timeout(PATIENCE, exchange(server.addr, None, HEALTHZ))
        .await
        .expect("a normal request got no answer while slow clients held every slot");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("\r\n\r\nok\n"), "{answer}");

    // Every slow client is disconnected by the server, none kept forever.
    for (i, s) in slow.iter_mut().enumerate() {
        let closed = timeout(PATIENCE, closed_by_server(s)).await;
        assert!(
            closed.is_ok(),
            "slow client {i} still connected after {PATIENCE:?}"
        );
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let limits = ServeLimits {
        max_connections: 2,
        header_timeout: Duration::from_secs(600),
        request_timeout: Duration::from_secs(600),
    };
    let server = start(limits, None).await;
    let mut first = slow_client(server.addr).await;
    let _second = slow_client(server.addr).await;

    // Both slots are held, so a third client waits in the backlog without an answer.
    let waiting = timeout(Duration::from_secs(1), exchange(server.addr, None, HEALTHZ)).await;
    assert!(
        waiting.is_err(),
        "answered beyond the cap of 2 connections: {waiting:?}"
    );

    // One slow client leaves: its slot goes to the next client in line.
    first.shutdown().await.unwrap();
    drop(first);
    let answer = timeout(PATIENCE, exchange(server.addr, None, HEALTHZ))
        .await
        .expect("no answer after a slot was freed");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let limits = ServeLimits {
        max_connections: 8,
        header_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(30),
    };
    let server = start(limits, None).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    // Read the whole keep-alive answer (its body is "ok\n", then the database and the node,
    // the node's line last).
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let whole = |got: &[u8]| {
        let text = String::from_utf8_lossy(got);
        text.split_once("\r\n\r\nok\n")
            .is_some_and(|(_, rest)| rest.contains("node: ") && rest.ends_with('\n'))
    };
    while !whole(&got) {
        let n = timeout(PATIENCE, s.read(&mut buf))
            .await
            .expect("no answer")
            .unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200 OK"));
    // Then say nothing: the server hangs up.
    assert!(
        timeout(PATIENCE, closed_by_server(&mut s)).await.is_ok(),
        "an idle keep-alive connection was kept open"
    );
}

#[tokio::test]
async fn a_request_whose_body_never_arrives_gets_408_and_is_closed() {
    let limits = ServeLimits {
        max_connections: 8,
        header_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(1),
    };
    let server = start(limits, None).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"POST /subscribe HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nemail=a%40",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    timeout(PATIENCE, s.read_to_end(&mut out))
        .await
        .expect("a request with a stalled body was never ended")
        .ok();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
}

#[tokio::test]
async fn handlers_see_each_peer_address() {
    // One sign-up attempt a minute per IP: the second from 127.0.0.1 is refused, while
    // 127.0.0.2 is still a new client. Invalid forms count too, so no list is needed.
    let rate = RateLimits::new(
        Quota::per_minute(NonZeroU32::new(1).unwrap()),
        Quota::per_hour(NonZeroU32::new(100).unwrap()),
    );
    let server = start(ServeLimits::default(), Some(rate)).await;
    let post = "POST /subscribe HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 18\r\n\r\nemail=not-an-email";
    let one = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
    let two = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let a = exchange(server.addr, one, post).await;
    assert!(a.starts_with("HTTP/1.1 400"), "{a}");
    let b = exchange(server.addr, one, post).await;
    assert!(b.starts_with("HTTP/1.1 429"), "{b}");
    let c = exchange(server.addr, two, post).await;
    assert!(
        c.starts_with("HTTP/1.1 400"),
        "another address is not limited: {c}"
    );
}

#[tokio::test]
async fn shutdown_returns_and_refuses_new_connections() {
    let mut server = start(ServeLimits::default(), None).await;
    let answer = exchange(server.addr, None, HEALTHZ).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    // An idle keep-alive client must not hold shutdown up.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = timeout(PATIENCE, idle.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 0);

    let _ = server.stop.take().map(|tx| tx.send(()));
    timeout(PATIENCE, &mut server.task)
        .await
        .expect("the server did not stop")
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still accepting after shutdown"
    );
}
