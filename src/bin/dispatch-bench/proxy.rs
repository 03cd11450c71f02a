//! A loopback TCP proxy that delays everything it forwards, to put a real relay's distance
//! between a client and a server on this machine: [`start`] it in front of `target` and
//! connect to [`Proxy::addr`] instead. Each chunk read from one side is written to the other
//! [`DELAY`] after it was read, in order, both ways: a round trip through it is 10 ms plus
//! loopback's own. Chunks are not held up by the ones before them beyond their own delay, so
//! throughput is that of a long fat pipe, as on a real path.
//!
//! Protocol-agnostic (SMTP here; a database protocol works the same). The proxy stops, with
//! every connection through it, when the [`Proxy`] is dropped.
//!
//! tokio's timers round up to the next millisecond, which would add half a millisecond on
//! average to every 5 ms; the deadlines are kept by a thread of the proxy's own instead,
//! which wakes to within tens of microseconds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// The delay each way.
pub(crate) const DELAY: Duration = Duration::from_millis(5);

/// Bytes read at once: a 30 KB message and its commands fit in one chunk.
const CHUNK: usize = 64 * 1024;

/// A running proxy.
pub(crate) struct Proxy {
    addr: SocketAddr,
    /// The accept loop, which owns every connection's tasks.
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Where to connect instead of the target.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a proxy to `target` on a free loopback port, delaying by [`DELAY`] each way.
pub(crate) async fn start(target: SocketAddr) -> std::io::Result<Proxy> {
    start_with_delay(target, DELAY).await
}

/// Starts a proxy to `target` on a free loopback port, delaying by `delay` each way.
pub(crate) async fn start_with_delay(
    target: SocketAddr,
    delay: Duration,
) -> std::io::Result<Proxy> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let clock = Clock::start()?;
    let task = tokio::spawn(async move {
        // Dropped with this task: aborting the proxy aborts every connection.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((client, _)) = accepted else { return };
                    connections.spawn(forward(client, target, delay, clock.clone()));
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Ok(Proxy { addr, task })
}

/// Connects to `target` and copies both ways through delay lines until either side closes.
async fn forward(client: TcpStream, target: SocketAddr, delay: Duration, clock: Clock) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    // Replies and commands are small; they must not wait for a delayed ACK.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let _ = tokio::join!(
        pump(cr, sw, delay, clock.clone()),
        pump(sr, cw, delay, clock)
    );
}

/// One direction: a reader stamping each chunk with its arrival, a writer sending it on
/// `delay` later. The end of the stream is passed on the same way.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    clock: Clock,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        loop {
            let mut buf = Vec::with_capacity(CHUNK);
            let n = from.read_buf(&mut buf).await.unwrap_or(0);
            let at = Instant::now() + delay;
            // An empty chunk is the end of the stream.
            if tx.send((at, buf)).is_err() || n == 0 {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            clock.until(at).await;
            if chunk.is_empty() || to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Wakes tasks at their deadlines, from a thread that sleeps exactly until the next one.
#[derive(Clone)]
struct Clock {
    tx: std_mpsc::Sender<(Instant, oneshot::Sender<()>)>,
}

impl Clock {
    fn start() -> std::io::Result<Self> {
        let (tx, rx) = std_mpsc::channel::<(Instant, oneshot::Sender<()>)>();
        std::thread::Builder::new()
            .name("bench-proxy-clock".into())
            .spawn(move || {
                // Deadlines in order; the sequence number keeps equal ones apart.
                let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
                let mut wakers: std::collections::HashMap<u64, oneshot::Sender<()>> =
                    std::collections::HashMap::new();
                let mut seq = 0u64;
                loop {
                    let now = Instant::now();
                    while let Some(Reverse((at, id))) = due.peek().copied() {
                        if at > now {
                            break;
                        }
                        due.pop();
                        if let Some(w) = wakers.remove(&id) {
                            let _ = w.send(());
                        }
                    }
                    let next = match due.peek() {
                        Some(Reverse((at, _))) => {
                            rx.recv_timeout(at.saturating_duration_since(now))
                        }
                        None => rx
                            .recv()
                            .map_err(|_| std_mpsc::RecvTimeoutError::Disconnected),
                    };
                    match next {
                        Ok((at, waker)) => {
                            seq += 1;
                            due.push(Reverse((at, seq)));
                            wakers.insert(seq, waker);
                        }
                        Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                        // Every proxy task is gone.
                        Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        Ok(Self { tx })
    }

    /// Returns at `at` (at once if it has passed).
    async fn until(&self, at: Instant) {
        if at <= Instant::now() {
            return;
        }
        let (waker, woken) = oneshot::channel();
        if self.tx.send((at, waker)).is_ok() {
            let _ = woken.await;
        } else {
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_arrive_unchanged_and_in_order_both_ways() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = vec![0; 1 << 20];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        let proxy = start_with_delay(target, Duration::from_millis(20))
            .await
            .unwrap();
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        let sent: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        c.write_all(&sent).await.unwrap();
        let mut back = vec![0; sent.len()];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(back, sent);
    }
}
