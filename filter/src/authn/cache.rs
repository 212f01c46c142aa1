//! The verified-token cache: a client that reuses its token pays for the signature once.
//!
//! An entry is keyed by the exact token and remembers what verification established: the
//! parsed token (so a hit skips parsing) and the fingerprints of the key sets whose keys
//! verified its signature. Everything else is checked again on every hit — the issuer's
//! binding to the locations the token came from, `exp`/`nbf`, audiences — because it depends
//! on the request, the time or the rule, not on the token alone. A hit counts only when the
//! rule's current key set has a fingerprint the entry remembers, so an entry dies when keys
//! rotate; it is dropped when the token expires.
//!
//! The cache is bounded (FIFO eviction; only tokens with a valid signature get in, so filling
//! it takes valid tokens) and per worker (the caller owns it; it is `&mut` in
//! `authenticate`). Unlike Envoy's `jwt_cache_config` (4 KiB), tokens up to the parser's limit
//! are cached.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::request::Identity;

use super::token::ParsedToken;
use super::CLOCK_SKEW_SECONDS;

/// The most entries a cache holds, whatever it is asked for: each entry can hold a token of
/// up to 16 KiB and its claims, and a V8 VM has 1 GiB in all.
pub const MAX_CACHE_ENTRIES: usize = 16_384;

/// The memory the cache may use, estimated: entries are evicted (oldest first) to stay under
/// it, however many slots are free.
pub const MAX_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// What an entry is estimated to cost: the token, its parsed claims and an identity built
/// from them (each roughly the size of the token), and fixed overhead.
fn cost_of(token: &[u8]) -> usize {
    token.len().saturating_mul(4).saturating_add(512)
}

/// Fingerprints remembered per entry (a key set is rarely verified under more than two
/// generations of keys before the entry is evicted).
const FINGERPRINTS_PER_ENTRY: usize = 4;

/// What the cache keeps about one token.
#[derive(Debug)]
pub(crate) struct Entry {
    token: Box<[u8]>,
    hash: u64,
    pub(crate) parsed: Arc<ParsedToken>,
    verified_under: Vec<u64>,
    /// The identity last built for it, with the normalization it was built with.
    identity: Option<(u64, Arc<Identity>)>,
}

impl Entry {
    /// Whether a key set with this fingerprint verified the signature.
    pub(crate) fn verified_under(&self, fingerprint: u64) -> bool {
        self.verified_under.contains(&fingerprint)
    }
}

/// What a lookup found.
pub(crate) struct Hit {
    pub(crate) parsed: Arc<ParsedToken>,
    pub(crate) verified_under: Vec<u64>,
    pub(crate) identity: Option<(u64, Arc<Identity>)>,
}

/// A bounded cache of verified tokens. One per worker.
#[derive(Debug)]
pub struct TokenCache {
    slots: Vec<Option<Entry>>,
    index: HashMap<u64, usize>,
    next: usize,
    hasher: RandomState,
    bytes: usize,
    hits: u64,
    misses: u64,
}

impl TokenCache {
    /// A cache of at most `entries` tokens (and never more than [`MAX_CACHE_ENTRIES`]); 0
    /// caches nothing.
    pub fn new(entries: usize) -> Self {
        let entries = entries.min(MAX_CACHE_ENTRIES);
        TokenCache {
            slots: std::iter::repeat_with(|| None).take(entries).collect(),
            index: HashMap::with_capacity(entries),
            next: 0,
            hasher: RandomState::new(),
            bytes: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// How many tokens it can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// How many tokens it holds.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Lookups that found a usable entry, and lookups that did not (for counters).
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Forgets every token.
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|slot| *slot = None);
        self.index.clear();
        self.next = 0;
        self.bytes = 0;
    }

    fn slot_of(&self, token: &[u8]) -> Option<(u64, usize)> {
        let hash = self.hasher.hash_one(token);
        let slot = *self.index.get(&hash)?;
        let entry = self.slots.get(slot)?.as_ref()?;
        (*entry.token == *token).then_some((hash, slot))
    }

    /// The entry for `token`, if present and not expired at `now` (an expired one is dropped).
    pub(crate) fn get(&mut self, token: &[u8], now: u64) -> Option<Hit> {
        if self.slots.is_empty() {
            return None;
        }
        let Some((_, slot)) = self.slot_of(token) else {
            self.misses += 1;
            return None;
        };
        let expired = self
            .slots
            .get(slot)
            .and_then(Option::as_ref)
            .is_none_or(|e| now > e.parsed.claims.exp.saturating_add(CLOCK_SKEW_SECONDS));
        if expired {
            self.evict(slot);
            self.misses += 1;
            return None;
        }
        self.hits += 1;
        let entry = self.slots.get(slot).and_then(Option::as_ref)?;
        Some(Hit {
            parsed: Arc::clone(&entry.parsed),
            verified_under: entry.verified_under.clone(),
            identity: entry.identity.clone(),
        })
    }

    /// Records that a key set with `fingerprint` verified `token`'s signature.
    pub(crate) fn insert(&mut self, token: &[u8], parsed: &Arc<ParsedToken>, fingerprint: u64) {
        if self.slots.is_empty() {
            return;
        }
        if let Some((_, slot)) = self.slot_of(token) {
            if let Some(Some(entry)) = self.slots.get_mut(slot) {
                if !entry.verified_under(fingerprint) {
                    if entry.verified_under.len() >= FINGERPRINTS_PER_ENTRY {
                        entry.verified_under.remove(0);
                    }
                    entry.verified_under.push(fingerprint);
                }
            }
            return;
        }
        let cost = cost_of(token);
        if cost > MAX_CACHE_BYTES {
            return;
        }
        let hash = self.hasher.hash_one(token);
        let slot = self.next;
        self.next = (self.next + 1) % self.slots.len();
        self.evict(slot);
        // Then the oldest entries, until the new one fits the memory budget.
        let mut oldest = self.next;
        while self.bytes.saturating_add(cost) > MAX_CACHE_BYTES && oldest != slot {
            self.evict(oldest);
            oldest = (oldest + 1) % self.slots.len();
        }
        self.bytes = self.bytes.saturating_add(cost);
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Some(Entry {
                token: token.into(),
                hash,
                parsed: Arc::clone(parsed),
                verified_under: vec![fingerprint],
                identity: None,
            });
            self.index.insert(hash, slot);
        }
    }

    /// Empties `slot`, releasing its index entry and its bytes.
    fn evict(&mut self, slot: usize) {
        if let Some(old) = self.slots.get_mut(slot).and_then(Option::take) {
            // Another token with the same hash may own the index entry by now.
            if self.index.get(&old.hash) == Some(&slot) {
                self.index.remove(&old.hash);
            }
            self.bytes = self.bytes.saturating_sub(cost_of(&old.token));
        }
    }

    /// Remembers the identity built for `token` under a normalization (see
    /// `Authenticator`), so the next hit with the same rule does not build it again.
    pub(crate) fn remember_identity(
        &mut self,
        token: &[u8],
        normalization: u64,
        identity: &Arc<Identity>,
    ) {
        if let Some((_, slot)) = self.slot_of(token) {
            if let Some(Some(entry)) = self.slots.get_mut(slot) {
                entry.identity = Some((normalization, Arc::clone(identity)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::codec::base64url_encode;
    use crate::authn::token::parse;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn token(exp: u64, n: u32) -> (Vec<u8>, Arc<ParsedToken>) {
        let raw = format!(
            "{}.{}.{}",
            base64url_encode(br#"{"alg":"HS256"}"#),
            base64url_encode(format!(r#"{{"exp":{exp},"n":{n}}}"#).as_bytes()),
            base64url_encode(&[0; 32])
        );
        let parsed = Arc::new(parse(raw.as_bytes()).unwrap());
        (raw.into_bytes(), parsed)
    }

    #[test]
    fn a_hit_remembers_fingerprints() {
        let mut cache = TokenCache::new(4);
        let (raw, parsed) = token(1000, 0);
        assert!(cache.get(&raw, 0).is_none());
        cache.insert(&raw, &parsed, 7);
        let hit = cache.get(&raw, 0).unwrap();
        assert_eq!(hit.verified_under, [7]);
        cache.insert(&raw, &parsed, 8);
        assert_eq!(cache.get(&raw, 0).unwrap().verified_under, [7, 8]);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.stats(), (2, 1));
    }

    #[test]
    fn fingerprints_per_entry_are_bounded() {
        let mut cache = TokenCache::new(1);
        let (raw, parsed) = token(1000, 0);
        for fp in 0..10 {
            cache.insert(&raw, &parsed, fp);
        }
        assert_eq!(cache.get(&raw, 0).unwrap().verified_under, [6, 7, 8, 9]);
    }

    #[test]
    fn expired_entries_are_dropped_with_the_skew() {
        let mut cache = TokenCache::new(2);
        let (raw, parsed) = token(1000, 0);
        cache.insert(&raw, &parsed, 1);
        assert!(cache.get(&raw, 1000 + CLOCK_SKEW_SECONDS).is_some());
        assert!(cache.get(&raw, 1001 + CLOCK_SKEW_SECONDS).is_none());
        assert!(cache.is_empty());
        assert!(cache.get(&raw, 0).is_none(), "gone for good");
    }

    #[test]
    fn eviction_is_fifo_and_bounded() {
        let mut cache = TokenCache::new(3);
        let tokens: Vec<_> = (0..5).map(|n| token(1000, n)).collect();
        for (raw, parsed) in &tokens {
            cache.insert(raw, parsed, 1);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&tokens[0].0, 0).is_none());
        assert!(cache.get(&tokens[1].0, 0).is_none());
        for (raw, _) in &tokens[2..] {
            assert!(cache.get(raw, 0).is_some());
        }
    }

    #[test]
    fn only_the_exact_token_hits() {
        let mut cache = TokenCache::new(2);
        let (raw, parsed) = token(1000, 0);
        cache.insert(&raw, &parsed, 1);
        let mut other = raw.clone();
        other.push(b'A');
        assert!(cache.get(&other, 0).is_none());
        assert!(cache.get(&raw[..raw.len() - 1], 0).is_none());
    }

    #[test]
    fn a_zero_sized_cache_holds_nothing() {
        let mut cache = TokenCache::new(0);
        let (raw, parsed) = token(1000, 0);
        cache.insert(&raw, &parsed, 1);
        assert!(cache.get(&raw, 0).is_none());
        assert_eq!(cache.capacity(), 0);
    }

    #[test]
    fn the_size_is_bounded() {
        assert_eq!(TokenCache::new(usize::MAX).capacity(), MAX_CACHE_ENTRIES);
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut cache = TokenCache::new(MAX_CACHE_ENTRIES);
        let (_, parsed) = token(1000, 0);
        // Distinct 8 KiB keys for the same parsed token are enough to fill the budget.
        let per_entry = cost_of(&[0; 8192]);
        let fit = MAX_CACHE_BYTES / per_entry;
        assert!(fit < MAX_CACHE_ENTRIES, "the budget, not the slots, must be the limit");
        for n in 0..fit + 10 {
            let mut key = format!("{n:08}").into_bytes();
            key.resize(8192, b'x');
            cache.insert(&key, &parsed, 1);
            assert!(cache.bytes <= MAX_CACHE_BYTES);
        }
        assert!(cache.len() <= fit, "{} entries for a budget of {fit}", cache.len());
        assert!(cache.len() >= fit - 1);
        cache.clear();
        assert_eq!(cache.bytes, 0);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut cache = TokenCache::new(2);
        let (raw, parsed) = token(1000, 0);
        cache.insert(&raw, &parsed, 1);
        cache.clear();
        assert!(cache.get(&raw, 0).is_none());
        assert!(cache.is_empty());
    }
}
