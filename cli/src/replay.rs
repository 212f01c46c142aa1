//! `warden replay`: decides recorded requests again under another set of policies and reports
//! every request whose outcome flips, before the change ships.
//!
//! The records are Warden's own audit records (`log.audit` with `log.auditAttributes`,
//! `filter/src/audit.rs`), one JSON object per line, bare or inside an access-log line as its
//! `warden` field (the playground's and the Istio `Telemetry` format). `auditAttributes` makes
//! each record carry what the module's rules read beyond method, host, path and addresses: the
//! peer certificate's names, the headers and claims the configured policies name, destination
//! address, port and SNI. Each record is rebuilt into the request the module saw, through the
//! core's own builder (`OwnedRequest`), and decided by the core's own engine, so replay decides
//! exactly as a sidecar given the new policies would.
//!
//! What replay cannot do, it says rather than guesses:
//! - authentication is not re-run (no token is ever recorded): a request refused for its token
//!   stays refused, and is counted apart; an authenticated request keeps the identity it had;
//! - a record without attributes, with a value cut to its bound, or lacking a header or claim
//!   the new policies read (because the old ones did not) cannot be decided exactly: it is
//!   counted as not replayable, with the reason, and the command fails.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use warden::audit;
use warden::authz::Decision;
use warden::enforcer::Enforcer;
use warden::request::{Identity, Observed, OwnedRequest, Peer};

use crate::analysis::Analysis;
use crate::explain::WorkloadArg;
use crate::style::{paint, BAD, DIM, EMPHASIS, GOOD, WARN};

/// Which way a decision flipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Forwarded before, refused now.
    AllowedToDenied,
    /// Refused before, forwarded now.
    DeniedToAllowed,
}

impl Direction {
    fn text(self) -> &'static str {
        match self {
            Direction::AllowedToDenied => "allowed → denied",
            Direction::DeniedToAllowed => "denied → allowed",
        }
    }
}

/// `--expect DIRECTION[:NAMESPACE/NAME]`: flips that are intended, optionally only those a
/// given policy decides (now or before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    direction: Direction,
    policy: Option<String>,
}

impl std::str::FromStr for Expectation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (direction, policy) = match text.split_once(':') {
            Some((d, p)) if p.contains('/') => (d, Some(p.to_string())),
            Some((_, p)) => return Err(format!("{p:?}: the policy is NAMESPACE/NAME")),
            None => (text, None),
        };
        let direction = match direction {
            "allowed-to-denied" => Direction::AllowedToDenied,
            "denied-to-allowed" => Direction::DeniedToAllowed,
            other => {
                return Err(format!(
                    "{other:?}: expected allowed-to-denied or denied-to-allowed, optionally \
                     followed by :NAMESPACE/NAME"
                ))
            }
        };
        Ok(Expectation { direction, policy })
    }
}

/// Everything `replay` needs.
pub struct Inputs<'a> {
    /// The new policies, validated.
    pub analysis: &'a Analysis,
    /// The workload whose records these are.
    pub workload: WorkloadArg,
    /// The logs: name (for messages) and contents.
    pub logs: Vec<(String, String)>,
    /// Intended flips.
    pub expect: Vec<Expectation>,
    /// Examples kept per group of flips.
    pub examples: usize,
}

/// One side of a decision: what was decided and by which rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Outcome {
    /// Forwarded.
    pub allowed: bool,
    /// `allow_rule`, `no_policies`, `deny_rule`, `no_allow_rule`, `custom_rule`, `peer_…`.
    pub reason: String,
    /// `<namespace>/<name>` of the deciding policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Envoy's name for the deciding rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl Outcome {
    fn text(&self) -> String {
        let verb = if self.allowed { "allowed" } else { "denied" };
        match (&self.rule, self.reason.as_str()) {
            (Some(rule), _) => format!("{verb} by {rule}"),
            (None, "no_policies") => format!("{verb}: no policy applies"),
            (None, "no_allow_rule") => format!("{verb}: no ALLOW rule matched"),
            (None, reason) => format!("{verb} ({reason})"),
        }
    }
}

/// Flips that share a direction and the outcomes on both sides.
#[derive(Debug, Serialize)]
pub struct Group {
    /// Which way.
    pub direction: Direction,
    /// The recorded decision.
    pub then: Outcome,
    /// The decision under the new policies.
    pub now: Outcome,
    /// How many records.
    pub count: usize,
    /// Whether an `--expect` covers it.
    pub expected: bool,
    /// A few of the requests, as one line each.
    pub examples: Vec<String>,
}

/// The result of a replay.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Records decided again.
    pub replayed: usize,
    /// Of those, with the same outcome.
    pub unchanged: usize,
    /// Refused for their token: not re-decided (no token is recorded).
    pub authentication_failures: usize,
    /// Lines that are not audit records (other access-log lines, blank lines).
    pub skipped_lines: usize,
    /// Records that cannot be decided exactly, by reason, with a count.
    pub not_replayable: BTreeMap<String, usize>,
    /// The flips.
    pub flips: Vec<Group>,
}

impl Report {
    /// Whether the change is safe as `--expect` describes it: no unexpected flip and every
    /// record replayed.
    pub fn passed(&self) -> bool {
        self.not_replayable.is_empty() && self.flips.iter().all(|g| g.expected)
    }

    /// The JSON form (`--format json`).
    pub fn json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(object) = value.as_object_mut() {
            object.insert("passed".into(), Value::Bool(self.passed()));
        }
        value
    }

    /// The report for people.
    pub fn human(&self) -> String {
        let mut out = format!(
            "{} record(s) decided again: {} unchanged, {} flipped\n",
            self.replayed,
            self.unchanged,
            self.replayed - self.unchanged
        );
        for group in &self.flips {
            let mark =
                if group.expected { paint(WARN, "expected") } else { paint(BAD, "UNEXPECTED") };
            out.push_str(&format!(
                "\n{} {} × {} ({mark})\n  then: {}\n  now:  {}\n",
                paint(EMPHASIS, group.direction.text()),
                group.count,
                if group.count == 1 { "request" } else { "requests" },
                group.then.text(),
                group.now.text(),
            ));
            for example in &group.examples {
                out.push_str(&format!("    {}\n", paint(DIM, example)));
            }
        }
        if self.authentication_failures > 0 {
            out.push_str(&format!(
                "\n{} refused for their token: not decided again (tokens are never recorded)\n",
                self.authentication_failures
            ));
        }
        if self.skipped_lines > 0 {
            out.push_str(&format!(
                "{} line(s) are not audit records: skipped\n",
                self.skipped_lines
            ));
        }
        for (why, count) in &self.not_replayable {
            out.push_str(&format!("{} {count} record(s): {why}\n", paint(BAD, "not replayable:")));
        }
        out.push_str(&if self.passed() {
            paint(GOOD, "no unexpected flip\n")
        } else if self.not_replayable.is_empty() {
            paint(BAD, "unexpected flips: the change does more than --expect allows\n")
        } else {
            paint(BAD, "some records could not be decided exactly\n")
        });
        out
    }
}

/// An audit record as `filter/src/audit.rs` writes it. Unknown fields are ignored, so records
/// of newer modules still read.
#[derive(Debug, Deserialize)]
struct Record {
    decision: String,
    reason: String,
    policy: Option<String>,
    rule: Option<String>,
    request_id: Option<String>,
    peer_principal: Option<String>,
    request_principal: Option<String>,
    source_ip: Option<IpAddr>,
    remote_ip: Option<IpAddr>,
    method: String,
    host: String,
    path: String,
    attributes: Option<Attributes>,
}

#[derive(Debug, Deserialize)]
struct Attributes {
    destination_ip: Option<IpAddr>,
    port: Option<u16>,
    sni: Option<String>,
    peer: Option<PeerNames>,
    #[serde(default)]
    peer_unknown: bool,
    #[serde(default)]
    headers: BTreeMap<String, Vec<String>>,
    token: Option<Token>,
    #[serde(default)]
    cut: bool,
}

#[derive(Debug, Deserialize)]
struct PeerNames {
    uri_sans: Vec<String>,
    #[serde(default)]
    dns_sans: Vec<String>,
    subject: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Token {
    iss: String,
    sub: Option<String>,
    #[serde(default)]
    claims: Map<String, Value>,
}

/// The record in one log line: the line itself, or its `warden` field.
fn record_of(line: &str) -> Option<Result<Record, serde_json::Error>> {
    let value: Value = serde_json::from_str(line).ok()?;
    let record = match value.get("warden") {
        Some(inner) if inner.is_object() => inner.clone(),
        _ if value.get("decision").is_some() => value,
        _ => return None,
    };
    Some(serde_json::from_value(record))
}

/// Decides the records again.
pub fn replay(inputs: Inputs<'_>) -> Result<Report> {
    let mut config = inputs.analysis.plugin_config();
    config.workload = Some(inputs.workload.workload.clone());
    // Recording settings must not change what is decided (they make the module read more).
    config.log = Default::default();
    let enforcer = Enforcer::new(&config, None)
        .map_err(|errors| anyhow!("the module refuses the new configuration: {errors}"))?;
    let mut report = Report::default();
    let mut groups: BTreeMap<(Direction, Outcome, Outcome), Group> = BTreeMap::new();
    for (name, text) in &inputs.logs {
        for (number, line) in text.lines().enumerate() {
            let record = match record_of(line) {
                None => {
                    report.skipped_lines += 1;
                    continue;
                }
                Some(Ok(record)) => record,
                Some(Err(error)) => bail!("{name}:{}: not an audit record: {error}", number + 1),
            };
            if record.decision == "unauthenticated" {
                report.authentication_failures += 1;
                continue;
            }
            let now = match decide(&enforcer, &record) {
                Ok(now) => now,
                Err(why) => {
                    *report.not_replayable.entry(why).or_default() += 1;
                    continue;
                }
            };
            report.replayed += 1;
            let then = Outcome {
                allowed: record.decision == "allowed",
                reason: record.reason.clone(),
                policy: record.policy.clone(),
                rule: record.rule.clone(),
            };
            if then.allowed == now.allowed {
                report.unchanged += 1;
                continue;
            }
            let direction =
                if then.allowed { Direction::AllowedToDenied } else { Direction::DeniedToAllowed };
            let expected = inputs.expect.iter().any(|e| {
                e.direction == direction
                    && e.policy.as_ref().is_none_or(|p| {
                        now.policy.as_ref() == Some(p) || then.policy.as_ref() == Some(p)
                    })
            });
            let group = groups.entry((direction, then.clone(), now.clone())).or_insert(Group {
                direction,
                then,
                now,
                count: 0,
                expected,
                examples: Vec::new(),
            });
            group.count += 1;
            if group.examples.len() < inputs.examples {
                group.examples.push(example(&record));
            }
        }
    }
    report.flips = groups.into_values().collect();
    Ok(report)
}

/// The request in one line: `GET host/path from PEER as ISS/SUB (request id ID)`.
fn example(record: &Record) -> String {
    let mut line = format!("{} {}{}", record.method, record.host, record.path);
    match &record.peer_principal {
        Some(peer) => line.push_str(&format!(" from {peer}")),
        None => line.push_str(" from a plaintext peer"),
    }
    if let Some(principal) = &record.request_principal {
        line.push_str(&format!(" as {principal}"));
    }
    if let Some(id) = &record.request_id {
        line.push_str(&format!(" (request id {id})"));
    }
    line
}

/// The decision under the new policies, or why it cannot be made exactly.
fn decide(enforcer: &Enforcer, record: &Record) -> Result<Outcome, String> {
    let Some(attributes) = &record.attributes else {
        return Err("recorded without log.auditAttributes".into());
    };
    if attributes.cut {
        return Err("a value was longer than the record keeps".into());
    }
    let reads = enforcer.authz().reads();
    for name in &reads.headers {
        let name = String::from_utf8_lossy(name);
        if !attributes.headers.contains_key(name.as_ref()) {
            return Err(format!(
                "the new policies read request.headers[{name}], which the record does not carry \
                 (record with a configuration that reads it)"
            ));
        }
    }
    let identity = attributes.token.as_ref().map(|token| Identity {
        issuer: token.iss.clone(),
        subject: token.sub.clone(),
        // A claim recorded as null was absent.
        claims: token
            .claims
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    });
    if let Some(token) = &attributes.token {
        if let Some(missing) = reads.claims.iter().find(|c| !token.claims.contains_key(*c)) {
            return Err(format!(
                "the new policies read the claim {missing}, which the record does not carry \
                 (record with a configuration that reads it)"
            ));
        }
    }
    let peer = match (&attributes.peer, attributes.peer_unknown) {
        (_, true) => Observed::Unknown,
        (Some(names), false) => Observed::Known(Peer {
            uri_sans: names.uri_sans.iter().map(|n| n.clone().into_bytes()).collect(),
            dns_sans: names.dns_sans.iter().map(|n| n.clone().into_bytes()).collect(),
            subject: names.subject.clone().map(String::into_bytes),
            sha256: None,
        }),
        (None, false) => Observed::Absent,
    };
    let request = OwnedRequest {
        method: record.method.clone().into_bytes(),
        path: record.path.clone().into_bytes(),
        authority: record.host.clone().into_bytes(),
        headers: attributes
            .headers
            .iter()
            .flat_map(|(name, values)| {
                values.iter().map(move |v| (name.clone().into_bytes(), v.clone().into_bytes()))
            })
            .collect(),
        peer,
        // Recorded when the module knew it; unknown otherwise (rules on it fail closed).
        source_ip: record.source_ip.map_or(Observed::Unknown, Observed::Known),
        remote_ip: record.remote_ip,
        destination_ip: attributes.destination_ip,
        destination_port: attributes.port,
        sni: attributes.sni.clone().map(String::into_bytes),
    };
    request.with(|r| match enforcer.refuse_peer(r) {
        // The module's own refusal of a doubtful certificate, before any policy.
        Some(refusal) => Ok(Outcome {
            allowed: false,
            reason: refusal.audit_label().into(),
            policy: None,
            rule: None,
        }),
        None => Ok(outcome(enforcer, &enforcer.authz().decide(r, identity.as_ref()))),
    })
}

fn outcome(enforcer: &Enforcer, decision: &Decision) -> Outcome {
    let rule = decision.rule();
    Outcome {
        allowed: decision.allowed,
        reason: audit::reason(enforcer, decision).into(),
        policy: rule.and_then(|r| audit::policy_name(enforcer, r)),
        rule: rule.map(|r| enforcer.rule_id(r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze;
    use crate::k8s::{self, Loaded};
    use std::path::Path;
    use warden::authn::{KeyProvider, Keys, PureRust, SourceId, TokenCache};
    use warden::config::plugin::DecisionLog;

    struct NoKeys;
    impl KeyProvider for NoKeys {
        fn keys(&self, _: SourceId) -> Keys<'_> {
            Keys::Unavailable
        }
    }

    fn analysis(text: &str) -> Analysis {
        let (documents, syntax_errors) = k8s::parse_all(Path::new("p.yaml"), text);
        let analysis =
            analyze(Loaded { documents, syntax_errors, files: 1 }, Default::default(), "default");
        assert!(analysis
            .diagnostics
            .iter()
            .all(|d| d.severity != crate::analysis::Severity::Error));
        analysis
    }

    const WORKLOAD: &str = "api,app=backend";
    const TENANT_ACME: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: tenants, namespace: api}
spec:
  rules:
  - from: [{source: {principals: [cluster.local/ns/web/sa/frontend]}}]
    to: [{operation: {paths: [/api/*]}}]
    when: [{key: 'request.headers[x-tenant]', values: [acme]}]
";

    /// The records a sidecar with `policies` writes for `requests` (peer, method, path, tenant).
    fn record(policies: &str, requests: &[(&str, &str, &str, &str)]) -> String {
        let mut config = analysis(policies).plugin_config();
        config.workload = Some(WORKLOAD.parse::<WorkloadArg>().unwrap().workload);
        config.log.audit = DecisionLog::All;
        config.log.audit_attributes = true;
        let enforcer = Enforcer::new(&config, None).unwrap();
        let mut lines = String::new();
        for (i, (peer, method, path, tenant)) in requests.iter().enumerate() {
            let request = OwnedRequest {
                method: method.as_bytes().to_vec(),
                path: path.as_bytes().to_vec(),
                authority: b"backend".to_vec(),
                headers: vec![
                    (b"x-tenant".to_vec(), tenant.as_bytes().to_vec()),
                    (b"x-request-id".to_vec(), format!("r{i}").into_bytes()),
                ],
                peer: Observed::Known(Peer {
                    uri_sans: vec![format!("spiffe://cluster.local/ns/{peer}").into_bytes()],
                    ..Peer::default()
                }),
                source_ip: Observed::Known("10.0.0.1".parse().unwrap()),
                ..OwnedRequest::default()
            };
            let line = request.with(|r| {
                let verdict = enforcer.check(r, 0, &NoKeys, &mut TokenCache::new(4), &PureRust);
                enforcer.audit_record(&verdict, r).unwrap()
            });
            // As the playground's access log wraps it.
            lines.push_str(&format!("{{\"response_code\":200,\"warden\":{line}}}\n"));
        }
        lines
    }

    fn replay_with(new: &str, log: &str, expect: &[&str]) -> Report {
        replay(Inputs {
            analysis: &analysis(new),
            workload: WORKLOAD.parse().unwrap(),
            logs: vec![("audit.jsonl".into(), log.to_string())],
            expect: expect.iter().map(|e| e.parse().unwrap()).collect(),
            examples: 5,
        })
        .unwrap()
    }

    #[test]
    fn recorded_requests_flip_exactly_where_the_new_policies_decide_otherwise() {
        let log = record(
            TENANT_ACME,
            &[
                ("web/sa/frontend", "GET", "/api/orders", "acme"),
                ("web/sa/frontend", "GET", "/api/orders", "globex"),
                ("rogue/sa/intruder", "GET", "/api/orders", "acme"),
                ("web/sa/frontend", "DELETE", "/api/orders/1", "acme"),
            ],
        );
        let new = format!(
            "{}\n---\napiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: no-deletes, namespace: api}}
spec:
  action: DENY
  rules: [{{to: [{{operation: {{methods: [DELETE]}}}}]}}]
",
            TENANT_ACME.replace("values: [acme]", "values: [acme, globex]")
        );
        let report = replay_with(&new, &log, &["allowed-to-denied:api/no-deletes"]);
        assert_eq!((report.replayed, report.unchanged), (4, 2));
        assert_eq!(report.flips.len(), 2, "{:?}", report.flips);
        let deleted = &report.flips[0];
        assert_eq!(deleted.direction, Direction::AllowedToDenied);
        assert_eq!(deleted.now.rule.as_deref(), Some("ns[api]-policy[no-deletes]-rule[0]"));
        assert_eq!(deleted.then.rule.as_deref(), Some("ns[api]-policy[tenants]-rule[0]"));
        assert!(deleted.expected);
        assert_eq!(
            deleted.examples,
            ["DELETE backend/api/orders/1 from cluster.local/ns/web/sa/frontend (request id r3)"]
        );
        let globex = &report.flips[1];
        assert_eq!(globex.direction, Direction::DeniedToAllowed);
        assert_eq!(globex.then.reason, "no_allow_rule");
        assert!(!globex.expected, "only the DELETE flip was expected");
        assert!(!report.passed());
        assert!(replay_with(&new, &log, &["allowed-to-denied", "denied-to-allowed"]).passed());
        // The same policies: nothing flips.
        let same = replay_with(TENANT_ACME, &log, &[]);
        assert_eq!((same.replayed, same.unchanged), (4, 4));
        assert!(same.passed());
    }

    #[test]
    fn what_the_records_do_not_carry_is_not_guessed() {
        let log = record(TENANT_ACME, &[("web/sa/frontend", "GET", "/api/orders", "acme")]);
        let new = TENANT_ACME.replace("x-tenant", "x-region");
        let report = replay_with(&new, &log, &[]);
        assert_eq!(report.replayed, 0);
        let (why, count) = report.not_replayable.iter().next().unwrap();
        assert!(why.contains("request.headers[x-region]"), "{why}");
        assert_eq!(*count, 1);
        assert!(!report.passed());

        let bare =
            r#"{"decision":"allowed","reason":"allow_rule","method":"GET","host":"b","path":"/"}"#;
        let expired = r#"{"decision":"unauthenticated","reason":"expired","status":401,"method":"GET","host":"b","path":"/"}"#;
        let report = replay_with(TENANT_ACME, &format!("{bare}\n{expired}\nnot json\n"), &[]);
        assert_eq!(report.not_replayable.get("recorded without log.auditAttributes"), Some(&1));
        assert_eq!((report.authentication_failures, report.skipped_lines), (1, 1));
    }

    #[test]
    fn claims_recorded_for_the_old_policies_decide_the_new_ones() {
        let record = |groups: &str| {
            format!(
                r#"{{"decision":"denied","reason":"no_allow_rule","status":403,"method":"GET","host":"b","path":"/admin","source_ip":"10.0.0.1","request_principal":"https://issuer/alice","attributes":{{"headers":{{}},"token":{{"iss":"https://issuer","sub":"alice","claims":{{"groups":{groups}}}}}}}}}"#
            )
        };
        let log = format!("{}\n{}\n", record(r#"["admins"]"#), record("null"));
        let new = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: admins, namespace: api}
spec:
  rules:
  - from: [{source: {requestPrincipals: ['https://issuer/*']}}]
    when: [{key: 'request.auth.claims[groups]', values: [admins]}]
";
        let report = replay_with(new, &log, &[]);
        assert_eq!((report.replayed, report.unchanged), (2, 1));
        assert_eq!(report.flips[0].now.rule.as_deref(), Some("ns[api]-policy[admins]-rule[0]"));
    }

    #[test]
    fn expectations_name_a_direction_and_maybe_a_policy() {
        let e: Expectation = "denied-to-allowed:api/open".parse().unwrap();
        assert_eq!(e.direction, Direction::DeniedToAllowed);
        assert_eq!(e.policy.as_deref(), Some("api/open"));
        assert!("allowed-to-denied".parse::<Expectation>().unwrap().policy.is_none());
        for bad in ["sideways", "allowed-to-denied:open", "denied"] {
            assert!(bad.parse::<Expectation>().is_err(), "{bad}");
        }
    }
}
