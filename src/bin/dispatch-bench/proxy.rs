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
//! [`Proxy::stats`] says what it saw: how late each chunk left against its deadline (the
//! proxy's own error, which would cap every client alike), how many round trips the client
//! made (a chunk from the client after a reply went back is one), how long the client took
//! from a reply to its next chunk, and how long the server took to answer.
//!
//! tokio's timers round up to the next millisecond, which would add half a millisecond on
//! average to every 5 ms; the deadlines are kept by a thread of the proxy's own instead,
//! which wakes to within tens of microseconds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, PoisonError};
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
    seen: Arc<Mutex<Seen>>,
}

impl Proxy {
    /// Where to connect instead of the target.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the proxy has seen so far, over every connection through it.
    pub(crate) fn stats(&self) -> Stats {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        Stats {
            connections: seen.connections,
            turns: seen.turns,
            late_us: Quantiles::of(&mut seen.late_us),
            client_us: Quantiles::of(&mut seen.client_us),
            server_us: Quantiles::of(&mut seen.server_us),
        }
    }
}

/// What a proxy saw, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    pub(crate) connections: u64,
    /// Round trips the clients made: chunks from a client after a reply went back to it.
    pub(crate) turns: u64,
    /// How late chunks left, against their deadline (both ways).
    pub(crate) late_us: Quantiles,
    /// From a reply written to the client to the client's next chunk read: the client's
    /// own time between rounds (loopback included).
    pub(crate) client_us: Quantiles,
    /// From a chunk written to the server to its next reply read.
    pub(crate) server_us: Quantiles,
}

/// The median, the 99th percentile, the largest and the mean of some samples.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Quantiles {
    pub(crate) n: u64,
    pub(crate) p50: u64,
    pub(crate) p99: u64,
    pub(crate) max: u64,
    pub(crate) mean: f64,
}

impl Quantiles {
    fn of(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
        Self {
            n: samples.len() as u64,
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
            mean: samples.iter().sum::<u64>() as f64 / samples.len() as f64,
        }
    }
}

impl std::fmt::Display for Quantiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} samples: median {} µs, p99 {} µs, max {} µs, mean {:.0} µs",
            self.n, self.p50, self.p99, self.max, self.mean
        )
    }
}

/// Samples of every connection.
#[derive(Default)]
struct Seen {
    connections: u64,
    turns: u64,
    late_us: Vec<u64>,
    client_us: Vec<u64>,
    server_us: Vec<u64>,
}

/// One connection's last events, shared by its two directions.
#[derive(Default)]
struct Rounds {
    /// When a reply was last written to the client (taken by the client's next chunk).
    replied: Option<Instant>,
    /// When a chunk was last written to the server (taken by its next reply).
    asked: Option<Instant>,
}

/// Which way a pump copies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    ToServer,
    ToClient,
}

/// What a pump records into.
#[derive(Clone)]
struct Log {
    seen: Arc<Mutex<Seen>>,
    rounds: Arc<Mutex<Rounds>>,
    way: Way,
}

impl Log {
    fn micros(d: Duration) -> u64 {
        u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
    }

    /// A chunk was read at `at`.
    fn read(&self, at: Instant) {
        let mut rounds = self.rounds.lock().unwrap_or_else(PoisonError::into_inner);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        match self.way {
            Way::ToServer => {
                if let Some(t) = rounds.replied.take() {
                    seen.turns += 1;
                    seen.client_us
                        .push(Self::micros(at.saturating_duration_since(t)));
                }
            }
            Way::ToClient => {
                if let Some(t) = rounds.asked.take() {
                    seen.server_us
                        .push(Self::micros(at.saturating_duration_since(t)));
                }
            }
        }
    }

    /// A chunk due at `due` was written, done at `done` after it began at `began`.
    fn wrote(&self, due: Instant, began: Instant, done: Instant) {
        let mut rounds = self.rounds.lock().unwrap_or_else(PoisonError::into_inner);
        match self.way {
            Way::ToServer => rounds.asked = Some(done),
            Way::ToClient => rounds.replied = Some(done),
        }
        drop(rounds);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.late_us
            .push(Self::micros(began.saturating_duration_since(due)));
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
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let log = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        // Dropped with this task: aborting the proxy aborts every connection.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((client, _)) = accepted else { return };
                    log.lock().unwrap_or_else(PoisonError::into_inner).connections += 1;
                    connections.spawn(forward(client, target, delay, clock.clone(), Arc::clone(&log)));
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Ok(Proxy { addr, task, seen })
}

/// Connects to `target` and copies both ways through delay lines until either side closes.
async fn forward(
    client: TcpStream,
    target: SocketAddr,
    delay: Duration,
    clock: Clock,
    seen: Arc<Mutex<Seen>>,
) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    // Replies and commands are small; they must not wait for a delayed ACK.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let rounds: Arc<Mutex<Rounds>> = Arc::default();
    let log = |way| Log {
        seen: Arc::clone(&seen),
        rounds: Arc::clone(&rounds),
        way,
    };
    let _ = tokio::join!(
        pump(cr, sw, delay, clock.clone(), log(Way::ToServer)),
        pump(sr, cw, delay, clock, log(Way::ToClient))
    );
}

/// One direction: a reader stamping each chunk with its arrival, a writer sending it on
/// `delay` later. The end of the stream is passed on the same way.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    clock: Clock,
    log: Log,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader_log = log.clone();
    let reader = async move {
        loop {
            let mut buf = Vec::with_capacity(CHUNK);
            let n = from.read_buf(&mut buf).await.unwrap_or(0);
            let read = Instant::now();
            let at = read + delay;
            if n > 0 {
                reader_log.read(read);
            }
            // An empty chunk is the end of the stream.
            if tx.send((at, buf)).is_err() || n == 0 {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            clock.until(at).await;
            let began = Instant::now();
            if chunk.is_empty() || to.write_all(&chunk).await.is_err() {
                break;
            }
            log.wrote(at, began, Instant::now());
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
