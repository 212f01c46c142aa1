//! Requests paused until an issuer's keys arrive.
//!
//! A request whose token names an issuer whose keys are not fetched yet (or a `kid` that asks
//! for a refetch) waits, paused in Envoy, until the key store has an answer or the rule's
//! `timeout` is up. Each waiting request holds what was read of it (its header map, up to
//! Envoy's header limit), so the room is bounded by count *and* bytes: beyond either bound a
//! request is answered at once as if its keys could not be fetched, and counted. A request that
//! ends while waiting (the client hung up) is forgotten in O(1).
//!
//! The room knows nothing of Envoy: the glue hands it requests and asks it which to decide
//! again; the same code runs in the native tests with several workers' key stores.

use std::collections::HashMap;

use crate::authn::SourceId;
use crate::enforcer::{Deny, Verdict};

/// Requests one worker keeps waiting at most.
pub const MAX_WAITING: usize = 4096;
/// Bytes of held requests one worker keeps at most (a header map is at most 60 KiB by Envoy's
/// default `max_request_headers_kb`, so at least 136 of the largest requests fit).
pub const MAX_WAITING_BYTES: usize = 8 << 20;

/// What a held request costs in memory.
pub trait Held {
    /// Bytes held (the header map and what was read of the connection).
    fn held_bytes(&self) -> usize;
}

/// A request paused until keys arrive.
#[derive(Debug)]
pub struct Waiter<R> {
    /// What was read of the request.
    pub request: R,
    /// The key sources it waits for.
    pub sources: Vec<SourceId>,
    /// When to give up, in ms since the epoch.
    pub deadline: u64,
    /// The answer if nothing better comes: the unknown-`kid` refusal that asked for a refetch.
    pub fallback: Option<Deny>,
}

/// Why a request could not wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// [`MAX_WAITING`] requests already wait.
    Count,
    /// Waiting requests already hold [`MAX_WAITING_BYTES`].
    Bytes,
}

impl Full {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Full::Count => "refused_count",
            Full::Bytes => "refused_bytes",
        }
    }
}

/// How a waiting request ends.
#[derive(Debug)]
pub enum Wake {
    /// Decided again with what the key store has now.
    Decided(Verdict),
    /// Its time is up and the keys are still missing: refuse it with the fallback, or as keys
    /// that cannot be fetched.
    TimedOut(Option<Deny>),
}

/// A request that leaves the room, with its context id and how it ends.
#[derive(Debug)]
pub struct Woken<R> {
    /// The HTTP context id.
    pub id: u32,
    /// What was read of it.
    pub request: R,
    /// How it ends.
    pub wake: Wake,
}

/// One worker's waiting requests, by HTTP context id.
#[derive(Debug)]
pub struct WaitingRoom<R> {
    waiters: HashMap<u32, (Waiter<R>, usize)>,
    bytes: usize,
    max_count: usize,
    max_bytes: usize,
}

impl<R: Held> Default for WaitingRoom<R> {
    fn default() -> Self {
        WaitingRoom::with_limits(MAX_WAITING, MAX_WAITING_BYTES)
    }
}

impl<R: Held> WaitingRoom<R> {
    /// A room with its own bounds (the tests use small ones).
    pub fn with_limits(max_count: usize, max_bytes: usize) -> Self {
        WaitingRoom { waiters: HashMap::new(), bytes: 0, max_count, max_bytes }
    }

    /// Pauses request `id`, or gives it back with the bound it would cross.
    pub fn wait(&mut self, id: u32, waiter: Waiter<R>) -> Result<(), Box<(Waiter<R>, Full)>> {
        let bytes = waiter.request.held_bytes();
        if self.waiters.len() >= self.max_count {
            return Err(Box::new((waiter, Full::Count)));
        }
        if self.bytes.saturating_add(bytes) > self.max_bytes {
            return Err(Box::new((waiter, Full::Bytes)));
        }
        if let Some((_, replaced)) = self.waiters.insert(id, (waiter, bytes)) {
            // Envoy does not reuse a live context id; should it, the old entry is gone.
            self.bytes = self.bytes.saturating_sub(replaced);
        }
        self.bytes = self.bytes.saturating_add(bytes);
        Ok(())
    }

    /// Request `id` ended (answered, or the client went away). Whether it was waiting.
    pub fn forget(&mut self, id: u32) -> bool {
        match self.waiters.remove(&id) {
            Some((_, bytes)) => {
                self.bytes = self.bytes.saturating_sub(bytes);
                true
            }
            None => false,
        }
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Bytes the waiting requests hold.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes out the requests to answer now, in arrival order (context ids grow): those whose
    /// keys are no longer being fetched (`keys_coming` says which still are), decided again by
    /// `decide`, and those whose time is up. A request `decide` still finds waiting stays until
    /// its deadline.
    pub fn wake(
        &mut self,
        now: u64,
        keys_coming: impl Fn(SourceId) -> bool,
        mut decide: impl FnMut(&R) -> Verdict,
    ) -> Vec<Woken<R>> {
        let mut due: Vec<u32> = self
            .waiters
            .iter()
            .filter(|(_, (w, _))| now >= w.deadline || !w.sources.iter().any(|s| keys_coming(*s)))
            .map(|(id, _)| *id)
            .collect();
        due.sort_unstable();
        let mut woken = Vec::new();
        for id in due {
            let Some((waiter, _)) = self.waiters.get(&id) else { continue };
            let wake = match decide(&waiter.request) {
                Verdict::Wait { .. } if now < waiter.deadline => continue,
                Verdict::Wait { .. } => None,
                verdict => Some(verdict),
            };
            let Some((waiter, bytes)) = self.waiters.remove(&id) else { continue };
            self.bytes = self.bytes.saturating_sub(bytes);
            let wake = match wake {
                Some(verdict) => Wake::Decided(verdict),
                None => Wake::TimedOut(waiter.fallback),
            };
            woken.push(Woken { id, request: waiter.request, wake });
        }
        woken
    }
}

impl Held for crate::request::OwnedRequest {
    fn held_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.method.len()
            + self.path.len()
            + self.authority.len()
            + self.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
    }
}
