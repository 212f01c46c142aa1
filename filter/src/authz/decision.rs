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
    /// `request.headers[..]` conditions.
    pub headers: bool,
    /// The JWT identity (`requestPrincipals`, `request.auth.*`).
    pub identity: bool,
}
