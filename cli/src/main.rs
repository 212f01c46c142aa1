//! The `warden` command: compile Istio security policies into Warden's plugin configuration,
//! mint test tokens, and run the playground's helper services.
//!
//! Layout: [`k8s`] reads Kubernetes YAML; [`compile`] turns it into the plugin configuration or
//! an Envoy ECDS resource; [`token`] holds keys and mints tokens; [`playground`] has the echo
//! application and the JWT issuer; [`output`] writes results (atomically, for files Envoy
//! watches).

mod compile;
mod k8s;
mod output;
mod playground;
mod token;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};

use crate::compile::{EcdsOptions, FailurePolicy, Format};
use crate::token::{Algorithm, Claims, SigningKey};

#[derive(Debug, Parser)]
#[command(
    name = "warden",
    version,
    about = "Istio RequestAuthentication and AuthorizationPolicy for Envoy, checked before they reach a proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of the arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Compile AuthorizationPolicy and RequestAuthentication YAML into Warden's plugin
    /// configuration (WasmPlugin.pluginConfig) or an Envoy ECDS resource file.
    Compile(CompileArgs),
    /// Mint test tokens from a local key, print a key's JWKS, or generate keys.
    Token(TokenCommand),
    /// The playground's helper services (the echo application and the JWT issuer).
    #[command(subcommand)]
    Playground(PlaygroundCommand),
}

#[derive(Debug, Args)]
struct CompileArgs {
    /// YAML or JSON files or directories (read recursively); `-` reads standard input.
    #[arg(required = true, value_name = "FILES")]
    files: Vec<PathBuf>,
    /// What to emit.
    #[arg(long, value_enum, default_value = "plugin-config")]
    format: Format,
    /// Write here (atomically: write a sibling, then rename) instead of standard output. A name
    /// ending in `.json` gets JSON instead of YAML.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Plugin settings (YAML or JSON): every plugin configuration field but `policies`, e.g.
    /// `rootNamespace`, `trustDomain`, `jwks`.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// Where the module is, as the output's consumer resolves it. Default: for ecds
    /// `target/wasm32-wasip1/wasm/warden.wasm` (relative to Envoy's working directory); for
    /// wasmplugin `file:///var/local/lib/wasm-filters/warden.wasm` (or an oci:// URL); for
    /// envoyfilter `/var/local/lib/wasm-filters/warden.wasm`.
    #[arg(long, value_name = "PATH_OR_URL")]
    wasm: Option<String>,
    /// The filter or manifest name (ecds: the resource name the sidecars' `config_discovery`
    /// names).
    #[arg(long, default_value = "warden")]
    name: String,
    /// The Wasm VM id.
    #[arg(long, default_value = "warden")]
    vm_id: String,
    /// What Envoy does when the VM has failed.
    #[arg(long, value_enum, default_value = "fail-closed")]
    failure_policy: FailurePolicy,
    /// wasmplugin, envoyfilter: the manifest's namespace (the root namespace reaches every
    /// sidecar).
    #[arg(long, default_value = "istio-system")]
    namespace: String,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct TokenCommand {
    #[command(subcommand)]
    action: Option<TokenAction>,
    /// Without a subcommand, `warden token` mints (the same flags as `warden token mint`).
    #[command(flatten)]
    mint: MintArgs,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Mint a token (printed on standard output).
    Mint(MintArgs),
    /// Print the JWKS that publishes keys (public parts only; an HMAC key's JWKS is the secret).
    Jwks(JwksArgs),
    /// Generate a key file.
    Keygen(KeygenArgs),
}

#[derive(Debug, Args)]
struct MintArgs {
    /// The private key file (PEM; for HS* the base64url secret). Required.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The algorithm; inferred from a PEM key when absent (RSA keys default to RS256).
    #[arg(long)]
    alg: Option<Algorithm>,
    /// The `kid` header; default the key's RFC 7638 thumbprint (what `warden token jwks` publishes).
    #[arg(long)]
    kid: Option<String>,
    /// `iss`.
    #[arg(long)]
    iss: Option<String>,
    /// `sub`.
    #[arg(long)]
    sub: Option<String>,
    /// `aud`; repeat for several (one is written as a string, several as a list).
    #[arg(long)]
    aud: Vec<String>,
    /// `exp`: Unix seconds, or relative to now (`+1h`, `-5m`). Default: now + --ttl.
    #[arg(long, allow_hyphen_values = true, conflicts_with_all = ["ttl", "no_exp"])]
    exp: Option<String>,
    /// Lifetime (`exp` = now + TTL); negative for an already expired token (`-2m`).
    #[arg(long, allow_hyphen_values = true, default_value = "1h", conflicts_with = "no_exp")]
    ttl: String,
    /// Mint a token without `exp` (which Warden refuses).
    #[arg(long)]
    no_exp: bool,
    /// `nbf`: Unix seconds, or relative to now (`+10m`).
    #[arg(long, allow_hyphen_values = true)]
    nbf: Option<String>,
    /// `iat`: Unix seconds, or relative to now. Default: now.
    #[arg(long, allow_hyphen_values = true)]
    iat: Option<String>,
    /// Another claim, `NAME=VALUE`; VALUE is JSON if it parses (`true`, `5`, `["a","b"]`),
    /// else a string. Repeatable.
    #[arg(long, value_name = "NAME=VALUE")]
    claim: Vec<String>,
    /// Claims as a JSON object (or `@FILE`), applied last: overrides any claim above, with any
    /// type (`{"exp": "soon"}`).
    #[arg(long, value_name = "JSON")]
    claims_json: Option<String>,
}

#[derive(Debug, Args)]
struct JwksArgs {
    /// Key files; repeat for a set with several keys.
    #[arg(long, required = true, value_name = "FILE")]
    key: Vec<PathBuf>,
    /// The algorithm of every key; inferred from PEM keys when absent.
    #[arg(long)]
    alg: Option<Algorithm>,
    /// The `kid` (only with one key); default the key's thumbprint.
    #[arg(long)]
    kid: Option<String>,
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// The algorithm the key is for.
    #[arg(long)]
    alg: Algorithm,
    /// Write the key here (mode 0600); default standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// RSA modulus size.
    #[arg(long, default_value_t = token::DEFAULT_RSA_BITS)]
    bits: usize,
}

#[derive(Debug, Subcommand)]
enum PlaygroundCommand {
    /// A token issuer: OIDC discovery, JWKS, /token, /rotate and a fault switch.
    Issuer(IssuerArgs),
    /// An application that answers every request with a JSON description of it.
    Echo(EchoArgs),
}

#[derive(Debug, Args)]
struct IssuerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18090")]
    listen: String,
    /// Directory where the keys persist.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// The `iss` of minted tokens and the base of the discovery URLs; default `http://LISTEN`.
    #[arg(long)]
    issuer: Option<String>,
    /// The algorithm of tokens that do not ask for one.
    #[arg(long, default_value = "RS256")]
    alg: Algorithm,
    /// `aud` of tokens that do not give one; repeatable.
    #[arg(long, value_name = "AUD")]
    default_audience: Vec<String>,
    /// RSA modulus size of generated keys.
    #[arg(long, default_value_t = token::DEFAULT_RSA_BITS)]
    rsa_bits: usize,
}

#[derive(Debug, Args)]
struct EchoArgs {
    /// Address to listen on.
    #[arg(long)]
    listen: String,
    /// The `service` field of every answer, to tell the workloads apart.
    #[arg(long, default_value = "echo")]
    name: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("warden: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Compile(args) => run_compile(args),
        Command::Token(TokenCommand { action: None, mint }) => run_mint(mint),
        Command::Token(TokenCommand { action: Some(TokenAction::Mint(mint)), .. }) => {
            run_mint(mint)
        }
        Command::Token(TokenCommand { action: Some(TokenAction::Jwks(args)), .. }) => {
            run_jwks(args)
        }
        Command::Token(TokenCommand { action: Some(TokenAction::Keygen(args)), .. }) => {
            run_keygen(args)
        }
        Command::Playground(PlaygroundCommand::Echo(args)) => {
            playground::echo::run(&args.listen, &args.name)
        }
        Command::Playground(PlaygroundCommand::Issuer(args)) => {
            let issuer = args.issuer.unwrap_or_else(|| format!("http://{}", args.listen));
            playground::issuer::run(
                &args.listen,
                playground::issuer::IssuerConfig {
                    issuer,
                    state_dir: args.state,
                    default_alg: args.alg,
                    default_audiences: args.default_audience,
                    rsa_bits: args.rsa_bits,
                },
            )
        }
    }
}

fn run_compile(args: CompileArgs) -> Result<()> {
    let documents = k8s::load(&args.files)?;
    let selection = match compile::select(&documents) {
        Ok(selection) => selection,
        Err(errors) => {
            for error in &errors {
                eprintln!("warden: error: {error}");
            }
            bail!("{} error(s); nothing written", errors.len());
        }
    };
    for (origin, what) in &selection.skipped {
        eprintln!("warden: note: skipped {origin}: {what} is not an Istio security policy");
    }
    if selection.policies.is_empty() {
        eprintln!("warden: warning: no AuthorizationPolicy or RequestAuthentication found: every request will be allowed");
    }
    let settings = args.settings.as_deref().map(read_structured).transpose()?;
    let config = compile::plugin_config(selection.policies, settings.as_ref())?;
    let options = EcdsOptions {
        name: args.name,
        wasm: args.wasm.unwrap_or_else(|| args.format.default_wasm().to_string()),
        vm_id: args.vm_id,
        failure_policy: args.failure_policy,
    };
    let inputs: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
    let text = compile::render(
        args.format,
        &config,
        &options,
        &args.namespace,
        &inputs,
        args.output.as_deref().is_some_and(|p| p.extension().is_some_and(|e| e == "json")),
    )?;
    output::emit(args.output.as_deref(), text.as_bytes())
}

/// Reads a YAML or JSON file holding one document.
fn read_structured(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("{} is not valid YAML", path.display()))
}

fn read_key(path: &Path, alg: Option<Algorithm>) -> Result<SigningKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SigningKey::from_file_text(&text, alg).with_context(|| format!("{}", path.display()))
}

fn run_mint(args: MintArgs) -> Result<()> {
    let path = args
        .key
        .ok_or_else(|| anyhow!("--key is required (generate one with `warden token keygen`)"))?;
    let mut key = read_key(&path, args.alg)?;
    if let Some(kid) = &args.kid {
        key = key.with_kid(kid);
    }
    let now = token::now();
    let issued_at = match &args.iat {
        Some(text) => token::parse_time(text, now)?,
        None => now,
    };
    let expires_at = match (&args.exp, args.no_exp) {
        (_, true) => None,
        (Some(text), false) => Some(token::parse_time(text, now)?),
        (None, false) => Some(now.saturating_add(token::parse_signed_duration(&args.ttl)?)),
    };
    let mut extra = Map::new();
    for claim in &args.claim {
        let (name, value) = token::parse_claim(claim)?;
        extra.insert(name, value);
    }
    if let Some(json) = &args.claims_json {
        let text = match json.strip_prefix('@') {
            Some(file) => {
                std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?
            }
            None => json.clone(),
        };
        let object: Map<String, Value> =
            serde_json::from_str(&text).context("--claims-json must be a JSON object")?;
        extra.extend(object);
    }
    let claims = Claims {
        issuer: args.iss,
        subject: args.sub,
        audiences: args.aud,
        issued_at: Some(issued_at),
        not_before: args.nbf.as_deref().map(|t| token::parse_time(t, now)).transpose()?,
        expires_at,
        extra,
    };
    println!("{}", key.sign(&claims.payload())?);
    Ok(())
}

fn run_jwks(args: JwksArgs) -> Result<()> {
    if args.kid.is_some() && args.key.len() > 1 {
        bail!("--kid names one key; it cannot be given with several --key");
    }
    let mut keys = Vec::new();
    for path in &args.key {
        let key = read_key(path, args.alg)?;
        keys.push(match &args.kid {
            Some(kid) => key.with_kid(kid),
            None => key,
        });
    }
    if keys.iter().any(|k| k.algorithm().is_symmetric()) {
        eprintln!(
            "warden: warning: an HMAC key's JWKS contains the secret itself: keep it private"
        );
    }
    println!("{}", serde_json::to_string_pretty(&token::jwks(&keys)?)?);
    Ok(())
}

fn run_keygen(args: KeygenArgs) -> Result<()> {
    if args.alg.is_rsa() && args.bits < 2048 {
        bail!("RSA keys under 2048 bits are refused by Warden (and by RFC 7518)");
    }
    let key = SigningKey::generate(args.alg, args.bits)?;
    let text = key.to_file_text()?;
    match &args.out {
        Some(path) => {
            output::write_atomically(path, text.as_bytes(), Some(0o600))?;
            eprintln!(
                "warden: wrote the {} key to {} (kid {})",
                args.alg,
                path.display(),
                key.kid().unwrap_or_default()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn token_mints_without_the_mint_subcommand() {
        let cli = Cli::try_parse_from([
            "warden", "token", "--key", "k.pem", "--sub", "alice", "--ttl", "-5m",
        ])
        .unwrap();
        match cli.command {
            Command::Token(TokenCommand { action: None, mint }) => {
                assert_eq!(mint.sub.as_deref(), Some("alice"));
                assert_eq!(mint.ttl, "-5m");
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["warden", "token", "keygen", "--alg", "ES256"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Token(TokenCommand { action: Some(TokenAction::Keygen(_)), .. })
        ));
    }

    #[test]
    fn exp_conflicts_with_ttl_and_no_exp() {
        assert!(Cli::try_parse_from([
            "warden", "token", "mint", "--key", "k", "--exp", "5", "--no-exp"
        ])
        .is_err());
        assert!(Cli::try_parse_from([
            "warden", "token", "mint", "--key", "k", "--exp", "5", "--ttl", "1h"
        ])
        .is_err());
    }

    #[test]
    fn unknown_algorithms_are_refused_by_the_parser() {
        assert!(Cli::try_parse_from(["warden", "token", "keygen", "--alg", "none"]).is_err());
    }
}
