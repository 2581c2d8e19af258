//! Delivery shards: each a tokio task that owns a share of the listeners'
//! sockets. Every `FLUSH_FRAMES` frames (about 0.1 s) it walks them and
//! hands each socket what it has not yet taken — up to `BATCH` pieces
//! (whole frames, or frames cut around ICY blocks without copying) — in one
//! vectored, non-blocking write. A socket that will not take its bytes
//! keeps its place and falls behind on its own; past `max_lag_s` it is
//! closed. Nobody else notices: no listener is ever waited for.
//!
//! A new listener is written to at once (its burst), so playback starts as
//! soon as the headers are read.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::{Hub, Subscription};
use crate::encoder::Frame;
use crate::http::IcyWriter;

/// Frames between flushes: 8 × 26 ms.
const FLUSH_FRAMES: u64 = 8;
/// Pieces queued per listener (and per write) at most: a flush's frames
/// and their ICY blocks, with room to spare.
const BATCH: usize = 16;
/// How often each shard publishes its listener table, seconds.
const TABLE_EVERY_S: f64 = 1.0;

/// One listener as the admin view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerInfo {
    pub id: u64,
    pub address: String,
    pub user_agent: String,
    pub icy: bool,
    pub connected_s: f64,
    pub bytes: u64,
    /// How far behind live its socket is, seconds.
    pub lag_s: f64,
}

/// A connected listener, after its response headers: its socket, where it
/// is in the stream, and what is queued for it.
pub struct Conn {
    stream: TcpStream,
    sub: Subscription,
    /// The next frame to queue.
    next_seq: u64,
    /// Pieces ready to write, each with the frame it belongs to; the first
    /// may be partly written.
    queue: VecDeque<(u64, Bytes)>,
    icy: Option<IcyWriter>,
    scratch: Vec<Bytes>,
    address: String,
    user_agent: String,
    since: Instant,
    bytes: u64,
}

impl Conn {
    pub fn new(stream: TcpStream, sub: Subscription, icy: Option<IcyWriter>, address: String, user_agent: String) -> Conn {
        let next_seq = sub.start;
        Conn {
            stream,
            sub,
            next_seq,
            queue: VecDeque::with_capacity(BATCH),
            icy,
            scratch: Vec::new(),
            address,
            user_agent,
            since: Instant::now(),
            bytes: 0,
        }
    }

    /// The oldest frame not yet fully written.
    fn position(&self) -> u64 {
        self.queue.front().map_or(self.next_seq, |(seq, _)| *seq)
    }

    /// Queues pieces of the frames `[next_seq, head)` from `frames` (which
    /// starts at `first`) while there is room.
    fn fill(&mut self, frames: &[Arc<Frame>], first: u64, head: u64) -> Result<(), Gone> {
        while self.queue.len() + 3 <= BATCH && self.next_seq < head {
            let Some(frame) = self.next_seq.checked_sub(first).and_then(|i| frames.get(i as usize)) else {
                // Fell out of the log: too far behind.
                return Err(Gone::Lagged);
            };
            match &mut self.icy {
                None => self.queue.push_back((frame.seq, frame.data.clone())),
                Some(w) => {
                    w.push(frame, &mut self.scratch);
                    self.queue.extend(self.scratch.drain(..).map(|b| (frame.seq, b)));
                }
            }
            self.next_seq += 1;
        }
        Ok(())
    }

    /// One vectored write of what is queued; drops what was written.
    fn write(&mut self) -> Result<(), Gone> {
        while !self.queue.is_empty() {
            let slices: Vec<IoSlice<'_>> = self.queue.iter().map(|(_, b)| IoSlice::new(b)).collect();
            match self.stream.try_write_vectored(&slices) {
                Ok(0) => return Err(Gone::Closed),
                Ok(mut n) => {
                    self.bytes += n as u64;
                    while n > 0 {
                        let (_, front) = self.queue.front_mut().expect("written bytes were queued");
                        let take = n.min(front.len());
                        front.advance(take);
                        n -= take;
                        if front.is_empty() {
                            self.queue.pop_front();
                        }
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(Gone::Closed),
            }
        }
        Ok(())
    }

    fn info(&self, head: u64, frame_s: f64) -> ListenerInfo {
        ListenerInfo {
            id: self.sub.id,
            address: self.address.clone(),
            user_agent: self.user_agent.clone(),
            icy: self.icy.is_some(),
            connected_s: self.since.elapsed().as_secs_f64(),
            bytes: self.bytes,
            lag_s: head.saturating_sub(self.position()) as f64 * frame_s,
        }
    }
}

/// Why a listener's connection ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Gone {
    /// Too far behind live.
    Lagged,
    /// The other end went away.
    Closed,
}

/// Writes to each of `conns` what it can take, and drops those that are
/// gone or too far behind.
fn flush(hub: &Hub, conns: &mut Vec<Conn>, head: u64) {
    let Some(from) = conns.iter().map(|c| c.next_seq).min() else { return };
    let (frames, first) = hub.frames_since(from);
    let max_lag = hub.max_lag_frames;
    conns.retain_mut(|c| {
        // Write, then queue more and write again while the socket takes
        // everything: a new listener's burst goes out in one go. Each round
        // moves the listener on, so this ends.
        let result = loop {
            if let Err(e) = c.fill(&frames, first, head).and_then(|_| c.write()) {
                break Err(e);
            }
            if !c.queue.is_empty() || c.next_seq >= head {
                break Ok(());
            }
        };
        let lagging = head.saturating_sub(c.position()) > max_lag;
        match result {
            Err(Gone::Lagged) => {
                hub.stats().listeners_dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(Gone::Closed) => false,
            Ok(()) if lagging => {
                hub.stats().listeners_dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            Ok(()) => true,
        }
    });
}

/// Ends every connection on a whole frame: what remains of the frame each
/// is in is written (waiting up to a second for the socket), then it is
/// closed.
async fn finish(conns: Vec<Conn>) {
    let mut tasks = tokio::task::JoinSet::new();
    for mut c in conns {
        let current = c.queue.front().map(|(seq, _)| *seq);
        let rest: Vec<Bytes> = c.queue.drain(..).take_while(|(seq, _)| Some(*seq) == current).map(|(_, b)| b).collect();
        if rest.is_empty() {
            continue;
        }
        tasks.spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
                for b in rest {
                    c.stream.write_all(&b).await?;
                }
                c.stream.shutdown().await
            })
            .await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// One shard: receives new listeners on `rx`, flushes every few frames,
/// ends its listeners' streams when the hub closes.
pub async fn run(hub: Arc<Hub>, index: usize, mut rx: mpsc::UnboundedReceiver<Conn>) {
    let mut conns: Vec<Conn> = Vec::new();
    let mut head_rx = hub.head();
    let mut flushed_at = 0u64;
    let frame_s = crate::units::MP3_FRAME_SAMPLES as f64 / hub.rate.0 as f64;
    let mut table_at = Instant::now();
    loop {
        tokio::select! {
            conn = rx.recv() => {
                let Some(conn) = conn else { break };
                // Its burst at once.
                let head = *head_rx.borrow();
                let mut new = vec![conn];
                flush(&hub, &mut new, head);
                conns.append(&mut new);
            }
            changed = head_rx.changed() => {
                if changed.is_err() || hub.is_closed() {
                    break;
                }
                let head = *head_rx.borrow_and_update();
                if head >= flushed_at + FLUSH_FRAMES {
                    flush(&hub, &mut conns, head);
                    flushed_at = head;
                }
                if table_at.elapsed().as_secs_f64() >= TABLE_EVERY_S {
                    table_at = Instant::now();
                    let table = conns.iter().map(|c| c.info(head, frame_s)).collect();
                    if let Some(t) = hub.tables.lock().unwrap_or_else(|p| p.into_inner()).get_mut(index) {
                        *t = table;
                    }
                }
            }
        }
    }
    rx.close();
    // Listeners still arriving are closed with the rest.
    while let Ok(c) = rx.try_recv() {
        conns.push(c);
    }
    finish(conns).await;
}
