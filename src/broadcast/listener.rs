//! One listener's view of the live feed: its burst, then frames from the
//! broadcast channel in sequence order. Unregisters itself when dropped.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::{Hub, ListenerSlot};
use crate::encoder::Frame;

pub struct Listener {
    burst: VecDeque<Arc<Frame>>,
    rx: broadcast::Receiver<Arc<Frame>>,
    slot: Arc<ListenerSlot>,
    hub: Arc<Hub>,
    id: u64,
    /// The sequence number this listener expects next.
    next_seq: Option<u64>,
}

impl Listener {
    pub(super) fn new(
        burst: VecDeque<Arc<Frame>>,
        rx: broadcast::Receiver<Arc<Frame>>,
        slot: Arc<ListenerSlot>,
        hub: Arc<Hub>,
        id: u64,
    ) -> Listener {
        Listener { burst, rx, slot, hub, id, next_seq: None }
    }

    /// The next frame for this listener; `None` when the feed has ended or
    /// the listener fell so far behind that the channel overtook it.
    pub async fn next_frame(&mut self) -> Option<Arc<Frame>> {
        let frame = loop {
            let frame = match self.burst.pop_front() {
                Some(f) => f,
                None => match self.rx.recv().await {
                    Ok(f) => f,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if !self.slot.kicked.swap(true, Ordering::Relaxed) {
                            self.hub.stats.listeners_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        return None;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            // The subscription may repeat frames already in the burst.
            if self.next_seq.is_none_or(|n| frame.seq >= n) {
                break frame;
            }
        };
        self.next_seq = Some(frame.seq + 1);
        self.slot.position.store(frame.seq, Ordering::Relaxed);
        Some(frame)
    }

    pub fn kicked(&self) -> bool {
        self.slot.kicked.load(Ordering::Relaxed)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}
