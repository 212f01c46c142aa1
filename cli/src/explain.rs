//! `warden explain`: one request against a set of policies, decided by the module's own code
//! (`Enforcer`: request authentication, then `Engine::decide`), explained with
//! `Engine::explain`: which policies apply to the workload and why the others do not, every
//! rule in Istio's order with the field that matched or failed, and what Envoy would answer.
//!
//! The token, when one is given, goes through the module's authenticator. Keys come from the
//! configuration's inline `jwks`, or from `--jwks FILE` for rules that name a `jwksUri` (or
//! rely on discovery). With neither, the signature cannot be checked: the token is then
//! re-signed with a throwaway key standing in for the issuer's, so that everything else the
//! module checks (structure, issuer and location, `exp`/`nbf`, audiences, `kid`) still runs,
//! and the report says plainly that the signature was not verified.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use warden::authn::{self, KeyProvider, KeySet, Keys, Outcome, PureRust, SourceId, TokenCache};
use warden::authz::{
    Action, Decision, DryRunAllow, Explanation, FieldExplanation, PolicyExplanation, Reason,
};
use warden::config::istio::WorkloadSelector;
use warden::config::plugin::PeerIdentity;
use warden::config::scope::selects;
use warden::config::{PluginConfig, Resource, Workload};
use warden::enforcer::{Cause, Enforcer, Verdict, RBAC_DENIED_BODY};
use warden::request::{Identity, Observed, OwnedRequest, Peer, Request};

use crate::analysis::Analysis;
use crate::style::{paint, BAD, DIM, EMPHASIS, GOOD, NOTE, WARN};

/// The `--format json` shape, for `--help`.
pub const JSON_HELP: &str = "\
JSON output (--format json), version 1; fields are never removed or renamed within a version:
  {
    \"version\": 1,
    \"workload\": {\"namespace\", \"name\": string | null, \"labels\": {..}},
    \"request\": {\"method\", \"path\", \"host\", \"headers\": [[name, value]], \"peer\": string | null,
                \"sourceIp\", \"remoteIp\", \"destinationIp\", \"port\", \"sni\"},   null when absent
    \"policies\": [{\"kind\", \"namespace\", \"name\", \"action\": \"ALLOW\"|\"DENY\"|\"AUDIT\"|null,
                  \"dryRun\": bool, \"applies\": bool, \"why\": string}],
    \"authentication\": {
      \"result\": \"anonymous\" | \"authenticated\" | \"rejected\" | \"claims\",
      \"verified\": bool | null,       false: signature not checked (no keys); null: no token
      \"rule\": string | null,         the jwtRule that accepted the token
      \"identity\": {\"issuer\", \"subject\", \"principal\", \"claims\"} | null,
      \"failure\": {\"reason\", \"message\"} | null,
      \"notes\": [string]
    },
    \"authorization\": null | {       null when authentication refused the request first
      \"groups\": [{\"group\": \"DENY\"|\"ALLOW\"|\"AUDIT\"|\"DRY_RUN_DENY\"|\"DRY_RUN_ALLOW\",
                  \"enforced\": bool,
                  \"policies\": [{\"namespace\", \"name\", \"matched\": bool, \"rules\": [{
                     \"index\", \"id\", \"matched\": bool, \"decides\": bool,
                     \"from\": [alternative] | null, \"to\": [alternative] | null, \"when\": [field]}]}]}]
      alternative: {\"matched\": bool, \"fields\": [field]}
      field: {\"field\", \"key\", \"values\": [string], \"negated\": bool, \"matched\": bool, \"actual\"}
    },
    \"decision\": {
      \"allowed\": bool,
      \"reason\": \"noPolicies\" | \"allowedBy\" | \"deniedBy\" | \"noAllowMatched\" | \"unauthenticated\",
      \"rule\": string | null,         Envoy's ns[..]-policy[..]-rule[..] that decided
      \"status\": 200 | 401 | 403,
      \"body\": string | null, \"details\": string | null, \"headers\": [[name, value]],
      \"audit\": string | null,        the AUDIT rule that matched
      \"dryRun\": {\"deny\": string | null, \"allow\": \"notConfigured\" | \"noneMatched\" | rule id,
                 \"wouldDeny\": bool}
    }
  }";

/// A workload as `--workload ns[/name][,key=value…]` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadArg {
    /// Namespace and labels, what policies select on.
    pub workload: Workload,
    /// The name, for the report only (policies select by labels, not names).
    pub name: Option<String>,
}

impl std::str::FromStr for WorkloadArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = text.split(',');
        let head = parts.next().unwrap_or_default().trim();
        let (namespace, name) = match head.split_once('/') {
            Some((namespace, name)) => (namespace, Some(name.to_string())),
            None => (head, None),
        };
        if namespace.is_empty() || name.as_deref() == Some("") {
            return Err(format!("{text:?}: expected NAMESPACE[/NAME][,LABEL=VALUE…]"));
        }
        let mut labels = BTreeMap::new();
        for part in parts {
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!("{part:?}: labels are written LABEL=VALUE"));
            };
            if key.trim().is_empty() {
                return Err(format!("{part:?}: a label needs a name"));
            }
            labels.insert(key.trim().to_string(), value.trim().to_string());
        }
        Ok(WorkloadArg { workload: Workload { namespace: namespace.to_string(), labels }, name })
    }
}

impl std::fmt::Display for WorkloadArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.workload.namespace)?;
        if let Some(name) = &self.name {
            write!(f, "/{name}")?;
        }
        for (key, value) in &self.workload.labels {
            write!(f, ",{key}={value}")?;
        }
        Ok(())
    }
}

/// One `--header NAME:VALUE`: the name lower-cased as Envoy's header map holds it, the value
/// without the spaces after the colon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderArg {
    /// Lower-case.
    pub name: String,
    /// As given, but for leading spaces.
    pub value: String,
}

impl std::str::FromStr for HeaderArg {
    type Err = String;

    /// A pseudo-header keeps its leading colon: `:authority: api` names `:authority`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (pseudo, rest) = match text.strip_prefix(':') {
            Some(rest) => (":", rest),
            None => ("", text),
        };
        match rest.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() => Ok(HeaderArg {
                name: format!("{pseudo}{}", name.trim().to_ascii_lowercase()),
                value: value.trim_start().to_string(),
            }),
            _ => Err(format!("{text:?}: expected NAME:VALUE")),
        }
    }
}

/// The request, as flags give it.
#[derive(Debug, Clone, Default)]
pub struct RequestArgs {
    /// `:method`.
    pub method: String,
    /// `:path`, with any query.
    pub path: String,
    /// `:authority`.
    pub host: Option<String>,
    /// Request headers, in order.
    pub headers: Vec<HeaderArg>,
    /// The peer's SPIFFE ID, or `namespace/serviceaccount`.
    pub peer: Option<String>,
    /// `source.ip`.
    pub source_ip: Option<IpAddr>,
    /// `remote.ip` (default: the source IP).
    pub remote_ip: Option<IpAddr>,
    /// `destination.ip`.
    pub destination_ip: Option<IpAddr>,
    /// `destination.port`.
    pub port: Option<u16>,
    /// `connection.sni`.
    pub sni: Option<String>,
}

/// The JWT identity of the request.
#[derive(Debug, Clone)]
pub enum Credential {
    /// No token.
    None,
    /// A token, sent as `Authorization: Bearer`.
    Token(String),
    /// The claims of an already verified token.
    Claims(Map<String, Value>),
}

/// Everything `explain` needs.
pub struct Inputs<'a> {
    /// The validated input.
    pub analysis: &'a Analysis,
    /// The workload.
    pub workload: WorkloadArg,
    /// The request.
    pub request: RequestArgs,
    /// The identity.
    pub credential: Credential,
    /// Keys standing in for every remote key source (`--jwks`).
    pub jwks: Option<(String, KeySet)>,
    /// Unix seconds.
    pub now: u64,
}

/// The request as the module would see it (the core's own builder), and the flags it came
/// from (for the report).
struct ExplainedRequest {
    request: OwnedRequest,
    args: RequestArgs,
    /// Where the module takes the peer's identity from (the settings' `peerIdentity`).
    peer_identity: PeerIdentity,
}

impl ExplainedRequest {
    fn new(
        args: &RequestArgs,
        trust_domain: &str,
        peer_identity: PeerIdentity,
    ) -> Result<ExplainedRequest> {
        if peer_identity == PeerIdentity::Xfcc && args.peer.is_some() {
            bail!(
                "--peer: the settings say peerIdentity: xfcc, so the module reads the peer from \
                 x-forwarded-client-cert, not from the certificate; give the header as Envoy \
                 forwards it (-H 'x-forwarded-client-cert: By=…;URI=spiffe://…')"
            );
        }
        let mut host = args.host.clone();
        let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for HeaderArg { name, value } in &args.headers {
            // Envoy turns HTTP/1's Host into :authority.
            if name == "host" || name == ":authority" {
                host.get_or_insert(value.clone());
                continue;
            }
            headers.push((name.clone().into_bytes(), value.clone().into_bytes()));
        }
        let peer = args.peer.as_deref().map(|peer| spiffe_id(peer, trust_domain)).transpose()?;
        let host = host.unwrap_or_default();
        // Envoy's connection manager sets it when the client did not (the 401 realm reads it).
        if !headers.iter().any(|(name, _)| name == b"x-forwarded-proto") {
            headers.insert(0, (b"x-forwarded-proto".to_vec(), b"http".to_vec()));
        }
        let mut args = args.clone();
        args.host = Some(host.clone()).filter(|h| !h.is_empty());
        args.peer = peer.clone();
        let request = OwnedRequest {
            method: args.method.clone().into_bytes(),
            path: args.path.clone().into_bytes(),
            authority: host.into_bytes(),
            headers,
            peer: Observed::from_option(
                peer.map(|uri| Peer { uri_sans: vec![uri.into_bytes()], ..Peer::default() }),
            ),
            source_ip: Observed::from_option(args.source_ip),
            remote_ip: args.remote_ip.or(args.source_ip),
            destination_ip: args.destination_ip,
            destination_port: args.port,
            sni: args.sni.clone().map(String::into_bytes),
        };
        Ok(ExplainedRequest { request, args, peer_identity })
    }

    fn with_token(&self, token: &str) -> ExplainedRequest {
        let mut request = self.request.clone();
        request.headers.retain(|(name, _)| name != b"authorization");
        request.headers.push((b"authorization".to_vec(), format!("Bearer {token}").into_bytes()));
        ExplainedRequest { request, args: self.args.clone(), peer_identity: self.peer_identity }
    }
}

/// `spiffe://…` as given; `td/ns/x/sa/y` with the scheme added; `ns/sa` in the trust domain.
fn spiffe_id(peer: &str, trust_domain: &str) -> Result<String> {
    if peer.starts_with("spiffe://") {
        return Ok(peer.to_string());
    }
    let segments: Vec<&str> = peer.split('/').collect();
    match segments.as_slice() {
        [namespace, account] if !namespace.is_empty() && !account.is_empty() => {
            Ok(format!("spiffe://{trust_domain}/ns/{namespace}/sa/{account}"))
        }
        [_, "ns", _, "sa", ..] => Ok(format!("spiffe://{peer}")),
        _ => bail!(
            "--peer {peer:?}: expected a SPIFFE ID (spiffe://TRUST_DOMAIN/ns/NS/sa/SA) or NS/SA"
        ),
    }
}

/// Runs `decide` on the request as the module sees it.
fn with_request<R>(owned: &ExplainedRequest, decide: impl FnOnce(&Request<'_>) -> R) -> R {
    owned.request.with_peer_identity(owned.peer_identity, decide)
}

/// Keys for every remote source: one set standing in for all, or none (pending).
struct StandIn<'k>(Option<&'k KeySet>);

impl KeyProvider for StandIn<'_> {
    fn keys(&self, _source: SourceId) -> Keys<'_> {
        match self.0 {
            Some(set) => Keys::Ready(set),
            None => Keys::Pending,
        }
    }
}

/// The token with its signature replaced by an HS256 one from a throwaway key (its `kid`
/// kept), and that key's set: verification then succeeds wherever the issuer's keys are
/// missing, and every other check of the module still runs.
fn stand_in(token: &str) -> Result<(String, KeySet)> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        bail!("the token is not a JWS");
    };
    let mut header: Map<String, Value> = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(header).context("the token's header is not base64url")?,
    )
    .context("the token's header is not a JSON object")?;
    header.insert("alg".into(), json!("HS256"));
    let secret = hmac_sha256::Hash::hash(token.as_bytes());
    let input = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?));
    let signature = hmac_sha256::HMAC::mac(input.as_bytes(), secret);
    let mut key = json!({"kty": "oct", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(secret)});
    if let (Some(kid), Some(object)) = (header.get("kid"), key.as_object_mut()) {
        object.insert("kid".into(), kid.clone());
    }
    let set = authn::parse_jwks(json!({"keys": [key]}).to_string().as_bytes())
        .map_err(|e| anyhow::anyhow!("building a stand-in key: {e}"))?;
    Ok((format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)), set))
}

/// Why a policy does or does not apply to the workload.
fn applicability(
    namespace: &str,
    selector: Option<&WorkloadSelector>,
    workload: &Workload,
    root: &str,
) -> (bool, String) {
    let applies = selects(namespace, selector, workload, root);
    let scope = if namespace == workload.namespace {
        format!("namespace {namespace} is the workload's")
    } else if namespace == root {
        format!("{namespace} is the root namespace (every workload)")
    } else {
        return (
            false,
            format!(
                "namespace {namespace} is neither the workload's ({}) nor the root namespace ({root})",
                workload.namespace
            ),
        );
    };
    let labels = selector.map(|s| &s.match_labels).filter(|l| !l.is_empty());
    let Some(labels) = labels else {
        return (applies, format!("{scope}; no selector"));
    };
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let wanted = wanted.join(",");
    if applies {
        return (applies, format!("{scope}; selector {wanted} matches"));
    }
    let missing: Vec<String> = labels
        .iter()
        .filter(|(k, v)| workload.labels.get(*k) != Some(*v))
        .map(|(k, v)| match workload.labels.get(k) {
            Some(have) => format!("{k} is {have:?}, not {v:?}"),
            None => format!("no label {k}"),
        })
        .collect();
    (applies, format!("selector {wanted} does not match: the workload has {}", missing.join(", ")))
}

/// One row of the policies table.
struct Applicability {
    kind: String,
    namespace: String,
    name: String,
    action: Option<Action>,
    dry_run: bool,
    applies: bool,
    why: String,
}

fn policies(analysis: &Analysis, workload: &Workload, root: &str) -> Vec<Applicability> {
    analysis
        .entries
        .iter()
        .map(|entry| {
            let (namespace, selector, action, dry_run) = match &entry.resource {
                Resource::AuthorizationPolicy(o) => {
                    let dry_run = analysis
                        .policies
                        .iter()
                        .any(|p| p.object_ref() == &entry.object && p.dry_run());
                    (&o.metadata.namespace, o.spec.selector.as_ref(), Some(o.spec.action), dry_run)
                }
                Resource::RequestAuthentication(o) => {
                    (&o.metadata.namespace, o.spec.selector.as_ref(), None, false)
                }
            };
            let (applies, why) = applicability(namespace, selector, workload, root);
            Applicability {
                kind: entry.object.kind.clone(),
                namespace: entry.object.namespace.clone(),
                name: entry.object.name.clone(),
                action,
                dry_run,
                applies,
                why,
            }
        })
        .collect()
}

/// What authentication did.
struct Authentication {
    result: &'static str,
    verified: Option<bool>,
    rule: Option<String>,
    identity: Option<Arc<Identity>>,
    failure: Option<(String, String)>,
    notes: Vec<String>,
}

/// What Envoy answers.
struct Answer {
    status: u16,
    body: Option<String>,
    details: Option<String>,
    headers: Vec<(String, String)>,
}

/// The whole report.
pub struct Report {
    workload: WorkloadArg,
    request: RequestArgs,
    policies: Vec<Applicability>,
    authentication: Authentication,
    explanation: Option<Explanation>,
    decision: Option<Decision>,
    answer: Answer,
    rule_ids: BTreeMap<(u32, u32), String>,
}

/// The spaceDelimitedClaims of the first rule that would accept a token of `issuer` for the
/// workload (rules are tried sorted by issuer, stably, so: the first in input order), and
/// whether any RequestAuthentication applies at all.
fn claims_rule(
    analysis: &Analysis,
    workload: &Workload,
    root: &str,
    issuer: &str,
) -> (bool, Option<Vec<String>>) {
    let mut any = false;
    for entry in &analysis.entries {
        let Resource::RequestAuthentication(object) = &entry.resource else { continue };
        if !selects(&object.metadata.namespace, object.spec.selector.as_ref(), workload, root) {
            continue;
        }
        any |= !object.spec.jwt_rules.is_empty();
        if let Some(rule) =
            object.spec.jwt_rules.iter().find(|r| r.issuer.is_empty() || r.issuer == issuer)
        {
            return (true, Some(rule.space_delimited_claims.clone()));
        }
    }
    (any, None)
}

/// Decides and explains the request.
pub fn explain(inputs: Inputs<'_>) -> Result<Report> {
    let analysis = inputs.analysis;
    let mut config: PluginConfig = analysis.plugin_config();
    config.workload = Some(inputs.workload.workload.clone());
    let enforcer = Enforcer::new(&config, None)
        .map_err(|errors| anyhow::anyhow!("the module refuses the configuration: {errors}"))?;
    let root = config.root_namespace.clone();
    let workload = &inputs.workload.workload.clone();
    let owned = ExplainedRequest::new(&inputs.request, &config.trust_domain, config.peer_identity)?;
    let applicable_authn = !enforcer.authn().is_empty();

    let mut cache = TokenCache::new(16);
    let mut stand_in_keys: Option<KeySet> = None;
    let mut authentication = Authentication {
        result: "anonymous",
        verified: None,
        rule: None,
        identity: None,
        failure: None,
        notes: Vec::new(),
    };
    // The keys --jwks gives stand for every remote key source.
    let given = StandIn(inputs.jwks.as_ref().map(|(_, set)| set));
    let request = match &inputs.credential {
        Credential::None => {
            // A token may still ride in the request itself (-H, the query, a cookie): the
            // module would read it wherever the rules say, so explain does too.
            let outcome = with_request(&owned, |request| {
                enforcer.authn().authenticate(request, inputs.now, &given, &mut cache, &PureRust)
            });
            if let Outcome::WaitForKeys { sources } = &outcome {
                let uris = remote_uris(&enforcer, sources);
                bail!(
                    "the request carries a token whose keys the module fetches from {} at run \
                     time: pass them with --jwks FILE, or give the token with --token instead of \
                     in the request to have everything but its signature checked",
                    uris
                );
            }
            record(&mut authentication, &enforcer, outcome, true, inputs.jwks.as_ref())?;
            owned
        }
        Credential::Claims(claims) => {
            authentication.result = "claims";
            let issuer = claims.get("iss").and_then(Value::as_str).unwrap_or_default();
            let (any, split) = claims_rule(analysis, workload, &root, issuer);
            if !any {
                authentication.notes.push(
                    "no RequestAuthentication applies to this workload, so the module reads no \
                     token: the claims are ignored and the request has no JWT identity"
                        .to_string(),
                );
            } else {
                if split.is_none() {
                    authentication.notes.push(format!(
                        "no jwtRule of this workload accepts issuer {issuer:?}: a real token \
                         from it would be refused with 401 (Jwt issuer is not configured); \
                         evaluated with the claims anyway"
                    ));
                }
                authentication.identity = Some(Arc::new(authn::identity_from_payload(
                    claims,
                    &split.unwrap_or_default(),
                )));
            }
            owned
        }
        Credential::Token(token) => {
            let mut sent = owned.with_token(token);
            let mut outcome = with_request(&sent, |request| {
                enforcer.authn().authenticate(request, inputs.now, &given, &mut cache, &PureRust)
            });
            let mut verified = true;
            if let Outcome::WaitForKeys { sources } = &outcome {
                let uris = remote_uris(&enforcer, sources);
                authentication.notes.push(format!(
                    "signature NOT verified: the issuer's keys are fetched from {} at run time; \
                     pass them with --jwks FILE to verify it (every other check the module \
                     makes on the token was made)",
                    uris
                ));
                let (resigned, set) = stand_in(token)?;
                sent = owned.with_token(&resigned);
                let keys = StandIn(Some(&set));
                outcome = with_request(&sent, |request| {
                    enforcer.authn().authenticate(request, inputs.now, &keys, &mut cache, &PureRust)
                });
                verified = false;
                stand_in_keys = Some(set);
            }
            if matches!(outcome, Outcome::Anonymous { .. }) {
                authentication.notes.push(if applicable_authn {
                    "no jwtRule of this workload reads `Authorization: Bearer`: the token was \
                     not looked at (send it where the rule expects it, with --header or in \
                     --path's query)"
                        .to_string()
                } else {
                    "no RequestAuthentication applies to this workload, so the module reads no \
                     token: it was ignored"
                        .to_string()
                });
            }
            record(&mut authentication, &enforcer, outcome, verified, inputs.jwks.as_ref())?;
            sent
        }
    };
    // The verdict uses the same keys as authentication did, so it sees the same token outcome.
    let keys = StandIn(stand_in_keys.as_ref().or(inputs.jwks.as_ref().map(|(_, set)| set)));
    finish(
        inputs.workload,
        &enforcer,
        request,
        authentication,
        inputs.now,
        &keys,
        &mut cache,
        analysis,
        &root,
    )
}

/// The `jwksUri`s of the key sources a token waits for, for the report.
fn remote_uris(enforcer: &Enforcer, sources: &[SourceId]) -> String {
    let remote = enforcer.authn().remote_sources();
    let uris: Vec<&str> =
        sources.iter().filter_map(|s| remote.get(s.0)).map(|r| r.uri.as_str()).collect();
    uris.join(", ")
}

/// What authentication concluded, into the report.
fn record(
    authentication: &mut Authentication,
    enforcer: &Enforcer,
    outcome: Outcome,
    verified: bool,
    jwks: Option<&(String, KeySet)>,
) -> Result<()> {
    match outcome {
        Outcome::Anonymous { .. } => {}
        Outcome::Authenticated { identity, rule, .. } => {
            authentication.result = "authenticated";
            authentication.verified = Some(verified);
            authentication.identity = Some(identity);
            authentication.rule = enforcer.authn().rule_origin(rule).map(ToString::to_string);
            if let (true, Some((file, _))) = (verified, jwks) {
                authentication
                    .notes
                    .push(format!("keys of jwksUri and discovery rules taken from {file}"));
            }
        }
        Outcome::Rejected(failure) => {
            authentication.result = "rejected";
            let reason = failure.reason();
            authentication.failure =
                Some((reason.label().to_string(), reason.message().to_string()));
        }
        Outcome::WaitForKeys { .. } => bail!("keys stood in for are still pending"),
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn finish(
    workload_arg: WorkloadArg,
    enforcer: &Enforcer,
    request: ExplainedRequest,
    authentication: Authentication,
    now: u64,
    keys: &StandIn<'_>,
    cache: &mut TokenCache,
    analysis: &Analysis,
    root: &str,
) -> Result<Report> {
    let policies = policies(analysis, &workload_arg.workload, root);
    let mut rule_ids = BTreeMap::new();
    for (p, policy) in enforcer.authz().policies().iter().enumerate() {
        for r in 0..policy.rules {
            let rule =
                warden::authz::RuleRef { policy: u32::try_from(p).unwrap_or(u32::MAX), rule: r };
            rule_ids.insert((rule.policy, rule.rule), enforcer.rule_id(rule));
        }
    }
    let (explanation, decision, answer) = match authentication.result {
        "claims" => {
            let explanation = with_request(&request, |r| {
                enforcer.authz().explain(r, authentication.identity.as_deref())
            });
            let decision = explanation.decision;
            let answer = if decision.allowed {
                Answer { status: 200, body: None, details: None, headers: Vec::new() }
            } else {
                let matched =
                    decision.rule().map_or_else(|| "none".to_string(), |r| enforcer.rule_id(r));
                Answer {
                    status: 403,
                    body: Some(RBAC_DENIED_BODY.to_string()),
                    details: Some(format!("rbac_access_denied_matched_policy[{matched}]")),
                    headers: Vec::new(),
                }
            };
            (Some(explanation), Some(decision), answer)
        }
        _ => {
            let verdict =
                with_request(&request, |r| enforcer.check(r, now, keys, cache, &PureRust));
            match verdict {
                Verdict::Allow(allow) => {
                    let explanation = with_request(&request, |r| {
                        enforcer.authz().explain(r, allow.identity.as_deref())
                    });
                    consistent(&explanation, &allow.decision)?;
                    let headers = allow
                        .headers
                        .set
                        .iter()
                        .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
                        .collect();
                    // A matching CUSTOM rule: the authorizer has the last word.
                    let details = allow.ask.as_ref().map(|ask| {
                        format!(
                            "only if the authorizer {} allows it: the CUSTOM rule {} asks it \
                             first (its denial or failure answers instead)",
                            ask.provider,
                            enforcer.rule_id(ask.rule)
                        )
                    });
                    let answer = Answer { status: 200, body: None, details, headers };
                    (Some(explanation), Some(allow.decision), answer)
                }
                Verdict::Deny(deny) => {
                    let answer = Answer {
                        status: deny.status,
                        body: Some(deny.body.to_string()),
                        details: Some(deny.details.clone()),
                        headers: deny
                            .headers
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.clone()))
                            .collect(),
                    };
                    match deny.cause {
                        Cause::Unauthorized(decision) => {
                            let explanation = with_request(&request, |r| {
                                enforcer.authz().explain(r, authentication.identity.as_deref())
                            });
                            consistent(&explanation, &decision)?;
                            (Some(explanation), Some(decision), answer)
                        }
                        Cause::Unauthenticated(_) | Cause::Peer(_) | Cause::Custom { .. } => {
                            (None, None, answer)
                        }
                    }
                }
                Verdict::Wait { .. } => bail!("the module is waiting for keys it will not get"),
            }
        }
    };
    Ok(Report {
        workload: workload_arg,
        request: request.args,
        policies,
        authentication,
        explanation,
        decision,
        answer,
        rule_ids,
    })
}

/// `Engine::explain` recomputes the decision on its slow path; it must agree with the module's.
fn consistent(explanation: &Explanation, decision: &Decision) -> Result<()> {
    if explanation.decision != *decision {
        bail!(
            "internal error: the explanation ({:?}) disagrees with the module's decision ({:?})",
            explanation.decision,
            decision
        );
    }
    Ok(())
}

/// The groups in Istio's order: the enforced DENY and ALLOW policies, then what never changes
/// the outcome.
const GROUPS: [(&str, Option<Action>, bool, bool); 5] = [
    ("DENY", Some(Action::Deny), false, true),
    ("ALLOW", Some(Action::Allow), false, true),
    ("AUDIT", Some(Action::Audit), false, false),
    ("DRY_RUN_DENY", Some(Action::Deny), true, false),
    ("DRY_RUN_ALLOW", Some(Action::Allow), true, false),
];

fn in_group(policy: &PolicyExplanation, action: Option<Action>, dry_run: bool) -> bool {
    Some(policy.action) == action && (policy.dry_run == dry_run || policy.action == Action::Audit)
}

impl Report {
    fn id(&self, rule: warden::authz::RuleRef) -> String {
        self.rule_ids.get(&(rule.policy, rule.rule)).cloned().unwrap_or_default()
    }

    fn reason(&self) -> &'static str {
        match self.decision.map(|d| d.reason) {
            None => "unauthenticated",
            Some(Reason::NoPolicies) => "noPolicies",
            Some(Reason::AllowedBy(_)) => "allowedBy",
            Some(Reason::DeniedBy(_)) => "deniedBy",
            Some(Reason::NoAllowMatched) => "noAllowMatched",
        }
    }

    /// The JSON report (see [`JSON_HELP`]).
    pub fn json(&self) -> json::Report<'_> {
        let request = &self.request;
        let authorization = self.explanation.as_ref().map(|explanation| json::Authorization {
            groups: GROUPS
                .iter()
                .map(|&(group, action, dry_run, enforced)| json::Group {
                    group,
                    enforced,
                    policies: explanation
                        .policies
                        .iter()
                        .filter(|p| in_group(p, action, dry_run))
                        .map(json::Policy::of)
                        .collect(),
                })
                .collect(),
        });
        let dry_run = match self.decision {
            None => json::DryRun { deny: None, allow: "notConfigured".into(), would_deny: false },
            Some(d) => json::DryRun {
                deny: d.dry_run_deny.map(|r| self.id(r)),
                allow: match d.dry_run_allow {
                    DryRunAllow::NotConfigured => "notConfigured".to_string(),
                    DryRunAllow::NoneMatched => "noneMatched".to_string(),
                    DryRunAllow::Matched(rule) => self.id(rule),
                },
                would_deny: d.dry_run_would_deny(),
            },
        };
        let authentication = &self.authentication;
        json::Report {
            version: 1,
            workload: json::Workload {
                namespace: &self.workload.workload.namespace,
                name: self.workload.name.as_deref(),
                labels: &self.workload.workload.labels,
            },
            request: json::Request {
                method: &request.method,
                path: &request.path,
                host: request.host.as_deref(),
                headers: request
                    .headers
                    .iter()
                    .map(|h| (h.name.as_str(), h.value.as_str()))
                    .collect(),
                peer: request.peer.as_deref(),
                source_ip: request.source_ip,
                remote_ip: request.remote_ip.or(request.source_ip),
                destination_ip: request.destination_ip,
                port: request.port,
                sni: request.sni.as_deref(),
            },
            policies: self
                .policies
                .iter()
                .map(|p| json::Applicability {
                    kind: &p.kind,
                    namespace: &p.namespace,
                    name: &p.name,
                    action: p.action.map(Action::as_str),
                    dry_run: p.dry_run,
                    applies: p.applies,
                    why: &p.why,
                })
                .collect(),
            authentication: json::Authentication {
                result: authentication.result,
                verified: authentication.verified,
                rule: authentication.rule.as_deref(),
                identity: authentication.identity.as_deref().map(|i| json::Identity {
                    issuer: &i.issuer,
                    subject: i.subject.as_deref(),
                    principal: i.principal(),
                    claims: &i.claims,
                }),
                failure: authentication
                    .failure
                    .as_ref()
                    .map(|(reason, message)| json::Failure { reason, message }),
                notes: &authentication.notes,
            },
            authorization,
            decision: json::Decision {
                allowed: self.answer.status == 200,
                reason: self.reason(),
                rule: self.decision.and_then(|d| d.rule()).map(|r| self.id(r)),
                status: self.answer.status,
                body: self.answer.body.as_deref(),
                details: self.answer.details.as_deref(),
                headers: self
                    .answer
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect(),
                audit: self.decision.and_then(|d| d.audit).map(|r| self.id(r)),
                dry_run,
            },
        }
    }

    /// The human report.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        let tick = |ok: bool| if ok { paint(GOOD, "✓") } else { paint(BAD, "✗") };

        let workload = &self.workload.workload;
        let labels: Vec<String> = workload.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        line(format!(
            "{} {}{} {}",
            paint(EMPHASIS, "Workload"),
            workload.namespace,
            self.workload.name.as_ref().map(|n| format!("/{n}")).unwrap_or_default(),
            if labels.is_empty() {
                paint(DIM, "(no labels)")
            } else {
                format!("({})", labels.join(", "))
            }
        ));
        let r = &self.request;
        let mut request = format!("{} {}", r.method, r.path);
        if let Some(host) = &r.host {
            request.push_str(&format!("  host {host}"));
        }
        request.push_str(&match &r.peer {
            Some(peer) => format!("  peer {peer}"),
            None => "  plaintext (no peer certificate)".to_string(),
        });
        if let Some(ip) = r.source_ip {
            request.push_str(&format!("  from {ip}"));
        }
        if let Some(port) = r.port {
            request.push_str(&format!("  port {port}"));
        }
        if let Some(sni) = &r.sni {
            request.push_str(&format!("  sni {sni}"));
        }
        line(format!("{}  {request}", paint(EMPHASIS, "Request")));
        for header in &r.headers {
            line(format!("         {}", paint(DIM, format!("{}: {}", header.name, header.value))));
        }

        line(String::new());
        line(paint(EMPHASIS, "Policies"));
        if self.policies.is_empty() {
            line("  none: every request is allowed".to_string());
        }
        for p in &self.policies {
            let action = match (p.action, p.dry_run) {
                (Some(a), true) => format!("{}, dry-run", a.as_str()),
                (Some(a), false) => a.as_str().to_string(),
                (None, _) => "JWT".to_string(),
            };
            line(format!(
                "  {} {} {}/{} ({action}): {}",
                if p.applies { paint(GOOD, "applies") } else { paint(DIM, "skipped") },
                p.kind,
                p.namespace,
                p.name,
                p.why
            ));
        }

        line(String::new());
        line(paint(EMPHASIS, "Authentication"));
        let a = &self.authentication;
        match a.result {
            "anonymous" => line("  no token: anonymous (authorization decides)".to_string()),
            "claims" => line("  claims given with --claims (no token checked)".to_string()),
            "authenticated" => line(format!(
                "  {} token accepted by {}{}",
                tick(true),
                a.rule.as_deref().unwrap_or("?"),
                if a.verified == Some(false) {
                    paint(WARN, " (signature NOT verified)")
                } else {
                    String::new()
                }
            )),
            _ => {
                let (reason, message) = a.failure.clone().unwrap_or_default();
                line(format!("  {} token refused: {message} ({reason})", tick(false)));
            }
        }
        if let Some(identity) = &a.identity {
            line(format!(
                "    request.auth.principal {}",
                identity
                    .principal()
                    .unwrap_or_else(|| format!("(none: iss {:?} without sub)", identity.issuer))
            ));
            line(format!("    claims {}", Value::Object(identity.claims.clone())));
        }
        for note in &a.notes {
            line(format!("  {}: {note}", paint(NOTE, "note")));
        }

        line(String::new());
        match &self.explanation {
            None => {
                line(paint(EMPHASIS, "Authorization"));
                line("  not evaluated: the token was refused first (Envoy's jwt_authn runs before RBAC)".to_string());
            }
            Some(explanation) => {
                line(format!(
                    "{} {}",
                    paint(EMPHASIS, "Authorization"),
                    paint(DIM, "(Istio's order: DENY, then ALLOW; AUDIT and dry-run never change the outcome)")
                ));
                let denied_first = matches!(explanation.decision.reason, Reason::DeniedBy(_));
                for (name, action, dry_run, _) in GROUPS {
                    let members: Vec<&PolicyExplanation> = explanation
                        .policies
                        .iter()
                        .filter(|p| in_group(p, action, dry_run))
                        .collect();
                    if members.is_empty() {
                        continue;
                    }
                    let title = name.replace('_', " ").replace("DRY RUN", "dry-run");
                    let aside = if name == "ALLOW" && denied_first {
                        paint(DIM, " (not reached in the module: a DENY rule decided)")
                    } else {
                        String::new()
                    };
                    line(format!("  {}{aside}", paint(EMPHASIS, title)));
                    for policy in members {
                        self.policy_lines(policy, name == "DENY" || name == "ALLOW", &mut line);
                    }
                }
            }
        }

        line(String::new());
        let allowed = self.answer.status == 200;
        let verdict = if allowed { paint(GOOD, "ALLOW") } else { paint(BAD, "DENY") };
        let why = match self.decision.map(|d| d.reason) {
            None => "the token was refused".to_string(),
            Some(Reason::NoPolicies) => {
                "no ALLOW policy applies and no DENY rule matched".to_string()
            }
            Some(Reason::AllowedBy(rule)) => format!("allowed by {}", self.id(rule)),
            Some(Reason::DeniedBy(rule)) => format!("denied by {}", self.id(rule)),
            Some(Reason::NoAllowMatched) => {
                "ALLOW policies apply to this workload and none matched".to_string()
            }
        };
        line(format!("{} {verdict}: {why}", paint(EMPHASIS, "Decision")));
        let mut envoy = format!("  Envoy answers {}", self.answer.status);
        if let Some(body) = &self.answer.body {
            envoy.push_str(&format!(" {body:?}"));
        }
        if let Some(details) = &self.answer.details {
            envoy.push_str(&format!(", response code details {details}"));
        }
        if allowed {
            envoy = "  Envoy forwards the request".to_string();
        }
        line(envoy);
        for (name, value) in &self.answer.headers {
            line(format!("    {}: {}", name, value));
        }
        if let Some(decision) = &self.decision {
            if let Some(rule) = decision.audit {
                line(format!("  AUDIT {} matched (logged)", self.id(rule)));
            }
            if let Some(rule) = decision.dry_run_deny {
                line(format!("  dry-run: {} would deny", self.id(rule)));
            }
            match decision.dry_run_allow {
                DryRunAllow::NotConfigured => {}
                DryRunAllow::NoneMatched => line(
                    "  dry-run: the dry-run ALLOW policies would deny (none matched)".to_string(),
                ),
                DryRunAllow::Matched(rule) => {
                    line(format!("  dry-run: {} would allow", self.id(rule)))
                }
            }
        }
        out
    }

    fn policy_lines(
        &self,
        policy: &PolicyExplanation,
        enforced: bool,
        line: &mut impl FnMut(String),
    ) {
        let marker = if enforced { "  ← decides" } else { "  ← reported" };
        let tick = |ok: bool| if ok { paint(GOOD, "✓") } else { paint(BAD, "✗") };
        line(format!(
            "    {} {}/{} {}",
            tick(policy.matched),
            policy.namespace,
            policy.name,
            if policy.matched { "matched".to_string() } else { paint(DIM, "no match") }
        ));
        if policy.rules.is_empty() {
            line(format!("        {}", paint(DIM, "no rules: never matches")));
        }
        for rule in &policy.rules {
            line(format!(
                "      {} rule[{}] {}{}",
                tick(rule.matched),
                rule.rule.rule,
                paint(DIM, &rule.id),
                if rule.reported { paint(EMPHASIS, marker) } else { String::new() }
            ));
            let field_line = |f: &FieldExplanation| {
                let name = f.field.split_once("].").map_or(f.field.as_str(), |(_, rest)| rest);
                format!(
                    "          {} {name} {:?}: request has {}",
                    tick(f.matched),
                    f.values,
                    f.actual
                )
            };
            for (side, alternatives) in [("from", &rule.from), ("to", &rule.to)] {
                let Some(alternatives) = alternatives else { continue };
                for (i, alternative) in alternatives.iter().enumerate() {
                    line(format!("        {} {side}[{i}]", tick(alternative.matched)));
                    for f in &alternative.fields {
                        line(field_line(f));
                    }
                }
            }
            for f in &rule.when {
                line(field_line(f).replacen("          ", "        ", 1));
            }
            if rule.from.is_none() && rule.to.is_none() && rule.when.is_empty() {
                line(format!("        {}", paint(DIM, "empty rule: matches every request")));
            }
        }
    }

    /// The exit status for `--expect`: whether the request was allowed.
    pub fn allowed(&self) -> bool {
        self.answer.status == 200
    }
}

/// The `--format json` report's types: its schema is [`JSON_HELP`], field for field.
pub mod json {
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    use serde::Serialize;
    use warden::authz::{AlternativeExplanation, FieldExplanation, PolicyExplanation};

    /// The whole report.
    #[derive(Debug, Serialize)]
    pub struct Report<'a> {
        pub(super) version: u32,
        pub(super) workload: Workload<'a>,
        pub(super) request: Request<'a>,
        pub(super) policies: Vec<Applicability<'a>>,
        pub(super) authentication: Authentication<'a>,
        pub(super) authorization: Option<Authorization<'a>>,
        pub(super) decision: Decision<'a>,
    }

    #[derive(Debug, Serialize)]
    pub(super) struct Workload<'a> {
        pub(super) namespace: &'a str,
        pub(super) name: Option<&'a str>,
        pub(super) labels: &'a BTreeMap<String, String>,
    }

    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Request<'a> {
        pub(super) method: &'a str,
        pub(super) path: &'a str,
        pub(super) host: Option<&'a str>,
        pub(super) headers: Vec<(&'a str, &'a str)>,
        pub(super) peer: Option<&'a str>,
        pub(super) source_ip: Option<IpAddr>,
        pub(super) remote_ip: Option<IpAddr>,
        pub(super) destination_ip: Option<IpAddr>,
        pub(super) port: Option<u16>,
        pub(super) sni: Option<&'a str>,
    }

    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Applicability<'a> {
        pub(super) kind: &'a str,
        pub(super) namespace: &'a str,
        pub(super) name: &'a str,
        pub(super) action: Option<&'static str>,
        pub(super) dry_run: bool,
        pub(super) applies: bool,
        pub(super) why: &'a str,
    }

    #[derive(Debug, Serialize)]
    pub(super) struct Authentication<'a> {
        pub(super) result: &'static str,
        pub(super) verified: Option<bool>,
        pub(super) rule: Option<&'a str>,
        pub(super) identity: Option<Identity<'a>>,
        pub(super) failure: Option<Failure<'a>>,
        pub(super) notes: &'a [String],
    }

    #[derive(Debug, Serialize)]
    pub(super) struct Identity<'a> {
        pub(super) issuer: &'a str,
        pub(super) subject: Option<&'a str>,
        pub(super) principal: Option<String>,
        pub(super) claims: &'a serde_json::Map<String, serde_json::Value>,
    }

    #[derive(Debug, Serialize)]
    pub(super) struct Failure<'a> {
        pub(super) reason: &'a str,
        pub(super) message: &'a str,
    }

    #[derive(Debug, Serialize)]
    pub(super) struct Authorization<'a> {
        pub(super) groups: Vec<Group<'a>>,
    }

    #[derive(Debug, Serialize)]
    pub(super) struct Group<'a> {
        pub(super) group: &'static str,
        pub(super) enforced: bool,
        pub(super) policies: Vec<Policy<'a>>,
    }

    #[derive(Debug, Serialize)]
    pub(super) struct Policy<'a> {
        namespace: &'a str,
        name: &'a str,
        matched: bool,
        rules: Vec<Rule<'a>>,
    }

    impl<'a> Policy<'a> {
        pub(super) fn of(policy: &'a PolicyExplanation) -> Policy<'a> {
            let alternatives = |list: &'a Option<Vec<AlternativeExplanation>>| {
                list.as_ref().map(|list| {
                    list.iter()
                        .map(|a| Alternative {
                            matched: a.matched,
                            fields: a.fields.iter().map(Field::of).collect(),
                        })
                        .collect()
                })
            };
            Policy {
                namespace: &policy.namespace,
                name: &policy.name,
                matched: policy.matched,
                rules: policy
                    .rules
                    .iter()
                    .map(|r| Rule {
                        index: r.rule.rule,
                        id: &r.id,
                        matched: r.matched,
                        decides: r.reported,
                        from: alternatives(&r.from),
                        to: alternatives(&r.to),
                        when: r.when.iter().map(Field::of).collect(),
                    })
                    .collect(),
            }
        }
    }

    #[derive(Debug, Serialize)]
    struct Rule<'a> {
        index: u32,
        id: &'a str,
        matched: bool,
        decides: bool,
        from: Option<Vec<Alternative<'a>>>,
        to: Option<Vec<Alternative<'a>>>,
        when: Vec<Field<'a>>,
    }

    #[derive(Debug, Serialize)]
    struct Alternative<'a> {
        matched: bool,
        fields: Vec<Field<'a>>,
    }

    #[derive(Debug, Serialize)]
    struct Field<'a> {
        field: &'a str,
        key: &'a str,
        values: &'a [String],
        negated: bool,
        matched: bool,
        actual: &'a str,
    }

    impl<'a> Field<'a> {
        fn of(field: &'a FieldExplanation) -> Field<'a> {
            Field {
                field: &field.field,
                key: &field.key,
                values: &field.values,
                negated: field.negated,
                matched: field.matched,
                actual: &field.actual,
            }
        }
    }

    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Decision<'a> {
        pub(super) allowed: bool,
        pub(super) reason: &'static str,
        pub(super) rule: Option<String>,
        pub(super) status: u16,
        pub(super) body: Option<&'a str>,
        pub(super) details: Option<&'a str>,
        pub(super) headers: Vec<(&'a str, &'a str)>,
        pub(super) audit: Option<String>,
        pub(super) dry_run: DryRun,
    }

    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct DryRun {
        pub(super) deny: Option<String>,
        pub(super) allow: String,
        pub(super) would_deny: bool,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_flags_keep_pseudo_header_names_and_lower_case_the_rest() {
        let parse = |text: &str| text.parse::<HeaderArg>();
        assert_eq!(
            parse(":authority: api.example.com:8443"),
            Ok(HeaderArg { name: ":authority".into(), value: "api.example.com:8443".into() })
        );
        assert_eq!(
            parse("X-Role:  admin"),
            Ok(HeaderArg { name: "x-role".into(), value: "admin".into() })
        );
        assert!(parse("nocolon").is_err());
        assert!(parse(": value").is_err());
        assert!(parse("::x").is_err());
    }

    #[test]
    fn workloads_parse_with_name_and_labels() {
        let w: WorkloadArg = "api/backend,app=backend,version=v1".parse().unwrap();
        assert_eq!(w.workload.namespace, "api");
        assert_eq!(w.name.as_deref(), Some("backend"));
        assert_eq!(w.workload.labels.len(), 2);
        assert_eq!(w.to_string(), "api/backend,app=backend,version=v1");
        let bare: WorkloadArg = "api".parse().unwrap();
        assert_eq!(bare.name, None);
        assert!(bare.workload.labels.is_empty());
        for bad in ["", "/x", "api/", "api,app", "api,=x"] {
            assert!(bad.parse::<WorkloadArg>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn peers_become_spiffe_ids() {
        assert_eq!(spiffe_id("web/frontend", "td").unwrap(), "spiffe://td/ns/web/sa/frontend");
        assert_eq!(
            spiffe_id("cluster.local/ns/web/sa/frontend", "td").unwrap(),
            "spiffe://cluster.local/ns/web/sa/frontend"
        );
        assert_eq!(spiffe_id("spiffe://x/y", "td").unwrap(), "spiffe://x/y");
        assert!(spiffe_id("frontend", "td").is_err());
    }

    #[test]
    fn applicability_says_which_label_is_missing() {
        let workload: WorkloadArg = "api,app=backend".parse().unwrap();
        let selector = |labels: &[(&str, &str)]| WorkloadSelector {
            match_labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let (applies, why) = applicability(
            "api",
            Some(&selector(&[("app", "frontend"), ("tier", "x")])),
            &workload.workload,
            "istio-system",
        );
        assert!(!applies);
        assert!(why.contains("app is \"backend\", not \"frontend\""), "{why}");
        assert!(why.contains("no label tier"), "{why}");
        let (applies, why) = applicability("web", None, &workload.workload, "istio-system");
        assert!(!applies);
        assert!(why.contains("neither"), "{why}");
        assert!(applicability("istio-system", None, &workload.workload, "istio-system").0);
    }
}
