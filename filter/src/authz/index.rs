//! The index: which rules a request can possibly match.
//!
//! Each rule is posted under the keys of one of its required fields: a field is usable only if
//! it is a positive any-of list (never a `not` field, never a `*`) whose every value has an
//! indexable key (an exact principal, an exact path, a path prefix, an exact host, …). A rule
//! matches only if one of its `from` alternatives matches (likewise `to`), and every `when`
//! condition holds, so a rule can be posted
//!
//! - under the keys of one `when` condition, or
//! - under the union, over all its `from` (or all its `to`) alternatives, of the keys of one
//!   required field of each alternative.
//!
//! Among the possible choices the rule takes the one whose most shared key is shared by the
//! fewest rules, so a request hitting that key brings along as few other rules as possible.
//! Rules with no usable field go to a list every request consults. A request looks up each of
//! its attributes and gets sorted lists of rule ids; the engine evaluates those rules, and only
//! those, in full. The index only ever prunes: a rule it leaves out cannot match.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use serde_json::Value;

use super::eval::Attributes;
use super::matcher::Pattern;
use super::policy::{Check, PathPattern, Rule, Test};
use super::principal::PeerPattern;
use crate::request::Observed;

/// How many posting lists one request may gather before the engine gives up on the index for
/// that request and evaluates every rule (correct, only slower, and no allocation).
pub(crate) const MAX_LISTS: usize = 32;

/// A fast, non-cryptographic hash (the `FxHash` of rustc). Keys come from the configuration,
/// so requests cannot choose colliding keys; they can only look keys up.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            for (slot, byte) in word.iter_mut().zip(rest) {
                *slot = *byte;
            }
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u16(&mut self, value: u16) {
        self.add(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Posting lists by a byte-string key.
type ByBytes = FxMap<Box<[u8]>, Postings>;

/// A posting list: a range of the postings arena, rule ids ascending.
#[derive(Debug, Clone, Copy)]
struct Postings {
    start: u32,
    end: u32,
}

/// The posting lists one request gathered, without allocating.
pub(crate) struct Hits<'i> {
    lists: [&'i [u32]; MAX_LISTS],
    len: usize,
    /// More lists than fit: evaluate every rule instead.
    pub(crate) overflow: bool,
}

impl<'i> Hits<'i> {
    pub(crate) fn new() -> Self {
        Hits { lists: [&[]; MAX_LISTS], len: 0, overflow: false }
    }

    fn push(&mut self, list: &'i [u32]) {
        if list.is_empty() {
            return;
        }
        match self.lists.get_mut(self.len) {
            Some(slot) => {
                *slot = list;
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    /// The gathered lists (each sorted ascending; they may share ids).
    pub(crate) fn lists_mut(&mut self) -> &mut [&'i [u32]] {
        let len = self.len;
        self.lists.get_mut(..len).unwrap_or_default()
    }
}

/// What a rule can be posted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    /// `spiffe://…` exactly, looked up with every SAN and the subject.
    Principal(Box<[u8]>),
    /// A whole `/ns/<namespace>/` segment of a SAN or the subject.
    Namespace(Box<[u8]>),
    /// The JWT's `iss` and `sub` exactly.
    RequestPrincipal(Box<[u8]>, Box<[u8]>),
    /// The JWT's `iss` exactly (any `sub` pattern).
    Issuer(Box<[u8]>),
    PathExact(Box<[u8]>),
    PathPrefix(Box<[u8]>),
    /// Lower-case.
    Host(Box<[u8]>),
    /// Lower-case `prefix*`.
    HostPrefix(Box<[u8]>),
    /// Lower-case `*suffix`, reversed (looked up in a trie of reversed hosts).
    HostSuffix(Box<[u8]>),
    Method(Box<[u8]>),
    Port(u16),
    Header(Box<[u8]>, Box<[u8]>),
    Claim(Box<[String]>, Box<[u8]>),
}

/// The keys a check can post a rule under, if every value has one.
fn check_keys(check: &Check) -> Option<Vec<Key>> {
    if check.negated {
        return None;
    }
    let exact = |p: &Pattern| match p {
        Pattern::Exact(value) => Some(value.clone()),
        _ => None,
    };
    let keys: Option<Vec<Key>> = match &check.test {
        Test::Peer(patterns) => patterns
            .iter()
            .map(|p| match p {
                PeerPattern::Exact(name) => Some(Key::Principal(name.clone())),
                other => other.required_namespace().map(|ns| Key::Namespace(ns.into())),
            })
            .collect(),
        Test::RequestPrincipal(patterns) => patterns
            .iter()
            .map(|p| match (&p.issuer, &p.subject) {
                (Pattern::Exact(iss), Pattern::Exact(sub)) => {
                    Some(Key::RequestPrincipal(iss.clone(), sub.clone()))
                }
                (Pattern::Exact(iss), _) => Some(Key::Issuer(iss.clone())),
                _ => None,
            })
            .collect(),
        Test::Path(patterns) => patterns
            .iter()
            .map(|p| match p {
                PathPattern::Value(Pattern::Exact(path)) => Some(Key::PathExact(path.clone())),
                PathPattern::Value(Pattern::Prefix(prefix)) if !prefix.is_empty() => {
                    Some(Key::PathPrefix(prefix.clone()))
                }
                PathPattern::Template(template) if !template.literal_prefix().is_empty() => {
                    Some(Key::PathPrefix(template.literal_prefix().into()))
                }
                _ => None,
            })
            .collect(),
        Test::Host(patterns) => patterns
            .iter()
            .map(|p| match p {
                Pattern::Exact(host) => Some(Key::Host(host.clone())),
                Pattern::Prefix(prefix) if !prefix.is_empty() => {
                    Some(Key::HostPrefix(prefix.clone()))
                }
                Pattern::Suffix(suffix) if !suffix.is_empty() => {
                    Some(Key::HostSuffix(suffix.iter().rev().copied().collect()))
                }
                _ => None,
            })
            .collect(),
        Test::Method(patterns) => patterns.iter().map(|p| exact(p).map(Key::Method)).collect(),
        Test::DestinationPort(ports) => Some(ports.iter().map(|&p| Key::Port(p)).collect()),
        Test::Header { name, patterns } => {
            patterns.iter().map(|p| exact(p).map(|v| Key::Header(name.clone(), v))).collect()
        }
        Test::Claim { path, patterns } => {
            patterns.iter().map(|p| exact(p).map(|v| Key::Claim(path.clone(), v))).collect()
        }
        Test::SourceIp(_)
        | Test::RemoteIp(_)
        | Test::DestinationIp(_)
        | Test::Sni(_)
        | Test::Unsupported { .. } => None,
    };
    keys.filter(|keys| !keys.is_empty())
}

/// A radix tree of path prefixes; walking a path yields every prefix it starts with.
#[derive(Debug, Default)]
struct Trie {
    nodes: Vec<Node>,
}

#[derive(Debug, Default)]
struct Node {
    label: Box<[u8]>,
    postings: Option<Postings>,
    first_bytes: Vec<u8>,
    children: Vec<u32>,
}

impl Trie {
    fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn insert(&mut self, key: &[u8], postings: Postings) -> Option<()> {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let mut node = 0usize;
        let mut rest = key;
        loop {
            let Some(&first) = rest.first() else {
                self.nodes.get_mut(node)?.postings = Some(postings);
                return Some(());
            };
            let current = self.nodes.get(node)?;
            let Some(slot) = current.first_bytes.iter().position(|&b| b == first) else {
                let child = u32::try_from(self.nodes.len()).ok()?;
                self.nodes.push(Node {
                    label: rest.into(),
                    postings: Some(postings),
                    ..Node::default()
                });
                let parent = self.nodes.get_mut(node)?;
                parent.first_bytes.push(first);
                parent.children.push(child);
                return Some(());
            };
            let child = *current.children.get(slot)? as usize;
            let common = {
                let label = &self.nodes.get(child)?.label;
                label.iter().zip(rest).take_while(|(a, b)| a == b).count()
            };
            if common < self.nodes.get(child)?.label.len() {
                // Split the child's edge: parent → middle (common part) → child (the rest).
                let middle = u32::try_from(self.nodes.len()).ok()?;
                let child_node = self.nodes.get_mut(child)?;
                let head: Box<[u8]> = child_node.label.get(..common)?.into();
                let tail: Box<[u8]> = child_node.label.get(common..)?.into();
                let tail_first = *tail.first()?;
                child_node.label = tail;
                self.nodes.push(Node {
                    label: head,
                    postings: None,
                    first_bytes: vec![tail_first],
                    children: vec![u32::try_from(child).ok()?],
                });
                *self.nodes.get_mut(node)?.children.get_mut(slot)? = middle;
                node = middle as usize;
            } else {
                node = child;
            }
            rest = rest.get(common..)?;
        }
    }

    fn walk<'i>(&'i self, path: &[u8], arena: &'i [u32], hits: &mut Hits<'i>) {
        let Some(mut node) = self.nodes.first() else { return };
        let mut rest = path;
        loop {
            if let Some(postings) = node.postings {
                hits.push(slice(arena, postings));
            }
            let Some(&first) = rest.first() else { return };
            let Some(slot) = node.first_bytes.iter().position(|&b| b == first) else { return };
            let Some(child) = node.children.get(slot).and_then(|&c| self.nodes.get(c as usize))
            else {
                return;
            };
            match rest.strip_prefix(&*child.label) {
                Some(after) => {
                    rest = after;
                    node = child;
                }
                None => return,
            }
        }
    }
}

fn slice(arena: &[u32], postings: Postings) -> &[u32] {
    arena.get(postings.start as usize..postings.end as usize).unwrap_or_default()
}

/// Rule ids by the keys of their chosen field.
#[derive(Debug, Default)]
pub(crate) struct Index {
    arena: Vec<u32>,
    always: Option<Postings>,
    principal: ByBytes,
    namespace: ByBytes,
    /// By issuer, then by subject.
    request_principal: FxMap<Box<[u8]>, ByBytes>,
    issuer: ByBytes,
    path_exact: ByBytes,
    path_prefix: Trie,
    host: ByBytes,
    host_prefix: Trie,
    /// Reversed suffixes, walked with the reversed host.
    host_suffix: Trie,
    method: ByBytes,
    port: FxMap<u16, Postings>,
    /// By header name, then by value.
    headers: Vec<(Box<[u8]>, ByBytes)>,
    /// By claim path, then by value.
    claims: Vec<(Box<[String]>, ByBytes)>,
    /// Rules posted under keys (not in the always-list), for statistics.
    pub(crate) indexed: usize,
}

impl Index {
    /// Indexes `rules` (their position is their id). `None` only if the index cannot be built
    /// (more than `u32::MAX` entries); the engine then evaluates every rule.
    pub(crate) fn build<'r>(
        rules: impl ExactSizeIterator<Item = &'r Rule> + Clone,
    ) -> Option<Index> {
        // How many rules could use each key.
        let mut popularity: FxMap<Key, u32> = FxMap::default();
        for rule in rules.clone() {
            let mut keys: Vec<Key> = rule.checks().filter_map(check_keys).flatten().collect();
            crate::sort::sort(&mut keys);
            keys.dedup();
            for key in keys {
                *popularity.entry(key).or_default() += 1;
            }
        }
        let cost =
            |keys: &[Key]| keys.iter().map(|k| popularity.get(k).copied().unwrap_or(0)).max();

        let mut postings: FxMap<Key, Vec<u32>> = FxMap::default();
        let mut always: Vec<u32> = Vec::new();
        let mut indexed = 0usize;
        for (id, rule) in rules.enumerate() {
            let id = u32::try_from(id).ok()?;
            let mut options: Vec<Vec<Key>> = rule.when.iter().filter_map(check_keys).collect();
            for side in [&rule.to, &rule.from] {
                let Some(alternatives) = side else { continue };
                let union: Option<Vec<Key>> = alternatives
                    .iter()
                    .map(|checks| {
                        checks.iter().filter_map(check_keys).min_by_key(|keys| cost(keys))
                    })
                    .try_fold(Vec::new(), |mut union, keys| {
                        union.extend(keys?);
                        Some(union)
                    });
                if let Some(union) = union.filter(|u| !u.is_empty()) {
                    options.push(union);
                }
            }
            match options.into_iter().min_by_key(|keys| (cost(keys), keys.len())) {
                Some(keys) => {
                    indexed += 1;
                    for key in keys {
                        let list = postings.entry(key).or_default();
                        if list.last() != Some(&id) {
                            list.push(id);
                        }
                    }
                }
                None => always.push(id),
            }
        }

        let mut index = Index { indexed, ..Index::default() };
        index.always = index.store(&always)?;
        let mut prefixes: Vec<(Box<[u8]>, Postings)> = Vec::new();
        let mut host_prefixes: Vec<(Box<[u8]>, Postings)> = Vec::new();
        let mut host_suffixes: Vec<(Box<[u8]>, Postings)> = Vec::new();
        for (key, ids) in postings {
            let Some(list) = index.store(&ids)? else { continue };
            match key {
                Key::Principal(name) => _ = index.principal.insert(name, list),
                Key::Namespace(ns) => _ = index.namespace.insert(ns, list),
                Key::RequestPrincipal(iss, sub) => {
                    _ = index.request_principal.entry(iss).or_default().insert(sub, list)
                }
                Key::Issuer(iss) => _ = index.issuer.insert(iss, list),
                Key::PathExact(path) => _ = index.path_exact.insert(path, list),
                Key::PathPrefix(prefix) => prefixes.push((prefix, list)),
                Key::Host(host) => _ = index.host.insert(host, list),
                Key::HostPrefix(prefix) => host_prefixes.push((prefix, list)),
                Key::HostSuffix(suffix) => host_suffixes.push((suffix, list)),
                Key::Method(method) => _ = index.method.insert(method, list),
                Key::Port(port) => _ = index.port.insert(port, list),
                Key::Header(name, value) => {
                    let at = match index.headers.iter().position(|(n, _)| *n == name) {
                        Some(at) => at,
                        None => {
                            index.headers.push((name, FxMap::default()));
                            index.headers.len() - 1
                        }
                    };
                    _ = index.headers.get_mut(at)?.1.insert(value, list);
                }
                Key::Claim(path, value) => {
                    let at = match index.claims.iter().position(|(p, _)| *p == path) {
                        Some(at) => at,
                        None => {
                            index.claims.push((path, FxMap::default()));
                            index.claims.len() - 1
                        }
                    };
                    _ = index.claims.get_mut(at)?.1.insert(value, list);
                }
            }
        }
        for (trie, mut keys) in [
            (&mut index.path_prefix, prefixes),
            (&mut index.host_prefix, host_prefixes),
            (&mut index.host_suffix, host_suffixes),
        ] {
            // Sorted so that the tree's shape does not depend on hash-map order.
            crate::sort::sort_by(&mut keys, |a, b| a.0.cmp(&b.0));
            for (key, list) in keys {
                trie.insert(&key, list)?;
            }
        }
        Some(index)
    }

    fn store(&mut self, ids: &[u32]) -> Option<Option<Postings>> {
        if ids.is_empty() {
            return Some(None);
        }
        let start = u32::try_from(self.arena.len()).ok()?;
        self.arena.extend_from_slice(ids);
        let end = u32::try_from(self.arena.len()).ok()?;
        Some(Some(Postings { start, end }))
    }

    /// Gathers the posting lists of every key the request has.
    pub(crate) fn lookup<'i>(&'i self, attributes: &Attributes<'_, '_>, hits: &mut Hits<'i>) {
        let arena = self.arena.as_slice();
        let hit = |hits: &mut Hits<'i>, postings: Option<&Postings>| {
            if let Some(&postings) = postings {
                hits.push(slice(arena, postings));
            }
        };
        if let Some(always) = self.always {
            hits.push(slice(arena, always));
        }
        let request = attributes.request;

        if !(self.principal.is_empty() && self.namespace.is_empty()) {
            if let Observed::Known(peer) = request.connection.peer {
                for name in peer.names() {
                    hit(hits, self.principal.get(name));
                    if !self.namespace.is_empty() {
                        for namespace in namespace_segments(name) {
                            hit(hits, self.namespace.get(namespace));
                        }
                    }
                }
            }
        }

        if let Some(identity) = attributes.identity {
            let issuer = identity.issuer.as_bytes();
            if let (Some(subject), Some(by_subject)) =
                (&identity.subject, self.request_principal.get(issuer))
            {
                hit(hits, by_subject.get(subject.as_bytes()));
            }
            hit(hits, self.issuer.get(issuer));
            for (path, values) in &self.claims {
                match identity.claim(path) {
                    Some(Value::String(value)) => hit(hits, values.get(value.as_bytes())),
                    Some(Value::Array(items)) => {
                        for value in items.iter().filter_map(Value::as_str) {
                            hit(hits, values.get(value.as_bytes()));
                        }
                    }
                    _ => {}
                }
            }
        }

        if !self.path_exact.is_empty() {
            hit(hits, self.path_exact.get(attributes.url_path));
        }
        self.path_prefix.walk(attributes.url_path, arena, hits);

        let hosts_indexed =
            !(self.host.is_empty() && self.host_prefix.is_empty() && self.host_suffix.is_empty());
        if let Some(host) = attributes.host().filter(|_| hosts_indexed) {
            let mut buffer = [0u8; 256];
            match buffer.get_mut(..host.len()) {
                Some(lower) => {
                    lower.copy_from_slice(host);
                    lower.make_ascii_lowercase();
                    self.hosts(lower, arena, hits);
                }
                // Longer than any DNS name: rare enough to allocate.
                None => self.hosts(&mut host.to_ascii_lowercase(), arena, hits),
            }
        }
        if !self.method.is_empty() {
            hit(hits, self.method.get(request.method));
        }
        if let Some(port) = request.connection.destination_port {
            hit(hits, self.port.get(&port));
        }
        for (name, values) in &self.headers {
            for value in attributes.header_values(name) {
                hit(hits, values.get(value));
            }
        }
    }
}

impl Index {
    /// Lookups with the lower-cased host.
    fn hosts<'i>(&'i self, lower: &mut [u8], arena: &'i [u32], hits: &mut Hits<'i>) {
        if let Some(&postings) = self.host.get(&*lower) {
            hits.push(slice(arena, postings));
        }
        self.host_prefix.walk(lower, arena, hits);
        if !self.host_suffix.is_empty() {
            lower.reverse();
            self.host_suffix.walk(lower, arena, hits);
        }
    }
}

/// Every `<namespace>` in `…/ns/<namespace>/…` (occurrences may overlap).
fn namespace_segments(name: &[u8]) -> impl Iterator<Item = &[u8]> {
    name.windows(4).enumerate().filter(|(_, w)| *w == b"/ns/").filter_map(move |(at, _)| {
        let rest = name.get(at + 4..)?;
        let end = rest.iter().position(|&b| b == b'/')?;
        rest.get(..end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn trie_yields_every_prefix_of_the_path() {
        let mut trie = Trie::default();
        let arena: Vec<u32> = (0..5).collect();
        let p = |start, end| Postings { start, end };
        trie.insert(b"/api/", p(0, 1)).unwrap();
        trie.insert(b"/api/v1/", p(1, 2)).unwrap();
        trie.insert(b"/apx", p(2, 3)).unwrap();
        trie.insert(b"/", p(3, 4)).unwrap();
        trie.insert(b"/api/v2", p(4, 5)).unwrap();
        let found = |path: &[u8]| {
            let mut hits = Hits::new();
            trie.walk(path, &arena, &mut hits);
            let mut ids: Vec<u32> =
                hits.lists_mut().iter().flat_map(|l| l.iter().copied()).collect();
            ids.sort();
            ids
        };
        assert_eq!(found(b"/api/v1/x"), vec![0, 1, 3]);
        assert_eq!(found(b"/api/v2"), vec![0, 3, 4]);
        assert_eq!(found(b"/apx/y"), vec![2, 3]);
        assert_eq!(found(b"/ap"), vec![3]);
        assert_eq!(found(b"x"), Vec::<u32>::new());
    }

    #[test]
    fn namespace_segments_are_whole() {
        let segments: Vec<&[u8]> = namespace_segments(b"spiffe://td/ns/a/sa/ns/b/x/ns/c").collect();
        assert_eq!(segments, vec![b"a".as_slice(), b"b".as_slice()]);
        let overlapping: Vec<&[u8]> = namespace_segments(b"/ns/ns/x/").collect();
        assert_eq!(overlapping, vec![b"ns".as_slice(), b"x".as_slice()]);
    }

    #[test]
    fn hits_overflow_instead_of_growing() {
        let list = [1u32];
        let mut hits = Hits::new();
        for _ in 0..MAX_LISTS + 1 {
            hits.push(&list);
        }
        assert!(hits.overflow);
        assert_eq!(hits.lists_mut().len(), MAX_LISTS);
    }
}
