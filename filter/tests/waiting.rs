//! Requests waiting for keys, natively: two workers' key stores sharing data as Envoy's worker
//! VMs do, the real enforcer, and the waiting room the module uses. Keys arrive (from this
//! worker's fetch or another's), time runs out, clients hang up, and the bounds hold.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "authn/support.rs"]
mod support;

use std::collections::BTreeMap;

use serde_json::json;
use support::{good, jwks, ISSUER, NOW};
use warden::authn::{PureRust, TokenCache};
use warden::enforcer::{self, Cause, Enforcer, Verdict};
use warden::keystore::{Fetch, InMemoryShared, KeyStore, Progress};
use warden::request::OwnedRequest;
use warden::waiting::{Full, Waiter, WaitingRoom, Wake, Woken, MAX_WAITING_BYTES};
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

const T0: u64 = NOW * 1000;

type Shared = InMemoryShared;

/// One worker VM: its key store, token cache and waiting room.
struct Worker {
    keys: KeyStore,
    cache: TokenCache,
    room: WaitingRoom<OwnedRequest>,
}

fn enforcer() -> Enforcer {
    let config = json!({
        "workload": {"namespace": "api", "labels": {"app": "backend"}},
        "policies": [{"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
            "metadata": {"name": "jwt", "namespace": "api"},
            "spec": {"jwtRules": [{"issuer": ISSUER, "jwksUri": "https://issuer.example/keys", "timeout": "2s"}]}}],
    });
    Enforcer::new(&enforcer::parse_plugin_config(config.to_string().as_bytes()).unwrap(), None)
        .unwrap()
}

impl Worker {
    fn new(enforcer: &Enforcer, holder: u64) -> Worker {
        Worker {
            keys: KeyStore::new(
                enforcer.authn().remote_sources(),
                enforcer.fetch_settings(),
                BTreeMap::new(),
                holder,
            ),
            cache: TokenCache::new(16),
            room: WaitingRoom::default(),
        }
    }

    fn check(&mut self, enforcer: &Enforcer, request: &OwnedRequest, now: u64) -> Verdict {
        request.with(|r| enforcer.check(r, now / 1000, &self.keys, &mut self.cache, &PureRust))
    }

    /// A request arrives: decided at once, or paused in the room (`None`).
    fn arrive(
        &mut self,
        enforcer: &Enforcer,
        id: u32,
        request: OwnedRequest,
        now: u64,
    ) -> Option<Verdict> {
        match self.check(enforcer, &request, now) {
            Verdict::Wait { sources } => {
                let deadline = now + enforcer.wait_limit(&sources).as_millis() as u64;
                let waiter = Waiter { request, sources, deadline, fallback: None };
                self.room.wait(id, waiter).unwrap();
                None
            }
            verdict => Some(verdict),
        }
    }

    /// A tick of the root context: poll the key store, wake what can be answered.
    fn tick(
        &mut self,
        enforcer: &Enforcer,
        now: u64,
        shared: &Shared,
    ) -> (Vec<Fetch>, Vec<Woken<OwnedRequest>>) {
        let fetches = self.keys.poll(now, shared);
        let Worker { keys, cache, room } = self;
        let woken = room.wake(
            now,
            |source| keys.waiting_on(source),
            |request| request.with(|r| enforcer.check(r, now / 1000, &*keys, cache, &PureRust)),
        );
        (fetches, woken)
    }
}

fn with_token() -> OwnedRequest {
    let mut request = OwnedRequest::default();
    request.headers.push((b"authorization".to_vec(), format!("Bearer {}", good()).into_bytes()));
    request
}

fn allowed(wake: &Wake) -> bool {
    matches!(wake, Wake::Decided(Verdict::Allow(_)))
}

#[test]
fn keys_fetched_by_one_worker_answer_the_requests_waiting_in_both() {
    let enforcer = enforcer();
    let shared = Shared::default();
    let mut a = Worker::new(&enforcer, 1);
    let mut b = Worker::new(&enforcer, 2);
    assert!(a.arrive(&enforcer, 10, with_token(), T0).is_none(), "no keys yet: it waits");
    assert!(b.arrive(&enforcer, 20, with_token(), T0).is_none());
    assert!(a.arrive(&enforcer, 11, with_token(), T0).is_none());

    // Worker a takes the shared lease and fetches; b sees the lease and does not.
    let (fetches, woken) = a.tick(&enforcer, T0 + 10, &shared);
    assert_eq!(fetches.len(), 1);
    assert!(woken.is_empty(), "keys are coming: nobody is decided yet");
    let (others, woken) = b.tick(&enforcer, T0 + 10, &shared);
    assert!(others.is_empty(), "one fetch per Envoy process");
    assert!(woken.is_empty());

    let progress =
        a.keys.on_response(fetches[0].id, Some(200), jwks().as_bytes(), T0 + 50, &shared);
    assert_eq!(progress, Progress::Stored);
    let (_, woken) = a.tick(&enforcer, T0 + 60, &shared);
    assert_eq!(woken.iter().map(|w| w.id).collect::<Vec<_>>(), vec![10, 11], "arrival order");
    assert!(woken.iter().all(|w| allowed(&w.wake)), "{woken:?}");
    let (_, woken) = b.tick(&enforcer, T0 + 60, &shared);
    assert_eq!(woken.len(), 1, "b imports the keys a stored");
    assert!(allowed(&woken[0].wake));
    assert!(a.room.is_empty() && b.room.is_empty());
    assert_eq!(a.room.bytes() + b.room.bytes(), 0);
}

#[test]
fn a_request_times_out_at_its_rules_timeout_and_not_before() {
    let enforcer = enforcer();
    let shared = Shared::default();
    let mut a = Worker::new(&enforcer, 1);
    assert!(a.arrive(&enforcer, 1, with_token(), T0).is_none());
    let (fetches, _) = a.tick(&enforcer, T0 + 10, &shared);
    assert_eq!(fetches.len(), 1, "the fetch hangs: no answer ever comes");
    let (_, woken) = a.tick(&enforcer, T0 + 1_999, &shared);
    assert!(woken.is_empty(), "the rule's timeout is 2s");
    let (_, woken) = a.tick(&enforcer, T0 + 2_000, &shared);
    assert_eq!(woken.len(), 1);
    assert!(matches!(woken[0].wake, Wake::TimedOut(None)), "{:?}", woken[0].wake);
    let deny = woken[0].request.with(|r| enforcer.keys_unavailable(r));
    assert_eq!(deny.status, 401);
    assert!(matches!(deny.cause, Cause::Unauthenticated(_)));
}

#[test]
fn a_failed_fetch_answers_at_once_without_waiting_out_the_timeout() {
    let enforcer = enforcer();
    let shared = Shared::default();
    let mut a = Worker::new(&enforcer, 1);
    assert!(a.arrive(&enforcer, 1, with_token(), T0).is_none());
    let (fetches, _) = a.tick(&enforcer, T0 + 10, &shared);
    let progress = a.keys.on_response(fetches[0].id, Some(503), b"", T0 + 20, &shared);
    assert_eq!(progress, Progress::Failed);
    let (_, woken) = a.tick(&enforcer, T0 + 30, &shared);
    assert_eq!(woken.len(), 1, "keys are no longer coming");
    let Wake::Decided(Verdict::Deny(deny)) = &woken[0].wake else { panic!("{:?}", woken[0].wake) };
    assert_eq!(deny.status, 401, "Jwks remote fetch is failed");
}

#[test]
fn a_request_whose_client_hung_up_is_forgotten_and_never_answered() {
    let enforcer = enforcer();
    let shared = Shared::default();
    let mut a = Worker::new(&enforcer, 1);
    assert!(a.arrive(&enforcer, 1, with_token(), T0).is_none());
    assert!(a.arrive(&enforcer, 2, with_token(), T0).is_none());
    let held = a.room.bytes();
    assert!(a.room.forget(1));
    assert!(!a.room.forget(1), "forgotten once");
    assert!(a.room.bytes() < held && a.room.bytes() > 0);
    let (fetches, _) = a.tick(&enforcer, T0 + 10, &shared);
    a.keys.on_response(fetches[0].id, Some(200), jwks().as_bytes(), T0 + 20, &shared);
    let (_, woken) = a.tick(&enforcer, T0 + 30, &shared);
    assert_eq!(woken.iter().map(|w| w.id).collect::<Vec<_>>(), vec![2]);
    assert_eq!(a.room.bytes(), 0);
}

#[test]
fn the_room_is_bounded_by_count_and_by_bytes() {
    let waiter =
        |request: OwnedRequest| Waiter { request, sources: vec![], deadline: T0, fallback: None };
    let mut room = WaitingRoom::with_limits(2, MAX_WAITING_BYTES);
    room.wait(1, waiter(OwnedRequest::default())).unwrap();
    room.wait(2, waiter(OwnedRequest::default())).unwrap();
    let (_, full) = *room.wait(3, waiter(OwnedRequest::default())).unwrap_err();
    assert_eq!(full, Full::Count);
    room.forget(1);
    room.wait(3, waiter(OwnedRequest::default())).unwrap();

    // Large header maps: the byte bound refuses before the count bound is near.
    let mut big = OwnedRequest::default();
    big.headers.push((b"x-big".to_vec(), vec![b'a'; 60 * 1024]));
    let mut room = WaitingRoom::with_limits(4096, 256 * 1024);
    let mut admitted = 0;
    let full = loop {
        match room.wait(admitted, waiter(big.clone())) {
            Ok(()) => admitted += 1,
            Err(refused) => break refused.1,
        }
    };
    assert_eq!(full, Full::Bytes);
    assert_eq!(admitted, 4, "4 × 60 KiB fit in 256 KiB, a fifth does not");
    assert!(room.bytes() <= 256 * 1024);
    for id in 0..admitted {
        room.forget(id);
    }
    assert_eq!(room.bytes(), 0, "every byte is given back");
}

#[test]
fn an_unknown_kid_waits_for_a_refetch_then_is_refused_as_unknown() {
    let enforcer = enforcer();
    let shared = Shared::default();
    let mut a = Worker::new(&enforcer, 1);
    // Keys are in, but not the one the token names.
    assert!(a.arrive(&enforcer, 1, with_token(), T0).is_none());
    let (fetches, _) = a.tick(&enforcer, T0 + 10, &shared);
    let other =
        json!({"keys": [serde_json::from_str::<serde_json::Value>(&jwks()).unwrap()["keys"][1]]});
    a.keys.on_response(fetches[0].id, Some(200), other.to_string().as_bytes(), T0 + 20, &shared);
    let (_, woken) = a.tick(&enforcer, T0 + 30, &shared);
    let Wake::Decided(Verdict::Deny(refusal)) = &woken[0].wake else {
        panic!("{:?}", woken[0].wake)
    };
    let source = refusal.refetch().expect("an unknown kid asks for a refetch");
    // The glue asks the key store for a refetch and parks the request with that refusal.
    let now = T0 + 60_000;
    assert!(a.keys.request_refetch(source, now));
    let waiter = Waiter {
        request: with_token(),
        sources: vec![source],
        deadline: now + 2_000,
        fallback: Some(refusal.clone()),
    };
    a.room.wait(2, waiter).unwrap();
    let (fetches, woken) = a.tick(&enforcer, now + 10, &shared);
    assert_eq!(fetches.len(), 1, "the refetch");
    assert!(woken.is_empty());
    let (_, woken) = a.tick(&enforcer, now + 1_999, &shared);
    assert!(woken.is_empty(), "the refetch may still bring the key");
    let (_, woken) = a.tick(&enforcer, now + 2_000, &shared);
    let Wake::Decided(Verdict::Deny(deny)) = &woken[0].wake else { panic!("{:?}", woken[0].wake) };
    assert_eq!(deny.details, refusal.details, "refused as an unknown kid, not as keys unavailable");
}
