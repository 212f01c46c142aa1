//! What a decision says, and what the engine needs to know about a request.

use super::Action;

/// A rule of an applied policy: `policy` indexes [`super::Engine::policies`], `rule` is the
/// rule's position in the policy's `spec.rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    /// Index into [`super::Engine::policies`].
    pub policy: u32,
    /// Index into the policy's `spec.rules`.
    pub rule: u32,
}

/// Why a request was allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No enforced ALLOW policy applies and no enforced DENY rule matched: allowed by default.
    NoPolicies,
    /// This enforced ALLOW rule matched (the first in Envoy's order) and no DENY rule did.
    AllowedBy(RuleRef),
    /// This enforced DENY rule matched (the first in Envoy's order).
    DeniedBy(RuleRef),
    /// Enforced ALLOW policies apply and none of their rules matched.
    NoAllowMatched,
}

/// What the dry-run ALLOW policies, evaluated on their own, would have decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRunAllow {
    /// No dry-run ALLOW policy applies.
    NotConfigured,
    /// This dry-run ALLOW rule matched: they would have allowed the request.
    Matched(RuleRef),
    /// Dry-run ALLOW policies apply and none matched: they would have denied the request.
    NoneMatched,
}

/// The attributes the applied rules read that were unknown for a request (a set): each rule
/// that reads one failed closed (see `eval.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unknowns(u8);

impl Unknowns {
    /// `ipBlocks`/`source.ip` were read, and the direct peer's address was not handed over.
    pub const DIRECT_PEER: Unknowns = Unknowns(1);
    /// An identity field was read, and the peer certificate could not be.
    pub const PEER_CERTIFICATE: Unknowns = Unknowns(2);
    /// Every kind, with its counter label.
    pub const KINDS: [(Unknowns, &'static str); 2] = [
        (Unknowns::DIRECT_PEER, "direct_peer_unknown"),
        (Unknowns::PEER_CERTIFICATE, "peer_certificate_unreadable"),
    ];

    /// This set and `other`.
    pub fn with(self, other: Unknowns) -> Unknowns {
        Unknowns(self.0 | other.0)
    }

    /// Whether every kind of `other` is in the set.
    pub fn contains(self, other: Unknowns) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty: the decision met no unknown.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The counter labels of the kinds in the set.
    pub fn labels(self) -> impl Iterator<Item = &'static str> {
        Self::KINDS.into_iter().filter(move |(kind, _)| self.contains(*kind)).map(|(_, l)| l)
    }
}

/// The answer for one request. Copy, and computed without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Which rule decided, or why none did.
    pub reason: Reason,
    /// The AUDIT rule that matched (the first in Envoy's order), if any. Never changes the outcome.
    pub audit: Option<RuleRef>,
    /// A dry-run DENY rule that matched: the request would have been denied.
    pub dry_run_deny: Option<RuleRef>,
    /// What the dry-run ALLOW policies would have decided (evaluated even when an enforced DENY
    /// decided, unlike Envoy, where a denied request never reaches the ALLOW filter's shadow rules).
    pub dry_run_allow: DryRunAllow,
    /// Which attributes the applied rules read were unknown for this request: the rules that
    /// read them failed closed.
    pub unknowns: Unknowns,
    /// A CUSTOM rule whose provider Warden calls matched: the authorizer is asked first, and
    /// this decision stands only if it allows (Istio's order: CUSTOM, then DENY and ALLOW).
    pub ask: Option<RuleRef>,
}

impl Decision {
    /// Whether a dry-run policy would have denied the request (a dry-run DENY matched, or
    /// dry-run ALLOW policies apply and none matched).
    pub fn dry_run_would_deny(&self) -> bool {
        self.dry_run_deny.is_some() || self.dry_run_allow == DryRunAllow::NoneMatched
    }

    /// The rule that decided, if one did.
    pub fn rule(&self) -> Option<RuleRef> {
        match self.reason {
            Reason::AllowedBy(rule) | Reason::DeniedBy(rule) => Some(rule),
            Reason::NoPolicies | Reason::NoAllowMatched => None,
        }
    }
}

/// One policy that applies to the engine's workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedPolicy {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// ALLOW, DENY or AUDIT.
    pub action: Action,
    /// Whether it only reports (`istio.io/dry-run`).
    pub dry_run: bool,
    /// Its number of rules (zero: it never matches).
    pub rules: u32,
    /// Why Warden cannot enforce it exactly, if so: it fails closed (see
    /// [`super::Policy::unenforceable`]).
    pub unenforceable: Option<String>,
    /// CUSTOM: `spec.provider.name`.
    pub provider: Option<String>,
    /// CUSTOM with a provider Warden calls (an HTTP provider in `providers`).
    pub calls: bool,
}

/// Which request attributes the applied rules read, so the glue reads only those from Envoy
/// (each host call costs 1–2 µs). Method, path and `:authority` come with the header map and
/// are always provided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// The peer certificate (principals, namespaces, service accounts, trust domains).
    pub peer: bool,
    /// `source.ip` / `ipBlocks`.
    pub source_ip: bool,
    /// `remote.ip` / `remoteIpBlocks`.
    pub remote_ip: bool,
    /// `destination.ip`.
    pub destination_ip: bool,
    /// `destination.port` / `ports`.
    pub destination_port: bool,
    /// `connection.sni`.
    pub sni: bool,
    /// The JWT identity (`requestPrincipals`, `request.auth.*`).
    pub identity: bool,
}

impl Needs {
    /// Notes that a rule reads `channel` (the header map is always read).
    pub fn add(&mut self, channel: super::Channel) {
        use super::Channel::*;
        match channel {
            PeerCertificate => self.peer = true,
            DirectPeer => self.source_ip = true,
            RemoteAddress => self.remote_ip = true,
            DestinationAddress => self.destination_ip = true,
            DestinationPort => self.destination_port = true,
            Sni => self.sni = true,
            Token => self.identity = true,
            HeaderMap => {}
        }
    }
}
