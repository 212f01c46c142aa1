//! `warden playground issuer`: a small OpenID Connect-style token issuer for the playground and
//! the end-to-end tests.
//!
//! | endpoint | what it does |
//! |---|---|
//! | `GET /.well-known/openid-configuration` | discovery: `issuer`, `jwks_uri`, algorithms |
//! | `GET /.well-known/jwks.json` | every published public key |
//! | `GET /token?sub=&aud=&scope=&ttl=&alg=&nbf=&iss=&kid=&claims=&no_exp=` | mints a token (text) |
//! | `POST /rotate?alg=&drop_old=1` | a new signing key; the old one stays published unless `drop_old` |
//! | `POST /fault?mode=ok\|down\|500\|html\|garbage\|empty\|slow&delay_ms=` | makes discovery and JWKS misbehave |
//! | `GET /stats` | counters (JWKS and discovery requests served, tokens minted) and the fault |
//! | `GET /healthz` | `ok`, whatever the fault (for readiness checks) |
//!
//! Keys persist in `--state` (`keys.json`, mode 0600), so a restarted issuer keeps signing with
//! the keys Envoy already trusts. Keys for an algorithm are created the first time a token asks
//! for it. HMAC algorithms are refused: an identity provider never publishes a shared secret
//! (mint HS* tokens with `warden token` and give Warden the key inline).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::http::{self, form_decode, Reply, Request, Response};
use crate::output::write_atomically;
use crate::token::{self, Algorithm, Claims, SigningKey};

/// How long a `slow` fault delays discovery and JWKS answers by default: longer than Istio's
/// default JWKS fetch timeout (5 s).
pub const DEFAULT_SLOW_DELAY: Duration = Duration::from_secs(10);

/// The issuer's settings.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The `iss` claim and the base of the discovery URLs.
    pub issuer: String,
    /// Where keys persist.
    pub state_dir: PathBuf,
    /// The algorithm of tokens that do not ask for one.
    pub default_alg: Algorithm,
    /// `aud` of tokens that do not give one.
    pub default_audiences: Vec<String>,
    /// RSA modulus size of generated keys.
    pub rsa_bits: usize,
}

/// How the discovery and JWKS endpoints behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Normally.
    Ok,
    /// Close the connection without answering.
    Down,
    /// 500 with a text body.
    ServerError,
    /// 200 with an HTML page (a login page or a proxy's error page, say).
    Html,
    /// 200 `application/json` that is not JSON.
    Garbage,
    /// 200 with a key set that has no keys.
    Empty,
    /// Answer normally, after a delay.
    Slow(Duration),
    /// 200 with the real key set padded past Warden's 256 KiB limit for a key set.
    Huge,
}

impl Fault {
    fn name(self) -> String {
        match self {
            Fault::Ok => "ok".into(),
            Fault::Down => "down".into(),
            Fault::ServerError => "500".into(),
            Fault::Html => "html".into(),
            Fault::Garbage => "garbage".into(),
            Fault::Empty => "empty".into(),
            Fault::Slow(delay) => format!("slow ({} ms)", delay.as_millis()),
            Fault::Huge => "huge".into(),
        }
    }
}

/// One key as `keys.json` stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    alg: String,
    kid: String,
    created: i64,
    current: bool,
    /// The key file text (PEM).
    key: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredKeys {
    keys: Vec<StoredKey>,
}

struct Entry {
    key: SigningKey,
    created: i64,
    current: bool,
}

#[derive(Default)]
struct Counters {
    jwks_requests: u64,
    discovery_requests: u64,
    tokens_minted: u64,
}

struct Inner {
    keys: Vec<Entry>,
    fault: Fault,
    counters: Counters,
}

/// The issuer: keys, fault switch and counters behind one lock.
pub struct Issuer {
    config: IssuerConfig,
    inner: Mutex<Inner>,
}

/// A client error: 400 with this message.
struct BadRequest(String);

impl From<anyhow::Error> for BadRequest {
    fn from(error: anyhow::Error) -> Self {
        BadRequest(format!("{error:#}"))
    }
}

impl Issuer {
    /// Loads the keys from the state directory (creating it) and makes sure the default
    /// algorithm has a signing key.
    pub fn open(config: IssuerConfig) -> Result<Self> {
        if config.default_alg.is_symmetric() {
            bail!(
                "an issuer publishes public keys: choose an asymmetric --alg, not {}",
                config.default_alg
            );
        }
        std::fs::create_dir_all(&config.state_dir)
            .with_context(|| format!("creating {}", config.state_dir.display()))?;
        let path = config.state_dir.join("keys.json");
        let stored: StoredKeys = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("reading {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StoredKeys::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut keys = Vec::new();
        for stored in stored.keys {
            let alg: Algorithm = stored.alg.parse().map_err(anyhow::Error::msg)?;
            let key = SigningKey::from_file_text(&stored.key, Some(alg))
                .with_context(|| format!("{}: key {}", path.display(), stored.kid))?
                .with_kid(&stored.kid);
            keys.push(Entry { key, created: stored.created, current: stored.current });
        }
        let issuer = Issuer {
            config,
            inner: Mutex::new(Inner { keys, fault: Fault::Ok, counters: Counters::default() }),
        };
        {
            let mut inner = issuer.lock();
            issuer.current_key(&mut inner, issuer.config.default_alg)?;
        }
        Ok(issuer)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the keys half-written (they are replaced
        // whole), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn save(&self, inner: &Inner) -> Result<()> {
        let keys = inner
            .keys
            .iter()
            .map(|entry| {
                Ok(StoredKey {
                    alg: entry.key.algorithm().name().into(),
                    kid: entry.key.kid().unwrap_or_default().into(),
                    created: entry.created,
                    current: entry.current,
                    key: entry.key.to_file_text()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut text = serde_json::to_string_pretty(&StoredKeys { keys })?;
        text.push('\n');
        write_atomically(&self.config.state_dir.join("keys.json"), text.as_bytes(), Some(0o600))
    }

    /// The index of the current key for `alg`, generating (and persisting) one if there is none.
    fn current_key(&self, inner: &mut Inner, alg: Algorithm) -> Result<usize> {
        if let Some(index) = inner.keys.iter().position(|e| e.current && e.key.algorithm() == alg) {
            return Ok(index);
        }
        let key = SigningKey::generate(alg, self.config.rsa_bits)?;
        inner.keys.push(Entry { key, created: token::now(), current: true });
        self.save(inner)?;
        Ok(inner.keys.len() - 1)
    }

    /// Answers one request.
    pub fn handle(&self, request: &Request) -> Reply {
        let path = request.path();
        let method = request.method.as_str();
        let result = match (method, path) {
            ("GET", "/.well-known/openid-configuration") => return self.published(true),
            ("GET", "/.well-known/jwks.json") => return self.published(false),
            ("GET", "/token") => {
                self.mint(request.query()).map(|token| Response::text(200, &token))
            }
            ("POST", "/rotate") => self.rotate(request.query()).map(|v| Response::json(200, &v)),
            ("POST", "/fault") => self.set_fault(request.query()).map(|v| Response::json(200, &v)),
            ("GET", "/stats") => Ok(Response::json(200, &self.stats())),
            ("GET", "/healthz") => Ok(Response::text(200, "ok")),
            (
                _,
                "/.well-known/openid-configuration"
                | "/.well-known/jwks.json"
                | "/token"
                | "/stats"
                | "/healthz",
            ) => return Reply::Respond(Response::text(405, "use GET")),
            (_, "/rotate" | "/fault") => return Reply::Respond(Response::text(405, "use POST")),
            _ => return Reply::Respond(Response::text(404, "not found")),
        };
        Reply::Respond(result.unwrap_or_else(|BadRequest(message)| Response::text(400, &message)))
    }

    /// Discovery or JWKS, through the fault switch.
    fn published(&self, discovery: bool) -> Reply {
        let fault = {
            let mut inner = self.lock();
            if discovery {
                inner.counters.discovery_requests += 1;
            } else {
                inner.counters.jwks_requests += 1;
            }
            inner.fault
        };
        match fault {
            Fault::Down => return Reply::Drop,
            Fault::ServerError => {
                return Reply::Respond(Response::text(500, "internal server error"))
            }
            Fault::Html => {
                return Reply::Respond(Response::new(
                    200,
                    "text/html",
                    "<html><body><h1>Sign in</h1></body></html>\n",
                ))
            }
            Fault::Garbage => {
                return Reply::Respond(Response::new(
                    200,
                    "application/json",
                    "{\"keys\": [{\"kty\":",
                ))
            }
            Fault::Empty if !discovery => {
                return Reply::Respond(Response::json(200, &json!({"keys": []})))
            }
            Fault::Slow(delay) => std::thread::sleep(delay),
            Fault::Empty | Fault::Ok | Fault::Huge => {}
        }
        let body = if discovery { self.discovery() } else { self.jwks() };
        let body = match (fault, body) {
            (Fault::Huge, Ok(mut value)) if !discovery => {
                value["padding"] = json!("x".repeat(300 * 1024));
                Ok(value)
            }
            (_, body) => body,
        };
        Reply::Respond(match body {
            Ok(value) => Response::json(200, &value),
            Err(error) => Response::text(500, &format!("{error:#}")),
        })
    }

    fn discovery(&self) -> Result<Value> {
        let base = self.config.issuer.trim_end_matches('/');
        let algorithms: Vec<&str> =
            Algorithm::ALL.iter().filter(|a| !a.is_symmetric()).map(|a| a.name()).collect();
        Ok(json!({
            "issuer": self.config.issuer,
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "token_endpoint": format!("{base}/token"),
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algorithms,
        }))
    }

    /// Every key, current or retired, oldest first.
    pub fn jwks(&self) -> Result<Value> {
        let inner = self.lock();
        token::jwks(inner.keys.iter().map(|e| &e.key))
    }

    fn mint(&self, query: &str) -> Result<String, BadRequest> {
        let now = token::now();
        let mut alg = self.config.default_alg;
        let mut kid = None;
        let mut no_exp = false;
        let mut ttl = 3600;
        let mut audiences: Option<Vec<String>> = None;
        let mut claims = Claims {
            issuer: Some(self.config.issuer.clone()),
            subject: Some("alice".into()),
            issued_at: Some(now),
            ..Claims::default()
        };
        for (name, value) in form_decode(query) {
            match name.as_str() {
                "sub" => claims.subject = (!value.is_empty()).then_some(value),
                "aud" => {
                    let list = audiences.get_or_insert_with(Vec::new);
                    list.extend(value.split(',').filter(|a| !a.is_empty()).map(String::from));
                }
                "scope" => {
                    claims.extra.insert("scope".into(), Value::String(value));
                }
                "iss" => claims.issuer = (!value.is_empty()).then_some(value),
                "ttl" => ttl = value.parse::<token::SignedDuration>()?.0,
                "nbf" => claims.not_before = Some(value.parse::<token::TimeArg>()?.at(now)),
                "alg" => alg = value.parse().map_err(BadRequest)?,
                "kid" => kid = Some(value),
                "no_exp" => no_exp = value != "0",
                "claims" => {
                    let extra: Map<String, Value> = serde_json::from_str(&value)
                        .map_err(|e| BadRequest(format!("claims must be a JSON object: {e}")))?;
                    claims.extra.extend(extra);
                }
                other => {
                    return Err(BadRequest(format!(
                        "unknown parameter {other:?}: use sub, aud, scope, iss, ttl, nbf, alg, kid, claims, no_exp"
                    )))
                }
            }
        }
        if alg.is_symmetric() {
            return Err(BadRequest(format!(
                "{alg}: an issuer never publishes a shared secret; mint HMAC tokens with `warden token`"
            )));
        }
        claims.audiences = audiences.unwrap_or_else(|| self.config.default_audiences.clone());
        claims.expires_at = (!no_exp).then(|| now.saturating_add(ttl));
        let payload = claims.payload();
        let mut inner = self.lock();
        let index = match kid {
            Some(kid) => inner
                .keys
                .iter()
                .position(|e| e.key.kid() == Some(kid.as_str()))
                .ok_or_else(|| BadRequest(format!("no published key has kid {kid:?}")))?,
            None => self.current_key(&mut inner, alg)?,
        };
        let token =
            inner.keys.get(index).map(|e| e.key.sign(&payload)).transpose()?.unwrap_or_default();
        inner.counters.tokens_minted += 1;
        Ok(token)
    }

    fn rotate(&self, query: &str) -> Result<Value, BadRequest> {
        let mut alg = self.config.default_alg;
        let mut drop_old = false;
        for (name, value) in form_decode(query) {
            match name.as_str() {
                "alg" => alg = value.parse().map_err(BadRequest)?,
                "drop_old" => drop_old = value != "0",
                other => {
                    return Err(BadRequest(format!(
                        "unknown parameter {other:?}: use alg, drop_old"
                    )))
                }
            }
        }
        if alg.is_symmetric() {
            return Err(BadRequest(format!("{alg}: the issuer has no shared-secret keys")));
        }
        let key = SigningKey::generate(alg, self.config.rsa_bits)?;
        let kid = key.kid().unwrap_or_default().to_string();
        let mut inner = self.lock();
        let mut dropped = Vec::new();
        for entry in inner.keys.iter_mut().filter(|e| e.key.algorithm() == alg) {
            entry.current = false;
            if drop_old {
                dropped.push(entry.key.kid().unwrap_or_default().to_string());
            }
        }
        if drop_old {
            inner.keys.retain(|e| e.key.algorithm() != alg);
        }
        inner.keys.push(Entry { key, created: token::now(), current: true });
        self.save(&inner)?;
        Ok(json!({"alg": alg.name(), "kid": kid, "dropped": dropped}))
    }

    fn set_fault(&self, query: &str) -> Result<Value, BadRequest> {
        let params: BTreeMap<String, String> = form_decode(query).into_iter().collect();
        let delay = match params.get("delay_ms") {
            None => DEFAULT_SLOW_DELAY,
            Some(ms) => Duration::from_millis(
                ms.parse()
                    .map_err(|_| BadRequest(format!("delay_ms must be a number, not {ms:?}")))?,
            ),
        };
        let fault = match params.get("mode").map(String::as_str) {
            Some("ok") => Fault::Ok,
            Some("down") => Fault::Down,
            Some("500") => Fault::ServerError,
            Some("html") => Fault::Html,
            Some("garbage") => Fault::Garbage,
            Some("empty") => Fault::Empty,
            Some("slow") => Fault::Slow(delay),
            Some("huge") => Fault::Huge,
            other => {
                return Err(BadRequest(format!(
                    "mode must be ok, down, 500, html, garbage, empty, slow or huge, not {other:?}"
                )))
            }
        };
        self.lock().fault = fault;
        Ok(json!({"fault": fault.name()}))
    }

    fn stats(&self) -> Value {
        let inner = self.lock();
        let keys: Vec<Value> = inner
            .keys
            .iter()
            .map(|e| json!({"alg": e.key.algorithm().name(), "kid": e.key.kid(), "current": e.current, "created": e.created}))
            .collect();
        json!({
            "jwks_requests": inner.counters.jwks_requests,
            "discovery_requests": inner.counters.discovery_requests,
            "tokens_minted": inner.counters.tokens_minted,
            "fault": inner.fault.name(),
            "keys": keys,
        })
    }
}

/// Serves forever on `listen`.
pub fn run(listen: std::net::SocketAddr, config: IssuerConfig) -> Result<()> {
    let issuer = Arc::new(Issuer::open(config)?);
    let listener = TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    eprintln!("warden issuer {:?} listening on {}", issuer.config.issuer, listener.local_addr()?);
    let handler: http::Handler = Arc::new(move |request: &Request| issuer.handle(request));
    http::serve(listener, handler).context("serving")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn issuer(name: &str) -> (Issuer, PathBuf) {
        let dir = std::env::temp_dir().join(format!("warden-issuer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = IssuerConfig {
            issuer: "http://issuer.test:1234".into(),
            state_dir: dir.clone(),
            // EC keys: RSA generation is slow in debug test builds.
            default_alg: Algorithm::Es256,
            default_audiences: vec!["backend".into()],
            rsa_bits: 2048,
        };
        (Issuer::open(config).unwrap(), dir)
    }

    fn get(target: &str) -> Request {
        Request {
            method: "GET".into(),
            target: target.into(),
            version: "HTTP/1.1",
            ..Request::default()
        }
    }

    fn post(target: &str) -> Request {
        Request { method: "POST".into(), ..get(target) }
    }

    fn respond(issuer: &Issuer, request: Request) -> Response {
        match issuer.handle(&request) {
            Reply::Respond(response) => response,
            Reply::Drop => panic!("dropped"),
        }
    }

    fn body_json(response: &Response) -> Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    fn payload(token: &str) -> Value {
        let segment = token.trim().split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    }

    fn header(token: &str) -> Value {
        let segment = token.trim().split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    }

    #[test]
    fn discovery_points_at_the_jwks_under_the_issuer() {
        let (issuer, dir) = issuer("discovery");
        let response = respond(&issuer, get("/.well-known/openid-configuration"));
        assert_eq!(response.status, 200);
        let doc = body_json(&response);
        assert_eq!(doc["issuer"], "http://issuer.test:1234");
        assert_eq!(doc["jwks_uri"], "http://issuer.test:1234/.well-known/jwks.json");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tokens_carry_defaults_and_parameters_and_their_kid_is_published() {
        let (issuer, dir) = issuer("mint");
        let token = String::from_utf8(
            respond(&issuer, get("/token?sub=bob&scope=read+admin&ttl=10m")).body,
        )
        .unwrap();
        let claims = payload(&token);
        assert_eq!(claims["iss"], "http://issuer.test:1234");
        assert_eq!(claims["sub"], "bob");
        assert_eq!(claims["aud"], "backend");
        assert_eq!(claims["scope"], "read admin");
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);
        let jwks = body_json(&respond(&issuer, get("/.well-known/jwks.json")));
        assert_eq!(jwks["keys"][0]["kid"], header(&token)["kid"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn expired_audience_less_and_odd_tokens_can_be_asked_for() {
        let (issuer, dir) = issuer("odd");
        let mint =
            |query: &str| payload(&String::from_utf8(respond(&issuer, get(query)).body).unwrap());
        let expired = mint("/token?ttl=-2m");
        assert!(expired["exp"].as_i64().unwrap() < token::now());
        let bare = mint("/token?aud=&sub=&no_exp=1");
        assert!(
            bare.get("aud").is_none() && bare.get("sub").is_none() && bare.get("exp").is_none()
        );
        let many = mint("/token?aud=a&aud=b,c&claims=%7B%22groups%22%3A%5B%22x%22%5D%7D&iss=other");
        assert_eq!(many["aud"], json!(["a", "b", "c"]));
        assert_eq!(many["groups"], json!(["x"]));
        assert_eq!(many["iss"], "other");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_parameters_and_hmac_are_refused() {
        let (issuer, dir) = issuer("bad");
        for query in [
            "/token?colour=red",
            "/token?alg=HS256",
            "/token?alg=none",
            "/token?ttl=10",
            "/token?kid=nope",
        ] {
            assert_eq!(respond(&issuer, get(query)).status, 400, "{query}");
        }
        assert_eq!(respond(&issuer, get("/rotate")).status, 405);
        assert_eq!(respond(&issuer, get("/nowhere")).status, 404);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rotation_keeps_the_old_key_published_unless_dropped() {
        let (issuer, dir) = issuer("rotate");
        let first =
            body_json(&respond(&issuer, get("/.well-known/jwks.json")))["keys"][0]["kid"].clone();
        let rotated = body_json(&respond(&issuer, post("/rotate")));
        assert_ne!(rotated["kid"], first);
        let token = String::from_utf8(respond(&issuer, get("/token")).body).unwrap();
        assert_eq!(header(&token)["kid"], rotated["kid"], "new tokens use the new key");
        let old = String::from_utf8(
            respond(&issuer, get(&format!("/token?kid={}", first.as_str().unwrap()))).body,
        )
        .unwrap();
        assert_eq!(header(&old)["kid"], first, "the old key can still sign on request");
        assert_eq!(
            body_json(&respond(&issuer, get("/.well-known/jwks.json")))["keys"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let dropped = body_json(&respond(&issuer, post("/rotate?drop_old=1")));
        assert_eq!(dropped["dropped"].as_array().unwrap().len(), 2);
        assert_eq!(
            body_json(&respond(&issuer, get("/.well-known/jwks.json")))["keys"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn keys_persist_across_restarts() {
        let (issuer, dir) = issuer("persist");
        let before = issuer.jwks().unwrap();
        drop(issuer);
        let again = Issuer::open(IssuerConfig {
            issuer: "http://issuer.test:1234".into(),
            state_dir: dir.clone(),
            default_alg: Algorithm::Es256,
            default_audiences: vec![],
            rsa_bits: 2048,
        })
        .unwrap();
        assert_eq!(again.jwks().unwrap(), before);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join("keys.json")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_new_algorithm_gets_its_own_published_key() {
        let (issuer, dir) = issuer("algs");
        let token = String::from_utf8(respond(&issuer, get("/token?alg=EdDSA")).body).unwrap();
        assert_eq!(header(&token)["alg"], "EdDSA");
        let jwks = issuer.jwks().unwrap();
        assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == header(&token)["kid"]));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn faults_change_discovery_and_jwks_but_not_tokens_or_health() {
        let (issuer, dir) = issuer("fault");
        let jwks = || issuer.handle(&get("/.well-known/jwks.json"));
        respond(&issuer, post("/fault?mode=down"));
        assert_eq!(jwks(), Reply::Drop);
        assert_eq!(respond(&issuer, get("/healthz")).status, 200);
        assert_eq!(respond(&issuer, get("/token")).status, 200);
        respond(&issuer, post("/fault?mode=500"));
        assert!(matches!(jwks(), Reply::Respond(r) if r.status == 500));
        respond(&issuer, post("/fault?mode=html"));
        assert!(
            matches!(jwks(), Reply::Respond(r) if r.status == 200 && r.body.starts_with(b"<html>"))
        );
        respond(&issuer, post("/fault?mode=garbage"));
        assert!(
            matches!(jwks(), Reply::Respond(r) if serde_json::from_slice::<Value>(&r.body).is_err())
        );
        respond(&issuer, post("/fault?mode=empty"));
        assert!(matches!(jwks(), Reply::Respond(r) if body_json(&r) == json!({"keys": []})));
        respond(&issuer, post("/fault?mode=slow&delay_ms=50"));
        let started = std::time::Instant::now();
        assert!(matches!(jwks(), Reply::Respond(r) if r.status == 200));
        assert!(started.elapsed() >= Duration::from_millis(50));
        respond(&issuer, post("/fault?mode=ok"));
        assert!(
            matches!(jwks(), Reply::Respond(r) if body_json(&r)["keys"].as_array().unwrap().len() == 1)
        );
        assert_eq!(respond(&issuer, post("/fault?mode=sideways")).status, 400);
        let stats = body_json(&respond(&issuer, get("/stats")));
        assert_eq!(stats["jwks_requests"], 7);
        assert_eq!(stats["tokens_minted"], 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
