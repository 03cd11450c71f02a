//! A small scripted SMTP server for tests (RFC 5321 subset, no TLS).
//!
//! It answers like a normal relay (EHLO with PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES,
//! optionally CHUNKING and AUTH PLAIN/LOGIN; MAIL, RCPT, DATA, BDAT, RSET, NOOP, QUIT) and
//! records every accepted message. A [`Policy`] closure sees each event and can override the
//! reply, stall (never answer) or drop the connection, which is how tests script faults.
//!
//! It reads commands as a pipelining server does (RFC 2920): whatever the client wrote in one
//! go is answered in order, and [`SmtpServer::round_trips`] counts how often the client waited
//! for replies before writing more. [`ServerConfig::max_connections`] turns connections
//! beyond a number away with a 421 greeting, as relays limit connections per client.
//!
//! Part of [`crate::support`]: `use support::smtp_server::{SmtpServer, ServerConfig};`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// A message the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// MAIL FROM address (without brackets).
    pub from: String,
    /// RCPT TO addresses.
    pub to: Vec<String>,
    /// The data with dot-stuffing undone, up to and including the last line's CRLF.
    pub data: Vec<u8>,
    /// Which connection (0-based) carried it.
    pub connection: usize,
    /// It came with BDAT (RFC 3030), not DATA.
    pub chunked: bool,
}

/// Something the client did, shown to the [`Policy`].
#[derive(Debug)]
pub enum Event<'a> {
    /// A client connected; the greeting is next.
    Connect { connection: usize },
    /// `MAIL FROM:<addr>`.
    Mail(&'a str),
    /// `RCPT TO:<addr>`.
    Rcpt(&'a str),
    /// `DATA`.
    Data,
    /// The first line of message data arrived (for BDAT: a chunk's command), for these
    /// accepted recipients.
    DataStarted(&'a [String]),
    /// The whole message arrived; the reply is next.
    DataEnd(&'a Received),
}

/// What the server does about an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The normal reply.
    Default,
    /// This reply line (without CRLF) instead.
    Reply(String),
    /// This reply, then close the connection.
    ReplyAndClose(String),
    /// Close the connection without a word.
    Drop,
    /// Never answer again (the connection stays open).
    Stall,
    /// Wait this long, then give the normal reply (a slow but healthy relay). For the end of
    /// data, the message counts as accepted like with [`Action::Default`].
    Delay(std::time::Duration),
}

impl Action {
    /// Whether the server goes on as with the normal reply (perhaps after a delay).
    fn accepts(&self) -> bool {
        matches!(self, Action::Default | Action::Delay(_))
    }
}

/// Decides the [`Action`] for each [`Event`].
pub type Policy = Arc<dyn Fn(&Event<'_>) -> Action + Send + Sync>;

/// How the server behaves.
#[derive(Clone)]
pub struct ServerConfig {
    /// Accepted AUTH user and password; `None` offers no AUTH.
    pub auth: Option<(String, String)>,
    /// Whether to advertise STARTTLS (the command itself is refused: no TLS here).
    pub advertise_starttls: bool,
    /// Whether to advertise PIPELINING (RFC 2920). The server reads pipelined commands either
    /// way; a client must not send them when it is not offered.
    pub pipelining: bool,
    /// Whether to advertise CHUNKING (RFC 3030) and take BDAT.
    pub chunking: bool,
    /// Connections open at once beyond this are greeted with a 421 and closed.
    pub max_connections: Option<usize>,
    /// The fault script.
    pub policy: Policy,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            auth: None,
            advertise_starttls: false,
            pipelining: true,
            chunking: false,
            max_connections: None,
            policy: Arc::new(|_| Action::Default),
        }
    }
}

impl ServerConfig {
    /// A server with this fault script.
    pub fn with_policy(policy: impl Fn(&Event<'_>) -> Action + Send + Sync + 'static) -> Self {
        Self {
            policy: Arc::new(policy),
            ..Self::default()
        }
    }
}

/// A running server; stops when dropped.
pub struct SmtpServer {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<AtomicUsize>,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

/// What the server counts across its connections.
#[derive(Default)]
struct Counts {
    /// Times a connection waited for its client after answering it.
    round_trips: AtomicUsize,
    /// Connections turned away by `max_connections`.
    refused: AtomicUsize,
    /// Connections open now, and the most at once.
    open: AtomicUsize,
    peak: AtomicUsize,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpServer {
    /// Starts listening on 127.0.0.1 with a free port.
    pub async fn start(cfg: ServerConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let counts = Arc::new(Counts::default());
        let (r, c, k) = (received.clone(), connections.clone(), counts.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                // A pipelining server must not hold its second and third replies for the
                // client's delayed ACK (real ones flush the batch; this one writes each reply).
                let _ = sock.set_nodelay(true);
                let open = k.open.fetch_add(1, Ordering::SeqCst) + 1;
                if cfg.max_connections.is_some_and(|max| open > max) {
                    k.open.fetch_sub(1, Ordering::SeqCst);
                    k.refused.fetch_add(1, Ordering::SeqCst);
                    // Postfix's words for its connection count limit.
                    let _ = sock
                        .write_all(b"421 4.7.0 Error: too many connections from 127.0.0.1\r\n")
                        .await;
                    continue;
                }
                k.peak.fetch_max(open, Ordering::SeqCst);
                let n = c.fetch_add(1, Ordering::SeqCst);
                let (cfg, r, k) = (cfg.clone(), r.clone(), k.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, n, cfg, r, &k).await;
                    k.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            addr,
            received,
            connections,
            counts,
            task,
        }
    }

    /// The messages accepted so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// How many times, over all connections, the client waited for the server's replies
    /// before it wrote again: the round trips of the conversations. A client that pipelines
    /// everything it may sends its next message's content with one round trip each.
    pub fn round_trips(&self) -> usize {
        self.counts.round_trips.load(Ordering::SeqCst)
    }

    /// How many connections `max_connections` turned away.
    pub fn refused(&self) -> usize {
        self.counts.refused.load(Ordering::SeqCst)
    }

    /// The most connections that were open at once (those turned away not counted).
    pub fn peak_connections(&self) -> usize {
        self.counts.peak.load(Ordering::SeqCst)
    }
}

/// The read side of a connection, counting a round trip each time the server has to read
/// more after it replied: the client saw replies before it wrote what comes next. The buffer
/// in front of it is large, so a refill in the middle of what the client wrote at once (which
/// on loopback arrives in one piece) is rare and happens before any reply to it.
struct Reader {
    inner: OwnedReadHalf,
    replied: Arc<AtomicBool>,
    counts: Arc<Counts>,
}

impl AsyncRead for Reader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.replied.swap(false, Ordering::SeqCst) {
            this.counts.round_trips.fetch_add(1, Ordering::SeqCst);
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

/// The write side of a connection; it tells the [`Reader`] that a reply went out.
struct Writer {
    inner: OwnedWriteHalf,
    replied: Arc<AtomicBool>,
}

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.replied.store(true, Ordering::SeqCst);
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// What to do after consulting the policy.
enum Next {
    Continue,
    Close,
}

async fn act(w: &mut Writer, action: Action, default: &str) -> std::io::Result<Next> {
    match action {
        Action::Default => {
            w.write_all(format!("{default}\r\n").as_bytes()).await?;
            Ok(Next::Continue)
        }
        Action::Reply(r) => {
            w.write_all(format!("{r}\r\n").as_bytes()).await?;
            Ok(Next::Continue)
        }
        Action::ReplyAndClose(r) => {
            w.write_all(format!("{r}\r\n").as_bytes()).await?;
            Ok(Next::Close)
        }
        Action::Drop => Ok(Next::Close),
        Action::Stall => {
            std::future::pending::<()>().await;
            Ok(Next::Close)
        }
        Action::Delay(d) => {
            tokio::time::sleep(d).await;
            w.write_all(format!("{default}\r\n").as_bytes()).await?;
            Ok(Next::Continue)
        }
    }
}

fn angle(arg: &str) -> String {
    let a = arg.split_once(':').map(|(_, a)| a).unwrap_or(arg).trim();
    let a = a.split_whitespace().next().unwrap_or("");
    a.trim_start_matches('<').trim_end_matches('>').to_owned()
}

async fn serve(
    sock: TcpStream,
    n: usize,
    cfg: ServerConfig,
    received: Arc<Mutex<Vec<Received>>>,
    counts: &Arc<Counts>,
) -> std::io::Result<()> {
    let (r, w) = sock.into_split();
    let replied = Arc::new(AtomicBool::new(false));
    let mut w = Writer {
        inner: w,
        replied: replied.clone(),
    };
    let mut r = BufReader::with_capacity(
        1 << 20,
        Reader {
            inner: r,
            replied,
            counts: counts.clone(),
        },
    );
    let policy = cfg.policy.clone();
    if let Next::Close = act(
        &mut w,
        policy(&Event::Connect { connection: n }),
        "220 test.invalid ESMTP scripted",
    )
    .await?
    {
        return Ok(());
    }
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    // BDAT chunks of the message so far.
    let mut chunks: Vec<u8> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        let verb = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let next = match verb.as_str() {
            "EHLO" | "HELO" => {
                let mut ext = vec!["test.invalid"];
                if cfg.pipelining {
                    ext.push("PIPELINING");
                }
                if cfg.chunking {
                    ext.push("CHUNKING");
                }
                ext.extend(["8BITMIME", "ENHANCEDSTATUSCODES"]);
                if cfg.advertise_starttls {
                    ext.push("STARTTLS");
                }
                if cfg.auth.is_some() {
                    ext.push("AUTH PLAIN LOGIN");
                }
                ext.push("SIZE 50000000");
                let mut reply = String::new();
                for (i, e) in ext.iter().enumerate() {
                    let sep = if i + 1 == ext.len() { ' ' } else { '-' };
                    reply.push_str(&format!("250{sep}{e}\r\n"));
                }
                w.write_all(reply.as_bytes()).await?;
                Next::Continue
            }
            "AUTH" => {
                let ok = auth(&text, &mut r, &mut w, cfg.auth.as_ref()).await?;
                let reply = if ok {
                    "235 2.7.0 Authentication successful"
                } else {
                    "535 5.7.8 Authentication credentials invalid"
                };
                w.write_all(format!("{reply}\r\n").as_bytes()).await?;
                Next::Continue
            }
            "STARTTLS" => {
                w.write_all(b"454 4.7.0 TLS not available\r\n").await?;
                Next::Continue
            }
            "MAIL" => {
                let addr = angle(&text);
                let a = policy(&Event::Mail(&addr));
                if a.accepts() {
                    from = Some(addr);
                    to.clear();
                }
                act(&mut w, a, "250 2.1.0 Ok").await?
            }
            "RCPT" => {
                let addr = angle(&text);
                let a = policy(&Event::Rcpt(&addr));
                if from.is_none() {
                    w.write_all(b"503 5.5.1 Error: need MAIL command\r\n")
                        .await?;
                    Next::Continue
                } else {
                    if a.accepts() {
                        to.push(addr);
                    }
                    act(&mut w, a, "250 2.1.5 Ok").await?
                }
            }
            "DATA" => {
                if to.is_empty() {
                    w.write_all(b"554 5.5.1 Error: no valid recipients\r\n")
                        .await?;
                    continue;
                }
                match act(
                    &mut w,
                    policy(&Event::Data),
                    "354 End data with <CR><LF>.<CR><LF>",
                )
                .await?
                {
                    Next::Close => return Ok(()),
                    Next::Continue => {}
                }
                let mut data = Vec::new();
                let mut first = true;
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if first {
                        first = false;
                        match policy(&Event::DataStarted(&to)) {
                            Action::Drop => return Ok(()),
                            Action::Stall => std::future::pending::<()>().await,
                            _ => {}
                        }
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    // RFC 5321 §4.5.2: remove the stuffed dot.
                    let l = if line.starts_with(b".") {
                        &line[1..]
                    } else {
                        &line[..]
                    };
                    data.extend_from_slice(l);
                }
                let rec = Received {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                    connection: n,
                    chunked: false,
                };
                let a = policy(&Event::DataEnd(&rec));
                if a.accepts() {
                    received.lock().unwrap().push(rec);
                }
                act(&mut w, a, "250 2.0.0 Ok: queued").await?
            }
            "BDAT" if cfg.chunking => {
                // RFC 3030 §2: `BDAT size [LAST]`; the chunk is exactly `size` octets and is
                // read whatever the reply will be.
                let mut args = text.split_whitespace().skip(1);
                let size: Option<usize> = args.next().and_then(|a| a.parse().ok());
                let last = args.next().is_some_and(|a| a.eq_ignore_ascii_case("LAST"));
                let Some(size) = size else {
                    w.write_all(b"501 5.5.4 Syntax: BDAT size [LAST]\r\n")
                        .await?;
                    continue;
                };
                match policy(&Event::DataStarted(&to)) {
                    Action::Drop => return Ok(()),
                    Action::Stall => std::future::pending::<()>().await,
                    _ => {}
                }
                let mut chunk = vec![0; size];
                r.read_exact(&mut chunk).await?;
                if to.is_empty() {
                    from = None;
                    chunks.clear();
                    w.write_all(b"554 5.5.1 Error: no valid recipients\r\n")
                        .await?;
                    continue;
                }
                chunks.extend_from_slice(&chunk);
                if !last {
                    w.write_all(format!("250 2.0.0 Ok: {size} octets\r\n").as_bytes())
                        .await?;
                    continue;
                }
                let rec = Received {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data: std::mem::take(&mut chunks),
                    connection: n,
                    chunked: true,
                };
                let a = policy(&Event::DataEnd(&rec));
                if a.accepts() {
                    received.lock().unwrap().push(rec);
                }
                act(&mut w, a, "250 2.0.0 Ok: queued").await?
            }
            "RSET" => {
                from = None;
                to.clear();
                chunks.clear();
                w.write_all(b"250 2.0.0 Ok\r\n").await?;
                Next::Continue
            }
            "NOOP" => {
                w.write_all(b"250 2.0.0 Ok\r\n").await?;
                Next::Continue
            }
            "QUIT" => {
                w.write_all(b"221 2.0.0 Bye\r\n").await?;
                Next::Close
            }
            _ => {
                w.write_all(b"500 5.5.2 Error: command not recognized\r\n")
                    .await?;
                Next::Continue
            }
        };
        if let Next::Close = next {
            return Ok(());
        }
    }
}

/// AUTH PLAIN (RFC 4616, with or without an initial response) or LOGIN.
async fn auth(
    cmd: &str,
    r: &mut BufReader<Reader>,
    w: &mut Writer,
    want: Option<&(String, String)>,
) -> std::io::Result<bool> {
    let mut words = cmd.split_whitespace().skip(1);
    let mech = words.next().unwrap_or("").to_ascii_uppercase();
    let initial = words.next().map(str::to_owned);
    let mut read = async |prompt: &str| -> std::io::Result<String> {
        w.write_all(format!("334 {prompt}\r\n").as_bytes()).await?;
        let mut l = String::new();
        r.read_line(&mut l).await?;
        Ok(l.trim().to_owned())
    };
    let decode =
        |s: &str| String::from_utf8_lossy(&BASE64.decode(s).unwrap_or_default()).into_owned();
    let (user, pass) = match mech.as_str() {
        "PLAIN" => {
            let resp = match initial {
                Some(i) => i,
                None => read("").await?,
            };
            let raw = decode(&resp);
            let mut parts = raw.split('\0');
            let _authzid = parts.next();
            (
                parts.next().unwrap_or("").to_owned(),
                parts.next().unwrap_or("").to_owned(),
            )
        }
        "LOGIN" => {
            let u = decode(&read("VXNlcm5hbWU6").await?);
            let p = decode(&read("UGFzc3dvcmQ6").await?);
            (u, p)
        }
        _ => return Ok(false),
    };
    Ok(want.is_some_and(|(u, p)| *u == user && *p == pass))
}
