//! A counting HTTP proxy in front of moto: the loader's `bucket_endpoint` points at it, and it
//! counts the S3 requests by kind and the time moto took to answer them.
//!
//! Plain TCP, one upstream connection per client connection. The SDK never pipelines, so a
//! request starts with the first client bytes after a response (or on a new connection); its
//! first line gives the kind (`GET /bucket?list-type=2...` is a listing). A request's S3 time
//! runs from its first byte to the last response byte seen before the next request.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// Request counts and S3 time since the proxy started.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub list: u64,
    pub get: u64,
    pub head: u64,
    pub other: u64,
    /// Sum of the requests' times (first request byte to last response byte).
    pub busy: Duration,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.list + self.get + self.head + self.other
    }

    /// `self - earlier`.
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            list: self.list - earlier.list,
            get: self.get - earlier.get,
            head: self.head - earlier.head,
            other: self.other - earlier.other,
            busy: self.busy.saturating_sub(earlier.busy),
        }
    }
}

/// The request lines seen (up to this many), with their time.
const KEEP_LINES: usize = 50_000;

type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

pub struct Proxy {
    pub endpoint: String,
    counts: Arc<Mutex<Counts>>,
    lines: Lines,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free local port, forwarding to `upstream` (`http://host:port`).
    pub fn start(rt: &Runtime, upstream: &str) -> Result<Proxy> {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .context("proxy: bind")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let counts = Arc::new(Mutex::new(Counts::default()));
        let lines: Lines = Arc::default();
        let (shared, shared_lines) = (counts.clone(), lines.clone());
        let task = rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counts = shared.clone();
                let lines = shared_lines.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let _ = relay(client, server, counts, lines).await;
                    }
                });
            }
        });
        Ok(Proxy {
            endpoint,
            counts,
            lines,
            task,
        })
    }

    pub fn counts(&self) -> Counts {
        *self.counts.lock().expect("not poisoned")
    }

    /// The request lines seen between two instants.
    pub fn lines_between(&self, from: Instant, to: Instant) -> Vec<String> {
        let lines = self.lines.lock().expect("not poisoned");
        lines
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, l)| l.clone())
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The state of one connection: when the current request started, its last response byte.
#[derive(Default)]
struct Exchange {
    request_at: Option<Instant>,
    answered_at: Option<Instant>,
}

impl Exchange {
    /// Closes the current request (adds its time), if any.
    fn close(&mut self, counts: &Mutex<Counts>) {
        if let (Some(start), Some(end)) = (self.request_at.take(), self.answered_at.take()) {
            counts.lock().expect("not poisoned").busy += end.saturating_duration_since(start);
        }
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    counts: Arc<Mutex<Counts>>,
    lines: Lines,
) -> Result<()> {
    let (mut c_read, mut c_write) = client.into_split();
    let (mut s_read, mut s_write) = server.into_split();
    let state = Arc::new(Mutex::new(Exchange::default()));
    let up = {
        let (state, counts) = (state.clone(), counts.clone());
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = c_read.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                {
                    let mut st = state.lock().expect("not poisoned");
                    // First bytes of a request: no request under way, or already answered.
                    if st.request_at.is_none() || st.answered_at.is_some() {
                        st.close(&counts);
                        st.request_at = Some(Instant::now());
                        let line = buf[..n].split(|b| *b == b'\r').next().unwrap_or_default();
                        let mut seen = lines.lock().expect("not poisoned");
                        if seen.len() < KEEP_LINES {
                            seen.push((Instant::now(), String::from_utf8_lossy(line).into_owned()));
                        }
                        drop(seen);
                        let mut c = counts.lock().expect("not poisoned");
                        if line.starts_with(b"GET ") && contains(line, b"list-type=2") {
                            c.list += 1;
                        } else if line.starts_with(b"GET ") {
                            c.get += 1;
                        } else if line.starts_with(b"HEAD ") {
                            c.head += 1;
                        } else {
                            c.other += 1;
                        }
                    }
                }
                s_write.write_all(&buf[..n]).await?;
            }
            let _ = s_write.shutdown().await;
            anyhow::Ok(())
        }
    };
    let down = {
        let state = state.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = s_read.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                c_write.write_all(&buf[..n]).await?;
                state.lock().expect("not poisoned").answered_at = Some(Instant::now());
            }
            let _ = c_write.shutdown().await;
            anyhow::Ok(())
        }
    };
    let _ = tokio::join!(up, down);
    state.lock().expect("not poisoned").close(&counts);
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
