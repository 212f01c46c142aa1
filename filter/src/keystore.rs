//! The key store: issuers' key sets, fetched through Envoy, refreshed, and shared between the
//! worker VMs of one Envoy process.
//!
//! Each Envoy worker thread runs its own copy of the module, but one Envoy process should ask an
//! identity provider for its keys once per refresh, not once per worker. Two entries in
//! proxy-wasm shared data (one per key source, visible to every worker VM with the same `vm_id`)
//! coordinate that:
//!
//! - the **lease** `warden.jwks.lease|<source>` says when anyone may next start a fetch
//!   (`not_before`) and who holds it. A worker starts a fetch only after winning a
//!   compare-and-swap on it; while it fetches, `not_before` is the fetch's deadline; after a
//!   success it is "now" (refresh decides the next fetch), after a failure "now + backoff".
//! - the **entry** `warden.jwks.keys|<source>` holds the latest good JWKS document, when it was
//!   fetched, a generation number, and the time of the last failure since then. Every worker
//!   imports a newer generation on its next poll.
//!
//! Key refresh never blocks traffic: requests keep using the current keys while a refresh is
//! under way. Only a source that has never had keys makes requests wait (up to the rule's
//! timeout, decided by the caller), and once a fetch has failed such requests fail closed at
//! once. Keys that could not be refreshed for `max_stale` are dropped: tokens of that issuer
//! then fail (closed) until a fetch succeeds. No key ever comes from anywhere but the
//! configuration or the issuer's own endpoint.
//!
//! Everything here is host-independent: shared data is a [`SharedStore`], time is an argument,
//! and fetches are returned as [`Fetch`] values for the host to dispatch. The tests simulate
//! several workers sharing one store.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::authn::{self, HttpTarget, KeyProvider, KeySet, Keys, RemoteJwks, SourceId};

/// Shared data between the worker VMs (proxy-wasm `get_shared_data`/`set_shared_data`).
pub trait SharedStore {
    /// The value and its compare-and-swap token; `(None, 0)` when absent.
    fn get(&self, key: &str) -> (Option<Vec<u8>>, u32);
    /// Stores `value` if `cas` still matches (0: unconditionally). `false` on a mismatch or error.
    fn set(&self, key: &str, value: &[u8], cas: u32) -> bool;
}

/// Shared data within one process, as proxy-wasm's is within one Envoy: for running several
/// key stores natively (the tests, which simulate worker VMs).
#[derive(Debug, Default)]
pub struct InMemoryShared(std::cell::RefCell<std::collections::HashMap<String, (Vec<u8>, u32)>>);

impl SharedStore for InMemoryShared {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, u32) {
        match self.0.borrow().get(key) {
            Some((value, cas)) => (Some(value.clone()), *cas),
            None => (None, 0),
        }
    }
    fn set(&self, key: &str, value: &[u8], cas: u32) -> bool {
        let mut map = self.0.borrow_mut();
        let current = map.get(key).map_or(0, |(_, c)| *c);
        if cas != 0 && cas != current {
            return false;
        }
        map.insert(key.to_string(), (value.to_vec(), current.wrapping_add(1)));
        true
    }
}

/// Timing of fetches, from the plugin configuration's `jwks` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchSettings {
    /// How often a source's keys are refetched.
    pub refresh_interval: Duration,
    /// How long keys stay usable when refreshes fail.
    pub max_stale: Duration,
    /// The least time between fetches triggered by unknown `kid`s.
    pub min_refetch_interval: Duration,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            refresh_interval: Duration::from_secs(300),
            max_stale: Duration::from_secs(3600),
            min_refetch_interval: Duration::from_secs(30),
        }
    }
}

/// Retries after a failed fetch back off from 1 s to 10 s: quick recovery when an identity
/// provider comes back, one attempt per 10 s per Envoy process while it stays down.
const RETRY_MIN_MS: u64 = 1_000;
const RETRY_MAX_MS: u64 = 10_000;

/// Extra time a fetch's lease lasts past its timeout, so a worker that stalls does not block
/// the others for long.
const LEASE_MARGIN_MS: u64 = 1_000;

/// An HTTP GET the host should dispatch through an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// Identifies the fetch when its answer comes back.
    pub id: u64,
    /// Which key source it is for.
    pub source: SourceId,
    /// The Envoy cluster to send it through.
    pub cluster: String,
    /// `:authority`.
    pub authority: String,
    /// `:path`.
    pub path: String,
    /// How long the host should wait for the answer.
    pub timeout: Duration,
}

/// How a fetch's answer moved things on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// New keys are in use (and shared with the other workers).
    Stored,
    /// The fetch failed (logged once, here); the last good keys, if any, stay in use.
    Failed,
    /// Discovery found the JWKS URI: dispatch this fetch next.
    FollowUp(Fetch),
    /// The answer belongs to no fetch of this store (e.g. one from before a reconfiguration).
    Unknown,
}

/// What a fetch is after: the OIDC discovery document, or the JWKS itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Discovery,
    Jwks,
}

#[derive(Debug, Clone)]
struct InFlight {
    id: u64,
    stage: Stage,
}

#[derive(Debug)]
struct Source {
    remote: RemoteJwks,
    /// Shared-data key suffix, stable across configuration reloads.
    name: String,
    keys: Option<KeySet>,
    /// When the current keys were fetched (by whichever worker), ms since the epoch.
    fetched_at: u64,
    /// The shared entry's generation this worker has imported.
    generation: u64,
    /// A fetch failed after the last success (as recorded in the shared entry).
    failed_at: Option<u64>,
    /// Consecutive failures seen by this worker's own fetches (backoff).
    failures: u32,
    in_flight: Option<InFlight>,
    /// A refetch was asked for (unknown `kid`) at this time and has not happened yet.
    refetch_wanted: Option<u64>,
    /// The JWKS URI: configured, or found by OIDC discovery.
    jwks_uri: Option<String>,
}

/// The key sets of every fetched source of one worker.
#[derive(Debug)]
pub struct KeyStore {
    sources: Vec<Source>,
    settings: FetchSettings,
    /// Configured clusters by URI (`jwks.clusters`), for URIs found by discovery.
    clusters: BTreeMap<String, String>,
    /// This worker's lease holder id.
    holder: u64,
    next_fetch_id: u64,
}

impl KeyStore {
    /// A store for `sources` (the authenticator's remote key sources, by `SourceId` index).
    /// `holder` must differ between workers (a random number).
    pub fn new(
        sources: &[RemoteJwks],
        settings: FetchSettings,
        clusters: BTreeMap<String, String>,
        holder: u64,
    ) -> Self {
        let sources = sources
            .iter()
            .map(|remote| Source {
                name: format!("{}|{}", remote.issuer, remote.uri),
                jwks_uri: (!remote.discovery).then(|| remote.uri.clone()),
                remote: remote.clone(),
                keys: None,
                fetched_at: 0,
                generation: 0,
                failed_at: None,
                failures: 0,
                in_flight: None,
                refetch_wanted: None,
            })
            .collect();
        KeyStore {
            sources,
            settings,
            clusters,
            holder,
            next_fetch_id: holder.wrapping_mul(1_000_003),
        }
    }

    /// Whether any source is waiting for a fetch (the host polls more often meanwhile).
    pub fn busy(&self) -> bool {
        (0..self.sources.len()).any(|i| self.waiting_on(SourceId(i)))
    }

    /// Whether new keys for `source` may arrive soon: a fetch is under way or wanted, or the
    /// first fetch has not finished. Requests waiting on it keep waiting meanwhile.
    pub fn waiting_on(&self, source: SourceId) -> bool {
        self.sources.get(source.0).is_some_and(|s| {
            s.in_flight.is_some()
                || s.refetch_wanted.is_some()
                || (s.keys.is_none() && s.failed_at.is_none())
        })
    }

    /// Imports what other workers fetched, drops keys too stale to trust, and starts the fetches
    /// that are due and whose lease this worker wins. The host dispatches the returned fetches
    /// and reports each one's answer to [`KeyStore::on_response`] (or its failure to start to
    /// [`KeyStore::on_dispatch_failed`]).
    pub fn poll(&mut self, now: u64, shared: &dyn SharedStore) -> Vec<Fetch> {
        let mut fetches = Vec::new();
        for index in 0..self.sources.len() {
            self.import(index, shared);
            let max_stale = millis(self.settings.max_stale);
            let refresh = millis(self.settings.refresh_interval);
            let Some(source) = self.sources.get_mut(index) else { continue };
            if source.keys.is_some() && now.saturating_sub(source.fetched_at) > max_stale {
                log::warn!(
                    "warden: keys of {} were not refreshed for {}s: dropped; its tokens fail until a fetch succeeds",
                    source.remote.issuer,
                    max_stale / 1000
                );
                source.keys = None;
                source.failed_at.get_or_insert(now);
            }
            let due = source.keys.is_none()
                || source.refetch_wanted.is_some()
                || now.saturating_sub(source.fetched_at) >= refresh;
            if !due || source.in_flight.is_some() {
                continue;
            }
            if let Some(fetch) = self.start(index, now, shared) {
                fetches.push(fetch);
            }
        }
        fetches
    }

    /// A token named a `kid` the current keys lack: ask for a refetch. Returns whether one will
    /// happen (the request may wait for it); refused while the keys are younger than
    /// `min_refetch_interval`, so random `kid`s cannot flood the identity provider.
    pub fn request_refetch(&mut self, source: SourceId, now: u64) -> bool {
        let min = millis(self.settings.min_refetch_interval);
        let Some(source) = self.sources.get_mut(source.0) else { return false };
        // Right after a failure a request would only wait for another one: refuse at once
        // until the backoff has passed (regular retries go on meanwhile).
        if source
            .failed_at
            .is_some_and(|failed| now < failed.saturating_add(backoff(source.failures)))
        {
            return false;
        }
        if source.in_flight.is_some() || source.refetch_wanted.is_some() {
            return true;
        }
        if source.keys.is_some() && now.saturating_sub(source.fetched_at) < min {
            return false;
        }
        source.refetch_wanted = Some(now);
        true
    }

    /// This store is going away (its configuration was replaced or its VM is shutting down):
    /// releases the leases of its fetches under way so other workers need not wait them out.
    pub fn abandon(&mut self, now: u64, shared: &dyn SharedStore) {
        for source in &mut self.sources {
            if source.in_flight.take().is_none() {
                continue;
            }
            let lease_key = format!("warden.jwks.lease|{}", source.name);
            let (current, cas) = shared.get(&lease_key);
            if current.as_deref().and_then(Lease::decode).is_some_and(|l| l.holder == self.holder) {
                let _ = shared.set(
                    &lease_key,
                    &Lease { holder: self.holder, not_before: now }.encode(),
                    cas,
                );
            }
        }
    }

    /// The host could not dispatch a fetch (e.g. an unknown cluster): a failed fetch.
    pub fn on_dispatch_failed(
        &mut self,
        id: u64,
        reason: &str,
        now: u64,
        shared: &dyn SharedStore,
    ) {
        if let Some(index) = self.find(id) {
            self.fail(index, now, shared, reason);
        }
    }

    /// A fetch's answer: `status` is the HTTP status (`None` if the host gave none, e.g. a
    /// timeout). Any change of keys is visible through [`KeyProvider`] at once.
    pub fn on_response(
        &mut self,
        id: u64,
        status: Option<u16>,
        body: &[u8],
        now: u64,
        shared: &dyn SharedStore,
    ) -> Progress {
        let Some(index) = self.find(id) else { return Progress::Unknown };
        let Some(stage) =
            self.sources.get(index).and_then(|s| s.in_flight.as_ref()).map(|f| f.stage)
        else {
            return Progress::Unknown;
        };
        if status != Some(200) {
            let status = status
                .map_or("no answer (timeout or connection failure)".to_string(), |s| {
                    format!("HTTP {s}")
                });
            self.fail(index, now, shared, &status);
            return Progress::Failed;
        }
        match stage {
            Stage::Discovery => match authn::parse_openid_configuration(body) {
                Ok(uri) => {
                    if let Some(source) = self.sources.get_mut(index) {
                        source.jwks_uri = Some(uri);
                    }
                    match self.fetch_for(index, Stage::Jwks) {
                        Some(fetch) => Progress::FollowUp(fetch),
                        None => {
                            self.fail(
                                index,
                                now,
                                shared,
                                "the discovered jwks_uri is not an http(s) URL",
                            );
                            Progress::Failed
                        }
                    }
                }
                Err(error) => {
                    self.fail(
                        index,
                        now,
                        shared,
                        &format!("invalid OpenID configuration: {error}"),
                    );
                    Progress::Failed
                }
            },
            Stage::Jwks => match authn::parse_fetched_jwks(body) {
                Ok(keys) => {
                    self.succeed(index, keys, body, now, shared);
                    Progress::Stored
                }
                Err(error) => {
                    self.fail(index, now, shared, &format!("invalid JWKS: {error}"));
                    Progress::Failed
                }
            },
        }
    }

    /// The source a fetch is for, while it is under way.
    pub fn fetch_source(&self, id: u64) -> Option<SourceId> {
        self.find(id).map(SourceId)
    }

    /// The issuer of a source, for logs and counters.
    pub fn issuer(&self, source: SourceId) -> &str {
        self.sources.get(source.0).map_or("", |s| s.remote.issuer.as_str())
    }

    fn find(&self, id: u64) -> Option<usize> {
        self.sources.iter().position(|s| s.in_flight.as_ref().is_some_and(|f| f.id == id))
    }

    /// Takes the lease and builds the fetch, or returns `None` if another worker holds it.
    fn start(&mut self, index: usize, now: u64, shared: &dyn SharedStore) -> Option<Fetch> {
        let source = self.sources.get(index)?;
        let lease_key = format!("warden.jwks.lease|{}", source.name);
        let (current, cas) = shared.get(&lease_key);
        if let Some(lease) = current.as_deref().and_then(Lease::decode) {
            if lease.not_before > now {
                return None;
            }
        }
        let deadline = now + millis(source.remote.timeout) + LEASE_MARGIN_MS;
        let lease = Lease { holder: self.holder, not_before: deadline };
        if !shared.set(&lease_key, &lease.encode(), cas) {
            return None;
        }
        // Two workers can both create an absent key unconditionally: the last writer wins.
        let (now_held, _) = shared.get(&lease_key);
        if now_held.as_deref().and_then(Lease::decode) != Some(lease) {
            return None;
        }
        let stage = if source.jwks_uri.is_some() { Stage::Jwks } else { Stage::Discovery };
        let fetch = self.fetch_for(index, stage);
        if fetch.is_none() {
            self.fail(index, now, shared, "the JWKS URI is not an http(s) URL");
        }
        fetch
    }

    fn fetch_for(&mut self, index: usize, stage: Stage) -> Option<Fetch> {
        self.next_fetch_id = self.next_fetch_id.wrapping_add(1);
        let id = self.next_fetch_id;
        let source = self.sources.get_mut(index)?;
        let uri = match stage {
            Stage::Jwks => source.jwks_uri.clone()?,
            Stage::Discovery => source.remote.uri.clone(),
        };
        let target = HttpTarget::parse(&uri)?;
        let cluster = if uri == source.remote.uri {
            source.remote.cluster.clone()
        } else {
            self.clusters.get(&uri).cloned().unwrap_or_else(|| target.default_cluster())
        };
        source.in_flight = Some(InFlight { id, stage });
        Some(Fetch {
            id,
            source: SourceId(index),
            cluster,
            authority: target.authority,
            path: target.path,
            timeout: source.remote.timeout,
        })
    }

    fn succeed(
        &mut self,
        index: usize,
        keys: KeySet,
        body: &[u8],
        now: u64,
        shared: &dyn SharedStore,
    ) {
        let Some(source) = self.sources.get_mut(index) else { return };
        let entry_key = format!("warden.jwks.keys|{}", source.name);
        let (current, cas) = shared.get(&entry_key);
        let generation = current
            .as_deref()
            .and_then(Entry::decode)
            .map_or(0, |e| e.generation)
            .max(source.generation)
            + 1;
        let entry = Entry {
            generation,
            fetched_at: now,
            failed_at: None,
            jwks_uri: source.jwks_uri.clone().unwrap_or_default(),
            body: body.to_vec(),
        };
        // A lost race means another worker stored a newer document meanwhile: ours is still good.
        let _ = shared.set(&entry_key, &entry.encode(), cas);
        log::info!(
            "warden: fetched {} keys of {} (generation {generation})",
            keys.len(),
            source.remote.issuer
        );
        source.keys = Some(keys);
        source.fetched_at = now;
        source.generation = generation;
        source.failed_at = None;
        source.failures = 0;
        source.in_flight = None;
        source.refetch_wanted = None;
        let lease_key = format!("warden.jwks.lease|{}", source.name);
        let (_, cas) = shared.get(&lease_key);
        let _ =
            shared.set(&lease_key, &Lease { holder: self.holder, not_before: now }.encode(), cas);
    }

    fn fail(&mut self, index: usize, now: u64, shared: &dyn SharedStore, reason: &str) {
        let Some(source) = self.sources.get_mut(index) else { return };
        source.in_flight = None;
        source.refetch_wanted = None;
        source.failures = source.failures.saturating_add(1);
        source.failed_at = Some(now);
        let backoff = backoff(source.failures);
        // Logged once per attempt by the worker that made it, never per request.
        log::warn!(
            "warden: fetching the keys of {} failed: {reason}; {}; retrying in {}s",
            source.remote.issuer,
            if source.keys.is_some() {
                "keeping the last good keys"
            } else {
                "its tokens are refused until a fetch succeeds"
            },
            backoff / 1000
        );
        let entry_key = format!("warden.jwks.keys|{}", source.name);
        let (current, cas) = shared.get(&entry_key);
        let mut entry = current.as_deref().and_then(Entry::decode).unwrap_or(Entry {
            generation: source.generation,
            fetched_at: 0,
            failed_at: None,
            jwks_uri: String::new(),
            body: Vec::new(),
        });
        entry.failed_at = Some(now);
        entry.generation += 1;
        if shared.set(&entry_key, &entry.encode(), cas) {
            source.generation = entry.generation;
        }
        let lease_key = format!("warden.jwks.lease|{}", source.name);
        let (_, cas) = shared.get(&lease_key);
        let _ = shared.set(
            &lease_key,
            &Lease { holder: self.holder, not_before: now + backoff }.encode(),
            cas,
        );
    }

    /// Adopts a newer shared entry.
    fn import(&mut self, index: usize, shared: &dyn SharedStore) {
        let Some(source) = self.sources.get_mut(index) else { return };
        let (value, _) = shared.get(&format!("warden.jwks.keys|{}", source.name));
        let Some(entry) = value.as_deref().and_then(Entry::decode) else { return };
        if entry.generation <= source.generation {
            return;
        }
        source.generation = entry.generation;
        source.failed_at = entry.failed_at;
        if source
            .refetch_wanted
            .is_some_and(|asked| entry.failed_at.is_some_and(|failed| failed >= asked))
        {
            source.refetch_wanted = None;
        }
        if entry.fetched_at > source.fetched_at && !entry.body.is_empty() {
            match authn::parse_fetched_jwks(&entry.body) {
                Ok(keys) => {
                    // Another worker's fetch after our refetch request answers it too.
                    if source.refetch_wanted.is_some_and(|asked| entry.fetched_at >= asked) {
                        source.refetch_wanted = None;
                    }
                    source.keys = Some(keys);
                    source.fetched_at = entry.fetched_at;
                    if !entry.jwks_uri.is_empty() {
                        source.jwks_uri = Some(entry.jwks_uri);
                    }
                }
                // Another worker parsed it successfully, so this cannot happen unless the
                // shared memory is corrupt: keep what we have.
                Err(error) => log::error!(
                    "warden: shared keys of {} unreadable: {error}",
                    source.remote.issuer
                ),
            }
        }
    }
}

impl KeyProvider for KeyStore {
    fn keys(&self, source: SourceId) -> Keys<'_> {
        match self.sources.get(source.0) {
            Some(Source { keys: Some(keys), .. }) => Keys::Ready(keys),
            Some(Source { failed_at: None, .. }) => Keys::Pending,
            _ => Keys::Unavailable,
        }
    }
}

/// How long to wait after `failures` consecutive failures (1 s, 2 s, 4 s, 8 s, then 10 s).
fn backoff(failures: u32) -> u64 {
    (RETRY_MIN_MS << failures.saturating_sub(1).min(8)).min(RETRY_MAX_MS)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The lease record: `<holder> <not_before>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    holder: u64,
    not_before: u64,
}

impl Lease {
    fn encode(&self) -> Vec<u8> {
        format!("{} {}", self.holder, self.not_before).into_bytes()
    }

    fn decode(bytes: &[u8]) -> Option<Lease> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (holder, not_before) = text.split_once(' ')?;
        Some(Lease { holder: holder.parse().ok()?, not_before: not_before.parse().ok()? })
    }
}

/// The shared key-set record: a header line, then the JWKS document as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    generation: u64,
    fetched_at: u64,
    failed_at: Option<u64>,
    jwks_uri: String,
    body: Vec<u8>,
}

impl Entry {
    fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "warden-jwks/1 {} {} {} {}\n",
            self.generation,
            self.fetched_at,
            self.failed_at.unwrap_or(0),
            if self.jwks_uri.is_empty() { "-" } else { &self.jwks_uri }
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Entry> {
        let newline = bytes.iter().position(|&b| b == b'\n')?;
        let header = std::str::from_utf8(bytes.get(..newline)?).ok()?;
        let mut fields = header.split(' ');
        if fields.next()? != "warden-jwks/1" {
            return None;
        }
        let generation = fields.next()?.parse().ok()?;
        let fetched_at = fields.next()?.parse().ok()?;
        let failed_at = fields.next()?.parse().ok().filter(|&t| t != 0);
        let jwks_uri = fields.next()?;
        Some(Entry {
            generation,
            fetched_at,
            failed_at,
            jwks_uri: if jwks_uri == "-" { String::new() } else { jwks_uri.to_string() },
            body: bytes.get(newline + 1..)?.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const JWKS_1: &str = r#"{"keys":[{"alg":"ES256","crv":"P-256","kid":"k1","kty":"EC","use":"sig","x":"jAZRxI-yIOD2DOExqwpAMOuU0_kZ2JgZTVtBKSJvsu0","y":"X0tgLz8FjQFMqzx2FLIdNoE2YpDMR0l6nMvHKmM1Ty8"}]}"#;
    const JWKS_2: &str = r#"{"keys":[{"alg":"ES256","crv":"P-256","kid":"k2","kty":"EC","use":"sig","x":"Oa4_XokaiS1eMEnff8Vq-2ZO0qqG9_4pgWSXsojLeBQ","y":"b7s9BLSSfbwYMgpAry3jaWi22cxYrAp-ed8Gyt4rgIw"}]}"#;

    type Memory = InMemoryShared;

    fn remote(discovery: bool) -> RemoteJwks {
        RemoteJwks {
            issuer: "https://idp.example".into(),
            uri: if discovery {
                "https://idp.example/.well-known/openid-configuration".into()
            } else {
                "https://idp.example/keys".into()
            },
            discovery,
            cluster: "outbound|443||idp.example".into(),
            timeout: Duration::from_secs(5),
        }
    }

    fn worker(holder: u64) -> KeyStore {
        KeyStore::new(&[remote(false)], FetchSettings::default(), BTreeMap::new(), holder)
    }

    fn kids(store: &KeyStore) -> Option<String> {
        match store.keys(SourceId(0)) {
            Keys::Ready(keys) => {
                Some(format!("{} keys, fingerprint {}", keys.len(), keys.fingerprint()))
            }
            _ => None,
        }
    }

    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn one_fetch_per_process_and_other_workers_import_it() {
        let shared = Memory::default();
        let (mut a, mut b) = (worker(1), worker(2));
        assert!(matches!(a.keys(SourceId(0)), Keys::Pending));
        let fetches = a.poll(T0, &shared);
        assert_eq!(fetches.len(), 1);
        assert_eq!(fetches[0].cluster, "outbound|443||idp.example");
        assert_eq!(
            (fetches[0].authority.as_str(), fetches[0].path.as_str()),
            ("idp.example", "/keys")
        );
        // B sees A's lease and does not fetch.
        assert!(b.poll(T0 + 10, &shared).is_empty());
        assert!(matches!(b.keys(SourceId(0)), Keys::Pending));
        a.on_response(fetches[0].id, Some(200), JWKS_1.as_bytes(), T0 + 20, &shared);
        assert!(kids(&a).is_some());
        assert!(b.poll(T0 + 30, &shared).is_empty(), "keys are fresh: no fetch");
        assert_eq!(kids(&b), kids(&a), "B imported A's keys");
    }

    #[test]
    fn refresh_happens_once_per_interval_across_workers() {
        let shared = Memory::default();
        let (mut a, mut b) = (worker(1), worker(2));
        let f = a.poll(T0, &shared);
        a.on_response(f[0].id, Some(200), JWKS_1.as_bytes(), T0, &shared);
        b.poll(T0, &shared);
        let later = T0 + 300_000;
        let fa = a.poll(later, &shared);
        let fb = b.poll(later, &shared);
        assert_eq!(fa.len() + fb.len(), 1, "exactly one worker refreshes");
        a.on_response(fa[0].id, Some(200), JWKS_2.as_bytes(), later + 5, &shared);
        b.poll(later + 10, &shared);
        assert_eq!(kids(&a), kids(&b));
        assert_ne!(kids(&a), None);
    }

    #[test]
    fn failed_refresh_keeps_last_good_keys_until_max_stale() {
        let shared = Memory::default();
        let mut a = worker(1);
        let f = a.poll(T0, &shared);
        a.on_response(f[0].id, Some(200), JWKS_1.as_bytes(), T0, &shared);
        let good = kids(&a);
        let mut t = T0 + 300_000;
        // The identity provider answers garbage, then 503, for an hour.
        for (i, answer) in
            [b"<html>oops</html>".as_slice(), b"".as_slice()].iter().cycle().take(400).enumerate()
        {
            for fetch in a.poll(t, &shared) {
                a.on_response(
                    fetch.id,
                    Some(if i % 2 == 0 { 200 } else { 503 }),
                    answer,
                    t,
                    &shared,
                );
            }
            if t - T0 <= 3_600_000 {
                assert_eq!(kids(&a), good, "last good keys kept at +{}s", (t - T0) / 1000);
            }
            t += 10_000;
        }
        a.poll(t, &shared);
        assert!(matches!(a.keys(SourceId(0)), Keys::Unavailable), "dropped after max_stale");
    }

    #[test]
    fn first_fetch_failure_fails_closed_and_retries_with_backoff() {
        let shared = Memory::default();
        let (mut a, mut b) = (worker(1), worker(2));
        let f = a.poll(T0, &shared);
        a.on_response(f[0].id, None, b"", T0 + 5, &shared);
        assert!(matches!(a.keys(SourceId(0)), Keys::Unavailable));
        b.poll(T0 + 6, &shared);
        assert!(matches!(b.keys(SourceId(0)), Keys::Unavailable), "B learns of the failure");
        assert!(
            a.poll(T0 + 500, &shared).is_empty() && b.poll(T0 + 500, &shared).is_empty(),
            "backoff"
        );
        let retry: Vec<_> = [a.poll(T0 + 1_100, &shared), b.poll(T0 + 1_100, &shared)].concat();
        assert_eq!(retry.len(), 1, "one retry after the backoff");
    }

    #[test]
    fn unknown_kid_refetch_is_rate_limited() {
        let shared = Memory::default();
        let mut a = worker(1);
        let f = a.poll(T0, &shared);
        a.on_response(f[0].id, Some(200), JWKS_1.as_bytes(), T0, &shared);
        assert!(!a.request_refetch(SourceId(0), T0 + 1_000), "keys are younger than 30s");
        assert!(a.request_refetch(SourceId(0), T0 + 31_000));
        let f = a.poll(T0 + 31_000, &shared);
        assert_eq!(f.len(), 1);
        a.on_response(f[0].id, Some(200), JWKS_2.as_bytes(), T0 + 31_010, &shared);
        assert!(!a.request_refetch(SourceId(0), T0 + 32_000), "just refetched");
    }

    #[test]
    fn another_workers_fetch_answers_a_refetch_request() {
        let shared = Memory::default();
        let (mut a, mut b) = (worker(1), worker(2));
        let f = a.poll(T0, &shared);
        a.on_response(f[0].id, Some(200), JWKS_1.as_bytes(), T0, &shared);
        b.poll(T0, &shared);
        let t = T0 + 40_000;
        assert!(a.request_refetch(SourceId(0), t) && b.request_refetch(SourceId(0), t));
        let fa = a.poll(t, &shared);
        assert!(b.poll(t, &shared).is_empty(), "A holds the lease");
        assert!(b.waiting_on(SourceId(0)));
        a.on_response(fa[0].id, Some(200), JWKS_2.as_bytes(), t + 5, &shared);
        assert!(b.poll(t + 10, &shared).is_empty(), "B imports instead of fetching again");
        assert!(!b.waiting_on(SourceId(0)));
        assert_eq!(kids(&a), kids(&b));
    }

    #[test]
    fn abandoned_fetch_releases_its_lease_for_the_next_worker() {
        let shared = Memory::default();
        let (mut dying, mut b) = (worker(1), worker(2));
        assert_eq!(dying.poll(T0, &shared).len(), 1);
        assert!(b.poll(T0 + 10, &shared).is_empty(), "the lease holds");
        dying.abandon(T0 + 20, &shared);
        assert_eq!(b.poll(T0 + 30, &shared).len(), 1, "released at once");
    }

    #[test]
    fn no_refetch_is_promised_during_the_backoff_after_a_failure() {
        let shared = Memory::default();
        let mut a = worker(1);
        let f = a.poll(T0, &shared);
        a.on_response(f[0].id, Some(200), JWKS_1.as_bytes(), T0, &shared);
        let f = a.poll(T0 + 300_000, &shared);
        a.on_response(f[0].id, Some(500), b"", T0 + 300_000, &shared);
        assert!(!a.request_refetch(SourceId(0), T0 + 300_500), "refused during the backoff");
        assert!(a.request_refetch(SourceId(0), T0 + 301_500), "allowed once the backoff passed");
        let f = a.poll(T0 + 301_500, &shared);
        a.on_response(f[0].id, Some(200), JWKS_2.as_bytes(), T0 + 301_500, &shared);
        assert!(a.request_refetch(SourceId(0), T0 + 400_000), "allowed after a success");
    }

    #[test]
    fn discovery_finds_the_jwks_uri_then_fetches_it() {
        let shared = Memory::default();
        let mut a = KeyStore::new(&[remote(true)], FetchSettings::default(), BTreeMap::new(), 1);
        let f = a.poll(T0, &shared);
        assert_eq!(f[0].path, "/.well-known/openid-configuration");
        let Progress::FollowUp(next) = a.on_response(
            f[0].id,
            Some(200),
            br#"{"issuer":"https://idp.example","jwks_uri":"https://keys.example:8443/jwks"}"#,
            T0,
            &shared,
        ) else {
            panic!("expected the JWKS fetch to follow")
        };
        assert_eq!(
            (next.cluster.as_str(), next.path.as_str()),
            ("outbound|8443||keys.example", "/jwks")
        );
        a.on_response(next.id, Some(200), JWKS_1.as_bytes(), T0, &shared);
        assert!(kids(&a).is_some());
    }

    #[test]
    fn answers_for_unknown_fetches_are_ignored() {
        let shared = Memory::default();
        let mut a = worker(1);
        assert_eq!(
            a.on_response(424242, Some(200), JWKS_1.as_bytes(), T0, &shared),
            Progress::Unknown
        );
        assert!(matches!(a.keys(SourceId(0)), Keys::Pending));
    }

    #[test]
    fn corrupt_shared_records_are_ignored() {
        let shared = Memory::default();
        shared.set(
            "warden.jwks.keys|https://idp.example|https://idp.example/keys",
            b"garbage\xff",
            0,
        );
        shared.set("warden.jwks.lease|https://idp.example|https://idp.example/keys", b"x y", 0);
        let mut a = worker(1);
        assert_eq!(a.poll(T0, &shared).len(), 1);
    }
}
