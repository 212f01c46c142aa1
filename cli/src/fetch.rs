//! `warden compile --inline-jwks`: fetch every issuer's keys now and write them into the
//! configuration as `jwks`, as istiod does by default (`PILOT_JWT_ENABLE_REMOTE_JWKS=false`:
//! istiod resolves `jwksUri`, or OpenID discovery from the issuer, and hands Envoy `local_jwks`).
//!
//! The sidecars then need no route to the identity provider; the price is that keys rotated by
//! the issuer are seen only when the configuration is compiled again.
//!
//! What is fetched is read with the core's parser for fetched key sets: keys the module would
//! skip (a published symmetric key, a short RSA key, an unknown `kty`) are left out, so the
//! inlined set validates (an inline set must have every key usable); a document with no usable
//! key at all is an error.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::{Map, Value};
use warden::authn::{self, MAX_JWKS_BYTES};

use crate::analysis::Entry;

/// Fetches over HTTP(S) with one deadline per request, remembering what it fetched.
pub struct Fetcher {
    agent: ureq::Agent,
    cache: BTreeMap<String, Vec<u8>>,
}

/// What was inlined, for the command's notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inlined {
    /// `namespace/name jwtRules[i]`.
    pub rule: String,
    /// Where the keys came from.
    pub uri: String,
    /// How many keys were inlined.
    pub keys: usize,
    /// Keys left out, and why.
    pub skipped: Vec<String>,
}

impl Fetcher {
    /// A fetcher whose every request (connect, TLS, response) must finish within `timeout`.
    pub fn new(timeout: Duration) -> Fetcher {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .build();
        Fetcher { agent: config.into(), cache: BTreeMap::new() }
    }

    /// The body of a `200` answer to `GET uri`, at most [`MAX_JWKS_BYTES`].
    pub fn get(&mut self, uri: &str) -> Result<Vec<u8>> {
        if let Some(body) = self.cache.get(uri) {
            return Ok(body.clone());
        }
        let mut response = self
            .agent
            .get(uri)
            .header("accept", "application/json")
            .call()
            .map_err(|e| anyhow!("fetching {uri}: {e}"))?;
        let status = response.status();
        if status.as_u16() != 200 {
            bail!("fetching {uri}: the server answered {status}");
        }
        let limit = u64::try_from(MAX_JWKS_BYTES).unwrap_or(u64::MAX);
        let body = response
            .body_mut()
            .with_config()
            .limit(limit.saturating_add(1))
            .read_to_vec()
            .map_err(|e| anyhow!("fetching {uri}: {e}"))?;
        if body.len() > MAX_JWKS_BYTES {
            bail!("fetching {uri}: larger than {MAX_JWKS_BYTES} bytes");
        }
        self.cache.insert(uri.to_string(), body.clone());
        Ok(body)
    }

    /// The key set of a rule: from `jwks_uri`, or else from the `jwks_uri` of the issuer's
    /// OpenID configuration. Returns the document to inline (usable keys only), where it came
    /// from, and the keys left out.
    pub fn key_set(
        &mut self,
        jwks_uri: &str,
        issuer: &str,
    ) -> Result<(String, String, usize, Vec<String>)> {
        let uri = if jwks_uri.is_empty() {
            let discovery = authn::discovery_uri(issuer);
            let body = self.get(&discovery)?;
            authn::parse_openid_configuration(&body)
                .map_err(|e| anyhow!("{discovery}: not a usable OpenID configuration: {e}"))?
        } else {
            jwks_uri.to_string()
        };
        let body = self.get(&uri)?;
        let set = authn::parse_fetched_jwks(&body)
            .map_err(|e| anyhow!("{uri}: not a usable JWKS: {e}"))?;
        let document: Value =
            serde_json::from_slice(&body).with_context(|| format!("{uri}: not JSON"))?;
        let keys = document.get("keys").and_then(Value::as_array).cloned().unwrap_or_default();
        let kept: Vec<Value> = keys
            .into_iter()
            .enumerate()
            .filter(|(index, _)| !set.skipped().iter().any(|s| s.index == *index))
            .map(|(_, key)| key)
            .collect();
        let count = kept.len();
        let mut out = Map::new();
        out.insert("keys".into(), Value::Array(kept));
        let skipped = set.skipped().iter().map(ToString::to_string).collect();
        Ok((Value::Object(out).to_string(), uri, count, skipped))
    }
}

/// Replaces `jwksUri` (or OpenID discovery) by the fetched `jwks` in every rule of every
/// `RequestAuthentication` among `entries`. Rules that already carry `jwks` are left alone.
/// The first failed fetch is an error naming the object and rule.
pub fn inline_jwks(entries: &mut [Entry], fetcher: &mut Fetcher) -> Result<Vec<Inlined>> {
    let mut done = Vec::new();
    for entry in entries.iter_mut() {
        if entry.object.kind != warden::config::KIND_REQUEST_AUTHENTICATION {
            continue;
        }
        let object = entry.object.clone();
        let mut value = entry.value();
        let Some(rules) =
            value.get_mut("spec").and_then(|s| s.get_mut("jwtRules")).and_then(Value::as_array_mut)
        else {
            continue;
        };
        for (index, rule) in rules.iter_mut().enumerate() {
            let Some(rule) = rule.as_object_mut() else { continue };
            let text =
                |key: &str| rule.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
            if !text("jwks").is_empty() {
                continue;
            }
            let (jwks_uri, issuer) = (text("jwksUri"), text("issuer"));
            let name = format!("{}/{} jwtRules[{index}]", object.namespace, object.name);
            let (jwks, uri, keys, skipped) = fetcher
                .key_set(&jwks_uri, &issuer)
                .with_context(|| format!("RequestAuthentication {name}: cannot inline its keys"))?;
            rule.remove("jwksUri");
            rule.insert("jwks".into(), Value::String(jwks));
            done.push(Inlined { rule: name, uri, keys, skipped });
        }
        entry.set_value(&value)?;
    }
    Ok(done)
}
