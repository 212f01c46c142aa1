//! What both sides are fed: the policy sets (from [`crate::policies`]), the signing keys and
//! their JWKS, tokens, client certificates, and the request each load configuration sends.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration as StdDuration, SystemTime};

use anyhow::{bail, ensure, Context as _, Result};
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};
use warden::authz::Reason;
use warden::request::Identity;

use crate::policies::{self, GeneratedMesh, SampleRequest};

/// `kid` of the RS256 key in the JWKS.
pub const RS256_KID: &str = "bench-rs256";
/// `kid` of the ES256 key in the JWKS.
pub const ES256_KID: &str = "bench-es256";
/// The audience of the generated tokens (the generator's claims say `aud: api`).
pub const AUDIENCE: &str = "api";

/// How long minted tokens stay valid: long enough for pools to be reused across runs.
const TOKEN_LIFETIME_HOURS: u64 = 24 * 7;
/// A pool older than this is minted again, so its tokens never come near their expiry.
const POOL_MAX_AGE: StdDuration = StdDuration::from_secs(24 * 3600);

/// A token signing algorithm the harness uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// RSA 2048, PKCS#1 v1.5 with SHA-256.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
}

/// The issuer's signing keys (kept in `keys/` so token pools survive between runs), and a key
/// that is not in the JWKS but carries the RS256 key's `kid`.
pub struct Keys {
    rs256: RS256KeyPair,
    es256: ES256KeyPair,
    rogue: RS256KeyPair,
}

impl Keys {
    /// Reads the keys from `dir`, generating (and writing) the ones that are missing.
    pub fn load_or_generate(dir: &Path) -> Result<Keys> {
        fs::create_dir_all(dir)?;
        let rsa = |name: &str| -> Result<RS256KeyPair> {
            let path = dir.join(name);
            if let Ok(pem) = fs::read_to_string(&path) {
                return RS256KeyPair::from_pem(&pem)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
            }
            let key =
                RS256KeyPair::generate(2048).map_err(|e| anyhow::anyhow!("RSA keygen: {e}"))?;
            fs::write(&path, key.to_pem().map_err(|e| anyhow::anyhow!("{e}"))?)?;
            Ok(key)
        };
        let rs256 = rsa("rs256.pem")?.with_key_id(RS256_KID);
        let rogue = rsa("rogue-rs256.pem")?.with_key_id(RS256_KID);
        let es_path = dir.join("es256.pem");
        let es256 = match fs::read_to_string(&es_path) {
            Ok(pem) => ES256KeyPair::from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("{}: {e}", es_path.display()))?,
            Err(_) => {
                let key = ES256KeyPair::generate();
                fs::write(&es_path, key.to_pem().map_err(|e| anyhow::anyhow!("{e}"))?)?;
                key
            }
        }
        .with_key_id(ES256_KID);
        Ok(Keys { rs256, es256, rogue })
    }

    /// The JWKS publishing the RS256 and ES256 public keys (not the rogue one).
    pub fn jwks(&self) -> Result<Value> {
        let jwk = |text: String, kid: &str, alg: &str| -> Result<Value> {
            let mut value: Value = serde_json::from_str(&text)?;
            let object = value.as_object_mut().context("a JWK is an object")?;
            object.insert("kid".into(), json!(kid));
            object.insert("alg".into(), json!(alg));
            object.insert("use".into(), json!("sig"));
            Ok(value)
        };
        Ok(json!({ "keys": [
            jwk(self.rs256.public_key().to_jwk(), RS256_KID, "RS256")?,
            jwk(self.es256.public_key().to_jwk(), ES256_KID, "ES256")?,
        ] }))
    }

    /// A short fingerprint of the published keys: token pools minted with other keys are stale.
    pub fn fingerprint(&self) -> Result<String> {
        let der = self.rs256.public_key().to_der().map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut text = hex(&hmac_sha256::Hash::hash(&der));
        text.push_str(&hex(&hmac_sha256::Hash::hash(&self.es256.public_key().to_bytes())));
        Ok(text)
    }

    /// Signs `claims` (a JWT payload: `iss`, `sub`, `aud` and any others) with `jti`, valid from
    /// now for `valid_for` (or expired `expired_for` ago when that is given).
    pub fn mint(&self, alg: Alg, claims: &Map<String, Value>, jti: &str) -> Result<String> {
        self.mint_with(alg, claims, jti, Validity::Hours(TOKEN_LIFETIME_HOURS), false)
    }

    /// [`Keys::mint`] with a chosen validity, and optionally signed by the rogue key.
    pub fn mint_with(
        &self,
        alg: Alg,
        claims: &Map<String, Value>,
        jti: &str,
        validity: Validity,
        rogue: bool,
    ) -> Result<String> {
        let mut custom = claims.clone();
        let issuer = custom.remove("iss");
        let subject = custom.remove("sub");
        let audience = custom.remove("aud");
        for registered in ["exp", "nbf", "iat", "jti"] {
            custom.remove(registered);
        }
        let mut jwt =
            Claims::with_custom_claims(custom, Duration::from_hours(TOKEN_LIFETIME_HOURS))
                .with_jwt_id(jti);
        if let Some(Value::String(issuer)) = issuer {
            jwt = jwt.with_issuer(issuer);
        }
        if let Some(Value::String(subject)) = subject {
            jwt = jwt.with_subject(subject);
        }
        match audience {
            Some(Value::String(audience)) => jwt = jwt.with_audience(audience),
            Some(Value::Array(list)) => {
                let set: HashSet<String> =
                    list.iter().filter_map(Value::as_str).map(str::to_string).collect();
                jwt = jwt.with_audiences(set);
            }
            _ => {}
        }
        if let Validity::ExpiredMinutes(minutes) = validity {
            let now = Clock::now_since_epoch();
            let ago = Duration::from_mins(minutes);
            jwt.expires_at = Some(now - ago);
            jwt.issued_at = Some(now - ago - ago);
            jwt.invalid_before = Some(now - ago - ago);
        }
        let token = match (alg, rogue) {
            (Alg::Rs256, false) => self.rs256.sign(jwt),
            (Alg::Rs256, true) => self.rogue.sign(jwt),
            (Alg::Es256, _) => self.es256.sign(jwt),
        };
        token.map_err(|e| anyhow::anyhow!("signing: {e}"))
    }
}

/// How long a minted token is valid.
#[derive(Debug, Clone, Copy)]
pub enum Validity {
    /// From now on, for this many hours.
    Hours(u64),
    /// Expired this many minutes ago (beyond both sides' 60 s clock skew).
    ExpiredMinutes(u64),
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The `RequestAuthentication` of the JWT scenarios: the generator's issuer, its audience, the
/// keys inline (as istiod inlines fetched keys by default).
pub fn request_authentication(jwks: &Value) -> Value {
    json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": { "name": "idp", "namespace": policies::NAMESPACE },
        "spec": { "jwtRules": [{
            "issuer": policies::ISSUER,
            "audiences": [AUDIENCE],
            "jwks": jwks.to_string(),
        }] },
    })
}

/// The plugin settings both sides are compiled with: the generator's workload.
pub fn settings(mesh: &GeneratedMesh) -> Value {
    json!({ "workload": mesh.workload })
}

/// Writes objects as a multi-document YAML file (each document in JSON form, which is YAML).
pub fn write_objects(path: &Path, objects: &[Value]) -> Result<()> {
    let mut text = String::from("# Generated by warden-bench: the policies both sides load.\n");
    for object in objects {
        text.push_str("---\n");
        text.push_str(&serde_json::to_string(object)?);
        text.push('\n');
    }
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The address every harness client connects from.
pub const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The last request of `mesh`, in Envoy's order of the rules, that a client on 127.0.0.1 can
/// send (with wrk: no HEAD) and that the policies allow: without a token when `jwt` is false; with its token, and
/// only because of it, when `jwt` is true (so the decision reads the token's claims). Warden's
/// own engine is the oracle here; the differential test checks that Envoy's RBAC agrees.
pub fn pick_request(mesh: &GeneratedMesh, jwt: bool) -> Result<SampleRequest> {
    let engine =
        mesh.engine().map_err(|e| anyhow::anyhow!("the generated mesh is invalid: {e:?}"))?;
    for sample in mesh.allow_requests().iter().rev() {
        let mut request = sample.clone();
        request.source_ip = Some(CLIENT_IP);
        // wrk waits for the body a HEAD answer announces and never gets: send GET instead
        // (the rule must allow it too, which the check below makes sure of).
        if request.method == "HEAD" {
            request.method = "GET".into();
        }
        let with_token = request.with(|r, id| engine.decide(r, id));
        let anonymous = request.with(|r, _| engine.decide(r, None::<&Identity>));
        let fits = if jwt {
            matches!(with_token.reason, Reason::AllowedBy(_)) && !anonymous.allowed
        } else {
            matches!(anonymous.reason, Reason::AllowedBy(_))
        };
        if fits {
            if !jwt {
                request.claims = None;
            }
            return Ok(request);
        }
    }
    bail!("no generated rule of {} fits (jwt: {jwt})", mesh.rules)
}

/// The request as a Lua table for `benches/envoy/wrk.lua` (`Host` is wrk's spelling of the
/// header it would otherwise set from the URL).
pub fn lua_request(request: &SampleRequest) -> String {
    let quote = |s: &str| format!("{s:?}");
    let mut text = String::from("-- Generated by warden-bench: the request wrk sends.\nreturn {\n");
    text.push_str(&format!(
        "  method = {},\n  path = {},\n  headers = {{\n",
        quote(&request.method),
        quote(&request.path)
    ));
    text.push_str(&format!("    [\"Host\"] = {},\n", quote(&request.host)));
    for (name, value) in &request.headers {
        text.push_str(&format!("    [{}] = {},\n", quote(name), quote(value)));
    }
    text.push_str("  },\n}\n");
    text
}

/// A pool of `count` tokens for `claims` (each with its own `jti`), cached in `path` (one token
/// per line) and reused while its stamp (keys, claims, count) matches and it is fresh.
pub fn token_pool(
    keys: &Keys,
    alg: Alg,
    claims: &Map<String, Value>,
    count: usize,
    path: &Path,
) -> Result<()> {
    let stamp_path = path.with_extension("stamp");
    let stamp =
        format!("{}|{alg:?}|{}|{count}", keys.fingerprint()?, Value::Object(claims.clone()));
    let fresh = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age < POOL_MAX_AGE);
    if fresh && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok(());
    }
    let mut text = String::new();
    for i in 0..count {
        text.push_str(&keys.mint(alg, claims, &format!("{alg:?}-{i}").to_lowercase())?);
        text.push('\n');
    }
    fs::write(path, text)?;
    fs::write(stamp_path, stamp)?;
    Ok(())
}

/// Client and server certificates from a throwaway CA, made with `openssl`.
pub struct Certificates {
    dir: PathBuf,
}

const CA_CONFIG: &str = "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = ca\n\
    [dn]\nO = warden-bench\nCN = warden-bench CA\n\
    [ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
    subjectKeyIdentifier = hash\n";

const LEAF_CONFIG: &str = "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = leaf\n\
    [dn]\nO = warden-bench\nCN = $ENV::CERT_CN\n\
    [leaf]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
    extendedKeyUsage = serverAuth,clientAuth\nsubjectAltName = $ENV::CERT_SAN\n\
    authorityKeyIdentifier = keyid\n";

impl Certificates {
    /// The CA, its key and a leaf key shared by every certificate, in `dir` (made once).
    pub fn open(dir: &Path) -> Result<Certificates> {
        fs::create_dir_all(dir)?;
        fs::write(dir.join("ca.cnf"), CA_CONFIG)?;
        fs::write(dir.join("leaf.cnf"), LEAF_CONFIG)?;
        let certs = Certificates { dir: dir.to_path_buf() };
        if !dir.join("ca.crt").exists() || !dir.join("leaf.key").exists() {
            certs.openssl(
                &[],
                &[
                    "req",
                    "-x509",
                    "-new",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    "ca.key",
                    "-config",
                    "ca.cnf",
                    "-days",
                    "30",
                    "-out",
                    "ca.crt",
                ],
            )?;
            certs.openssl(
                &[],
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    "leaf.key",
                ],
            )?;
        }
        Ok(certs)
    }

    fn openssl(&self, env: &[(&str, &str)], args: &[&str]) -> Result<()> {
        let output = Command::new("openssl")
            .args(args)
            .envs(env.iter().copied())
            .current_dir(&self.dir)
            .output()
            .context("running openssl (is it installed?)")?;
        ensure!(
            output.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The key of every leaf certificate.
    pub fn key(&self) -> PathBuf {
        self.dir.join("leaf.key")
    }

    /// `<name>.crt` with subject alternative names `san` (OpenSSL syntax, e.g.
    /// `URI:spiffe://…`), made unless it exists.
    pub fn leaf(&self, name: &str, san: &str) -> Result<PathBuf> {
        let file = format!("{name}.crt");
        let path = self.dir.join(&file);
        if !path.exists() {
            self.openssl(
                &[("CERT_CN", name), ("CERT_SAN", san)],
                &[
                    "req", "-x509", "-new", "-key", "leaf.key", "-CA", "ca.crt", "-CAkey",
                    "ca.key", "-config", "leaf.cnf", "-days", "30", "-out", &file,
                ],
            )?;
        }
        Ok(path)
    }

    /// The server certificate both listeners present.
    pub fn server(&self) -> Result<PathBuf> {
        self.leaf("server", "IP:127.0.0.1,DNS:localhost")
    }

    /// A client certificate whose only URI SAN is `spiffe`; named after a hash of it.
    pub fn client(&self, spiffe: &str) -> Result<PathBuf> {
        let name = format!("client-{}", hex(&hmac_sha256::Hash::hash(spiffe.as_bytes())));
        self.leaf(&name, &format!("URI:{spiffe}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn picked_requests_fit_what_each_scenario_needs() {
        for rules in [10, 1000] {
            let mesh = policies::generate(rules);
            let engine = mesh.engine().unwrap();
            let plain = pick_request(&mesh, false).unwrap();
            assert!(plain.claims.is_none());
            assert!(plain.with(|r, id| engine.decide(r, id)).allowed, "{rules}");
            assert!(plain.peer.is_some(), "every harness request carries an identity");
            assert_ne!(plain.method, "HEAD", "wrk cannot measure HEAD");
        }
        let mesh = policies::generate(10);
        let engine = mesh.engine().unwrap();
        let jwt = pick_request(&mesh, true).unwrap();
        assert!(jwt.with(|r, id| engine.decide(r, id)).allowed);
        assert!(!jwt.with(|r, _| engine.decide(r, None)).allowed);
    }

    #[test]
    fn lua_request_quotes_every_value() {
        let mut request = policies::generate(10).request_matching_last();
        request.headers.push(("x-odd".into(), "a \"b\" \\c".into()));
        let lua = lua_request(&request);
        assert!(lua.contains(r#"["x-odd"] = "a \"b\" \\c","#), "{lua}");
        assert!(lua.contains(&format!("[\"Host\"] = \"{}\",", request.host)), "{lua}");
    }

    #[test]
    fn minted_tokens_carry_the_claims_and_verify_with_the_jwks() {
        let dir = std::env::temp_dir().join(format!("warden-bench-keys-{}", std::process::id()));
        let keys = Keys::load_or_generate(&dir).unwrap();
        let claims = policies::generate(10).request_matching_last().claims.unwrap();
        for alg in [Alg::Rs256, Alg::Es256] {
            let token = keys.mint(alg, &claims, "one").unwrap();
            let payload = token.split('.').nth(1).unwrap();
            let payload: Value = serde_json::from_slice(
                &Base64UrlSafeNoPadding::decode_to_vec(payload, None).unwrap(),
            )
            .unwrap();
            assert_eq!(payload["iss"], policies::ISSUER);
            assert_eq!(payload["sub"], claims["sub"]);
            assert_eq!(payload["groups"], claims["groups"]);
            assert_eq!(payload["jti"], "one");
            assert!(payload["exp"].as_u64().unwrap() > payload["iat"].as_u64().unwrap());
        }
        let jwks = keys.jwks().unwrap();
        assert_eq!(jwks["keys"][0]["kid"], RS256_KID);
        assert!(jwks["keys"][1].get("d").is_none(), "public keys only");
        let again = Keys::load_or_generate(&dir).unwrap();
        assert_eq!(again.fingerprint().unwrap(), keys.fingerprint().unwrap());
        fs::remove_dir_all(dir).unwrap();
    }
}
