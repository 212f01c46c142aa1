//! The `warden` command: check Istio security policies, explain a decision, compile them into
//! Warden's plugin configuration, mint test tokens, and run the playground's helper services.
//!
//! Layout: [`k8s`] reads Kubernetes YAML; [`analysis`] validates it with the core (shared by
//! `check`, `explain` and `compile`, so they accept the same inputs); [`check`] and [`explain`]
//! report; [`compile`] turns the input into the plugin configuration or an Envoy ECDS resource,
//! with [`fetch`] inlining issuers' keys; [`token`] holds keys and mints tokens; [`playground`]
//! has the echo application and the JWT issuer; [`output`] writes results (atomically, for
//! files Envoy watches); [`style`] colors human output.

mod analysis;
mod check;
mod compile;
mod explain;
mod fetch;
mod k8s;
mod native;
mod output;
mod package;
mod playground;
mod replay;
mod style;
mod token;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value};

use crate::analysis::Severity;
use crate::compile::{EcdsOptions, FailurePolicy, Format, ModulePin};
use crate::explain::{Credential, WorkloadArg};
use crate::package::ImageFormat;
use crate::token::{Algorithm, Claims, SigningKey};

/// Exit status: findings (errors, or warnings with `--strict`), a refused configuration, an
/// unexpected decision.
const EXIT_FINDINGS: u8 = 1;
/// Exit status: the command could not do its work (usage, unreadable files, failed fetches).
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "warden",
    version,
    about = "Istio RequestAuthentication and AuthorizationPolicy for Envoy, checked before they reach a proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// When to color human output: `auto` colors a terminal unless NO_COLOR is set.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    color: ColorWhen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// How `check`, `explain` and `replay` report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    /// For people (colored on a terminal).
    Human,
    /// For machines: a stable, versioned JSON document (see the end of `--help`).
    Json,
}

/// What `explain --expect` asserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Expectation {
    /// The request is forwarded.
    Allow,
    /// The request is refused (401 or 403).
    Deny,
}

// Parsed once per run: the size of the arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Check AuthorizationPolicy and RequestAuthentication YAML: every error the module would
    /// refuse the configuration for, and warnings for legal but suspicious policies.
    ///
    /// Exit status: 0 clean (warnings allowed unless --strict), 1 errors (or warnings with
    /// --strict), 2 usage or I/O problems.
    #[command(after_long_help = check::JSON_HELP)]
    Check(CheckArgs),
    /// Decide one request as the module would, and explain why: which policies apply to the
    /// workload, which rule of which policy matched or failed on which field, and what Envoy
    /// answers.
    ///
    /// Exit status: 0 explained (and as --expect says), 1 the configuration is refused or the
    /// decision is not the one --expect names, 2 usage or I/O problems.
    #[command(after_long_help = explain::JSON_HELP)]
    Explain(Box<ExplainArgs>),
    /// Decide recorded requests again under new policies, before they ship: every request whose
    /// outcome flips (allowed → denied, denied → allowed), grouped by the rules that decided it
    /// then and now. The records are Warden's audit log (`log.audit` with
    /// `log.auditAttributes`), one JSON object per line, bare or as an access-log line's
    /// `warden` field.
    ///
    /// Exit status: 0 nothing flips that --expect does not allow, 1 unexpected flips, records
    /// that cannot be decided exactly, or a configuration the module refuses, 2 usage or I/O
    /// problems.
    Replay(ReplayArgs),
    /// Compile AuthorizationPolicy and RequestAuthentication YAML into Warden's plugin
    /// configuration (WasmPlugin.pluginConfig) or an Envoy ECDS resource file.
    Compile(CompileArgs),
    /// Package warden.wasm as an OCI image, written as an OCI image layout directory, for Istio's
    /// sidecars to pull from a registry (`WasmPlugin.url: oci://…`). Prints the image digest,
    /// which `compile --format wasmplugin --module` pins.
    Package(PackageArgs),
    /// Mint test tokens from a local key, print a key's JWKS, or generate keys.
    Token(TokenCommand),
    /// The playground's helper services: the echo application, the JWT issuer and the external
    /// authorizer.
    #[command(subcommand)]
    Playground(PlaygroundCommand),
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// YAML or JSON files or directories (read recursively); `-` reads standard input.
    #[arg(required = true, value_name = "FILES")]
    files: Vec<PathBuf>,
    /// The namespace of objects without metadata.namespace (as `kubectl apply -n`).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    strict: bool,
    /// How to report.
    #[arg(long, value_enum, default_value = "human")]
    format: ReportFormat,
    /// Write the report here (atomically) instead of standard output; never styled.
    #[arg(short, long, value_name = "FILE", value_parser = output_file)]
    output: Option<PathBuf>,
    /// Plugin settings (YAML or JSON): `rootNamespace`, `trustDomain`, … (as for compile).
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// Also list the documents of other kinds that were skipped.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Debug, Args)]
struct ExplainArgs {
    /// The policy files or directories (`-` reads standard input).
    #[arg(long, required = true, num_args = 1.., value_name = "FILES")]
    policies: Vec<PathBuf>,
    /// The workload: `NAMESPACE[/NAME][,LABEL=VALUE…]`, e.g. `api/backend,app=backend`.
    /// Policies select on the namespace and labels; the name is only shown.
    #[arg(long, value_name = "NS[/NAME][,LABEL=VALUE…]")]
    workload: WorkloadArg,
    /// `:method`.
    #[arg(long, default_value = "GET")]
    method: String,
    /// `:path`, with any query (`/api/orders?id=1`).
    #[arg(long, default_value = "/")]
    path: String,
    /// `:authority` (the Host header), with the port if the client would send one.
    #[arg(long)]
    host: Option<String>,
    /// A request header `NAME:VALUE`; repeat for several (or for a repeated header).
    #[arg(short = 'H', long = "header", value_name = "NAME:VALUE")]
    headers: Vec<explain::HeaderArg>,
    /// The peer's mTLS identity: a SPIFFE ID (`spiffe://cluster.local/ns/web/sa/frontend`) or
    /// `NAMESPACE/SERVICEACCOUNT` in the mesh's trust domain. Without it, the request is
    /// plaintext.
    #[arg(long, value_name = "SPIFFE_ID|NS/SA")]
    peer: Option<String>,
    /// A plaintext request, no peer certificate (the default; says so explicitly).
    #[arg(long, conflicts_with = "peer")]
    plaintext: bool,
    /// `source.ip` (the direct peer).
    #[arg(long, value_name = "IP")]
    source_ip: Option<IpAddr>,
    /// `remote.ip` (the original client); default the source IP.
    #[arg(long, value_name = "IP")]
    remote_ip: Option<IpAddr>,
    /// `destination.ip`.
    #[arg(long, value_name = "IP")]
    destination_ip: Option<IpAddr>,
    /// `destination.port` (the workload's port).
    #[arg(long)]
    port: Option<u16>,
    /// `connection.sni`.
    #[arg(long)]
    sni: Option<String>,
    /// A JWT, sent as `Authorization: Bearer <JWT>` (or `@FILE`). Verified with the
    /// configuration's inline JWKS, or with --jwks; without keys, its signature is not
    /// verified (the report says so) but every other check is made.
    #[arg(long, value_name = "JWT", conflicts_with = "claims")]
    token: Option<String>,
    /// The keys of issuers whose rules name a jwksUri (or rely on discovery): a JWKS file, for
    /// a token given with --token or carried by the request itself (--header, the query).
    #[arg(long, value_name = "FILE")]
    jwks: Option<PathBuf>,
    /// The claims of a verified JWT, as a JSON object (or `@FILE`), instead of a token.
    #[arg(long, value_name = "JSON")]
    claims: Option<String>,
    /// The time to check `exp`/`nbf` against, in Unix seconds; default now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    time: Option<u64>,
    #[command(flatten)]
    read: ReadOptions,
    /// How to report.
    #[arg(long, value_enum, default_value = "human")]
    format: ReportFormat,
    /// Write the report here (atomically) instead of standard output; never styled.
    #[arg(short, long, value_name = "FILE", value_parser = output_file)]
    output: Option<PathBuf>,
    /// Exit 1 unless the request is allowed (or denied): policy tests in CI.
    #[arg(long, value_enum)]
    expect: Option<Expectation>,
}

/// How policy files are read, for the commands that decide requests.
#[derive(Debug, Args)]
struct ReadOptions {
    /// The namespace of objects without metadata.namespace (as `kubectl apply -n`).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Plugin settings (YAML or JSON): `rootNamespace`, `trustDomain`, … (as for compile).
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// The new policy files or directories.
    #[arg(long, required = true, num_args = 1.., value_name = "FILES")]
    policies: Vec<PathBuf>,
    /// Audit logs (JSON lines) recorded by the workload's sidecars; `-` reads standard input.
    #[arg(long, required = true, num_args = 1.., value_name = "FILES")]
    log: Vec<PathBuf>,
    /// The workload that recorded them: `NAMESPACE[/NAME][,LABEL=VALUE…]`.
    #[arg(long, value_name = "NS[/NAME][,LABEL=VALUE…]")]
    workload: WorkloadArg,
    /// A flip the change is meant to make: `allowed-to-denied` or `denied-to-allowed`,
    /// optionally only where a given policy decides (now or then): `denied-to-allowed:api/open-orders`.
    /// Repeat for several.
    #[arg(long, value_name = "DIRECTION[:NS/NAME]")]
    expect: Vec<replay::Expectation>,
    /// Example requests shown per group of flips.
    #[arg(long, default_value = "3", value_name = "N")]
    examples: usize,
    #[command(flatten)]
    read: ReadOptions,
    /// How to report.
    #[arg(long, value_enum, default_value = "human")]
    format: ReportFormat,
    /// Write the report here (atomically) instead of standard output; never styled.
    #[arg(short, long, value_name = "FILE", value_parser = output_file)]
    output: Option<PathBuf>,
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
    #[arg(short, long, value_name = "FILE", value_parser = output_file)]
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
    #[command(flatten)]
    pin: PinArgs,
    /// The filter or manifest name (ecds: the resource name the sidecars' `config_discovery`
    /// names).
    #[arg(long, default_value = "warden")]
    name: String,
    /// The Wasm VM id.
    #[arg(long, default_value = "warden")]
    vm_id: String,
    /// wasmplugin: one WasmPlugin per namespace with policies of its own, each with the root
    /// namespace's policies too, and one in the root namespace for every other workload (chosen
    /// anyway when one WasmPlugin would carry more than 1 MiB).
    #[arg(long)]
    split: bool,
    /// What Envoy does when the VM has failed.
    #[arg(long, value_enum, default_value = "fail-closed")]
    failure_policy: FailurePolicy,
    /// wasmplugin, envoyfilter: the manifest's own namespace (the root namespace reaches every
    /// sidecar).
    #[arg(long, default_value = "istio-system", value_name = "NAMESPACE")]
    manifest_namespace: String,
    /// The namespace of objects without metadata.namespace (as `kubectl apply -n`).
    #[arg(short = 'n', long, alias = "policy-namespace", default_value = "default")]
    namespace: String,
    /// Emit only what applies to this workload (`NAMESPACE[/NAME][,LABEL=VALUE…]`), and name it
    /// as the configuration's `workload`.
    #[arg(long, value_name = "NS[/NAME][,LABEL=VALUE…]")]
    workload: Option<WorkloadArg>,
    /// Fetch each rule's jwksUri (or the issuer's OpenID discovery document and its jwks_uri),
    /// as istiod does, and inline the keys as `jwks`.
    #[arg(long)]
    inline_jwks: bool,
    /// With --inline-jwks: the deadline of each fetch (`10s`, `500ms`).
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    timeout: String,
}

/// How `compile --format wasmplugin` pins the module.
#[derive(Debug, Args)]
struct PinArgs {
    /// wasmplugin: pin this module (`WasmPlugin.sha256`): for an oci:// --wasm the digest of
    /// the image `warden package` builds from it (--image-format), else its own SHA-256.
    #[arg(long, value_name = "FILE", conflicts_with = "wasm_sha256")]
    module: Option<PathBuf>,
    /// wasmplugin: pin a known digest (64 hex digits, `sha256:` optional): the image digest for
    /// an oci:// --wasm, the module's SHA-256 otherwise.
    #[arg(long, value_name = "HEX")]
    wasm_sha256: Option<String>,
    /// With --module and an oci:// --wasm: the form of the image `warden package` wrote.
    #[arg(long, value_enum, default_value = "image")]
    image_format: ImageFormat,
    /// wasmplugin with an oci:// --wasm: when istio-agent pulls the image. Default: IfNotPresent
    /// when pinned (a digest never changes), else Istio's own default.
    #[arg(long, value_enum)]
    image_pull_policy: Option<PullPolicy>,
}

/// `WasmPlugin.imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PullPolicy {
    IfNotPresent,
    Always,
}

#[derive(Debug, Args)]
struct PackageArgs {
    /// The module.
    #[arg(default_value = "target/wasm32-wasip1/wasm/warden.wasm", value_name = "MODULE")]
    module: PathBuf,
    /// The OCI image layout directory to write; push it with
    /// `skopeo copy oci:DIR:TAG docker://REGISTRY/REPOSITORY:TAG`.
    #[arg(short, long, value_name = "DIR", value_parser = output_file)]
    output: PathBuf,
    /// The image's form: both are pulled by Istio; `image` by every registry and tool.
    #[arg(long, value_enum, default_value = "image")]
    format: ImageFormat,
    /// The tag of the image in the layout's index.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    tag: String,
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
    exp: Option<token::TimeArg>,
    /// Lifetime (`exp` = now + TTL); negative for an already expired token (`-2m`).
    #[arg(long, allow_hyphen_values = true, default_value = "1h", conflicts_with = "no_exp")]
    ttl: token::SignedDuration,
    /// Mint a token without `exp` (which Warden refuses).
    #[arg(long)]
    no_exp: bool,
    /// `nbf`: Unix seconds, or relative to now (`+10m`).
    #[arg(long, allow_hyphen_values = true)]
    nbf: Option<token::TimeArg>,
    /// `iat`: Unix seconds, or relative to now. Default: now.
    #[arg(long, allow_hyphen_values = true)]
    iat: Option<token::TimeArg>,
    /// Another claim, `NAME=VALUE`; VALUE is JSON if it parses (`true`, `5`, `["a","b"]`),
    /// else a string. Repeatable.
    #[arg(long, value_name = "NAME=VALUE", value_parser = token::parse_claim)]
    claim: Vec<(String, Value)>,
    /// Claims as a JSON object (or `@FILE`), applied last: overrides any claim above, with any
    /// type (`{"exp": "soon"}`).
    #[arg(long, value_name = "JSON")]
    claims_json: Option<String>,
    /// Bind the token to a client certificate (PEM): `cnf: {"x5t#S256": <the certificate's
    /// SHA-256 thumbprint>}` (RFC 8705 §3.1), which RequestAuthentications annotated
    /// `warden.io/certificate-bound-tokens: "true"` require to match the connection's.
    #[arg(long, value_name = "PEM")]
    bind_cert: Option<PathBuf>,
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
    /// Write the key here (atomically, mode 0600); default standard output.
    #[arg(short, long, visible_alias = "out", value_name = "FILE", value_parser = output_file)]
    output: Option<PathBuf>,
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
    /// An HTTP external authorizer for CUSTOM policies; `x-authz: deny|error|slow` on the
    /// request chooses its answer.
    Authz(AuthzArgs),
}

#[derive(Debug, Args)]
struct AuthzArgs {
    /// Address to listen on.
    #[arg(long, value_name = "IP:PORT")]
    listen: SocketAddr,
}

#[derive(Debug, Args)]
struct IssuerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18090", value_name = "IP:PORT")]
    listen: SocketAddr,
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
    #[arg(long, value_name = "IP:PORT")]
    listen: SocketAddr,
    /// The `service` field of every answer, to tell the workloads apart.
    #[arg(long, default_value = "echo")]
    name: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.color {
        ColorWhen::Auto => {}
        ColorWhen::Always => anstream::ColorChoice::Always.write_global(),
        ColorWhen::Never => anstream::ColorChoice::Never.write_global(),
    }
    // The policy commands keep 1 for findings; anything that stops them is a usage or I/O
    // problem. The other commands have one failure status.
    let failure = match &cli.command {
        Command::Check(_) | Command::Explain(_) | Command::Compile(_) | Command::Replay(_) => {
            EXIT_USAGE
        }
        _ => 1,
    };
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            let _ = style::eprint(&format!(
                "warden: {}: {error:#}\n",
                style::paint(style::BAD, "error")
            ));
            ExitCode::from(failure)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let done = |()| ExitCode::SUCCESS;
    match cli.command {
        Command::Check(args) => run_check(args),
        Command::Explain(args) => run_explain(*args),
        Command::Compile(args) => run_compile(args),
        Command::Replay(args) => run_replay(args),
        Command::Package(args) => run_package(args).map(done),
        Command::Token(TokenCommand { action: None, mint }) => run_mint(mint).map(done),
        Command::Token(TokenCommand { action: Some(TokenAction::Mint(mint)), .. }) => {
            run_mint(mint).map(done)
        }
        Command::Token(TokenCommand { action: Some(TokenAction::Jwks(args)), .. }) => {
            run_jwks(args).map(done)
        }
        Command::Token(TokenCommand { action: Some(TokenAction::Keygen(args)), .. }) => {
            run_keygen(args).map(done)
        }
        Command::Playground(PlaygroundCommand::Echo(args)) => {
            playground::echo::run(args.listen, &args.name).map(done)
        }
        Command::Playground(PlaygroundCommand::Authz(args)) => {
            playground::authz::run(args.listen).map(done)
        }
        Command::Playground(PlaygroundCommand::Issuer(args)) => {
            let issuer = args.issuer.unwrap_or_else(|| format!("http://{}", args.listen));
            playground::issuer::run(
                args.listen,
                playground::issuer::IssuerConfig {
                    issuer,
                    state_dir: args.state,
                    default_alg: args.alg,
                    default_audiences: args.default_audience,
                    rsa_bits: args.rsa_bits,
                },
            )
            .map(done)
        }
    }
}

/// Loads and validates the policy files.
fn analyze(
    files: &[PathBuf],
    settings: Option<&PathBuf>,
    namespace: &str,
) -> Result<analysis::Analysis> {
    let settings = analysis::read_settings(settings)?;
    let loaded = k8s::load(files)?;
    Ok(analysis::analyze(loaded, settings, namespace))
}

/// Writes the errors (and notes) of an analysis to standard error; true if there were errors.
fn report_errors(analysis: &analysis::Analysis, command: &str) -> Result<bool> {
    let mut text = String::new();
    for diagnostic in analysis.diagnostics.iter().filter(|d| d.severity != Severity::Warning) {
        text.push_str(&check::diagnostic_line(diagnostic));
        text.push('\n');
    }
    let errors = analysis.count(Severity::Error);
    if errors > 0 {
        text.push_str(&format!(
            "warden: {command}: {errors} error(s): the module would refuse this configuration \
             (`warden check` reports warnings too)\n"
        ));
    }
    style::eprint(&text)?;
    Ok(errors > 0)
}

fn run_check(args: CheckArgs) -> Result<ExitCode> {
    let mut analysis = analyze(&args.files, args.settings.as_ref(), &args.namespace)?;
    analysis.lint();
    write_report(
        args.output.as_deref(),
        args.format,
        || check::human(&analysis, args.strict, args.verbose),
        || serde_json::to_string_pretty(&check::json(&analysis, args.strict)),
    )?;
    Ok(if check::passed(&analysis, args.strict) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FINDINGS)
    })
}

/// Writes a report to `output` or standard output: JSON exactly as serialized, human text
/// styled only on a terminal (never in a file).
fn write_report(
    output: Option<&Path>,
    format: ReportFormat,
    human: impl FnOnce() -> String,
    json: impl FnOnce() -> serde_json::Result<String>,
) -> Result<()> {
    match (format, output) {
        (ReportFormat::Json, _) => output::emit(output, (json()? + "\n").as_bytes()),
        (ReportFormat::Human, Some(path)) if path.as_os_str() != "-" => {
            let text = anstream::adapter::strip_str(&human()).to_string();
            output::emit(Some(path), text.as_bytes())
        }
        (ReportFormat::Human, _) => Ok(style::print(&human())?),
    }
}

/// `-o/--output` names a file (or a directory) in every command; a bare format name is
/// refused, since `-o json` once chose JSON in `check` and `explain`, and would now silently
/// write a file named `json`.
fn output_file(text: &str) -> Result<PathBuf, String> {
    if ["json", "human", "yaml"].contains(&text) {
        return Err(format!(
            "-o/--output names the file to write (./{text} for a file of that name); the form \
             is chosen with --format, e.g. --format {text} where the command has it"
        ));
    }
    Ok(PathBuf::from(text))
}

/// A flag's value, or with `@FILE` the file's content.
fn value_or_file(text: &str) -> Result<String> {
    match text.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file)
            .map(|s| s.trim().to_string())
            .with_context(|| format!("reading {file}")),
        None => Ok(text.to_string()),
    }
}

fn run_replay(args: ReplayArgs) -> Result<ExitCode> {
    let analysis = analyze(&args.policies, args.read.settings.as_ref(), &args.read.namespace)?;
    if report_errors(&analysis, "replay")? {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    let mut logs = Vec::new();
    for path in &args.log {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("reading standard input")?
        } else {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        };
        logs.push((path.display().to_string(), text));
    }
    let report = replay::replay(replay::Inputs {
        analysis: &analysis,
        workload: args.workload,
        logs,
        expect: args.expect,
        examples: args.examples,
    })?;
    write_report(
        args.output.as_deref(),
        args.format,
        || report.human(),
        || serde_json::to_string_pretty(&report.json()),
    )?;
    Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FINDINGS) })
}

fn run_explain(args: ExplainArgs) -> Result<ExitCode> {
    let analysis = analyze(&args.policies, args.read.settings.as_ref(), &args.read.namespace)?;
    if report_errors(&analysis, "explain")? {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    let credential = match (&args.token, &args.claims) {
        (Some(token), _) => Credential::Token(value_or_file(token)?),
        (None, Some(claims)) => {
            let text = value_or_file(claims)?;
            let claims: Map<String, Value> =
                serde_json::from_str(&text).context("--claims must be a JSON object")?;
            Credential::Claims(claims)
        }
        (None, None) => Credential::None,
    };
    let jwks = match &args.jwks {
        None => None,
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let set = warden::authn::parse_fetched_jwks(&bytes)
                .map_err(|e| anyhow!("{}: not a usable JWKS: {e}", path.display()))?;
            Some((path.display().to_string(), set))
        }
    };
    let now = match args.time {
        Some(time) => time,
        None => u64::try_from(token::now()).unwrap_or_default(),
    };
    let request = explain::RequestArgs {
        method: args.method,
        path: args.path,
        host: args.host,
        headers: args.headers,
        peer: if args.plaintext { None } else { args.peer },
        source_ip: args.source_ip,
        remote_ip: args.remote_ip,
        destination_ip: args.destination_ip,
        port: args.port,
        sni: args.sni,
    };
    let report = explain::explain(explain::Inputs {
        analysis: &analysis,
        workload: args.workload,
        request,
        credential,
        jwks,
        now,
    })?;
    write_report(
        args.output.as_deref(),
        args.format,
        || report.human(),
        || serde_json::to_string_pretty(&report.json()),
    )?;
    let expected = match args.expect {
        None => true,
        Some(Expectation::Allow) => report.allowed(),
        Some(Expectation::Deny) => !report.allowed(),
    };
    if !expected {
        style::eprint(&format!(
            "warden: explain: {}: expected the request to be {}\n",
            style::paint(style::BAD, "unexpected decision"),
            if report.allowed() { "denied" } else { "allowed" }
        ))?;
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    Ok(ExitCode::SUCCESS)
}

/// `WasmPlugin.sha256` and `imagePullPolicy` from the pin flags (see [`ModulePin`]).
fn module_pin(format: &Format, wasm: &str, args: &PinArgs) -> Result<ModulePin> {
    let pinning =
        args.module.is_some() || args.wasm_sha256.is_some() || args.image_pull_policy.is_some();
    if !pinning {
        return Ok(ModulePin::default());
    }
    if *format != Format::Wasmplugin {
        bail!("--module, --wasm-sha256 and --image-pull-policy pin a WasmPlugin's module: use them with --format wasmplugin");
    }
    let oci = wasm.starts_with("oci://");
    let sha256 = match (&args.module, &args.wasm_sha256) {
        (Some(path), _) => {
            let module = package::read_module(path)?;
            if oci {
                Some(package::build(&module, args.image_format)?.digest_hex())
            } else {
                Some(package::sha256_hex(&module))
            }
        }
        (None, Some(hex)) => {
            let hex = hex.trim_start_matches("sha256:").to_ascii_lowercase();
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("--wasm-sha256 {hex:?}: a SHA-256 digest is 64 hex digits");
            }
            Some(hex)
        }
        (None, None) => None,
    };
    // Istio refuses to load a module whose URL digest and sha256 differ.
    if let (Some(sha256), Some((_, digest))) = (&sha256, wasm.split_once("@sha256:")) {
        if !digest.eq_ignore_ascii_case(sha256) {
            bail!("--wasm {wasm} names digest {digest}, but the module pins {sha256}: Istio would refuse the WasmPlugin");
        }
    }
    let image_pull_policy = match args.image_pull_policy {
        Some(_) if !oci => {
            bail!("--image-pull-policy: only an oci:// module is pulled as an image")
        }
        Some(PullPolicy::Always) => Some("Always"),
        Some(PullPolicy::IfNotPresent) => Some("IfNotPresent"),
        None if oci && sha256.is_some() => Some("IfNotPresent"),
        None => None,
    };
    Ok(ModulePin { sha256, image_pull_policy })
}

fn run_package(args: PackageArgs) -> Result<()> {
    let module = package::read_module(&args.module)?;
    let image = package::build(&module, args.format)?;
    package::write_layout(&image, &args.output, &args.tag)?;
    eprintln!(
        "warden: wrote {} as an OCI image layout in {} (tag {}); push it with\n  skopeo copy oci:{}:{} docker://REGISTRY/warden:{}",
        args.module.display(),
        args.output.display(),
        args.tag,
        args.output.display(),
        args.tag,
        args.tag
    );
    println!("{}", image.digest());
    Ok(())
}

fn run_compile(args: CompileArgs) -> Result<ExitCode> {
    let mut analysis = analyze(&args.files, args.settings.as_ref(), &args.namespace)?;
    if report_errors(&analysis, "compile")? {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    for (origin, what) in &analysis.skipped {
        eprintln!("warden: note: skipped {origin}: {what} is not an Istio security policy");
    }
    if analysis.entries.is_empty() {
        eprintln!("warden: warning: no AuthorizationPolicy or RequestAuthentication found: every request will be allowed");
    }
    let root = analysis.settings.root_namespace.clone();
    let workload = args.workload.as_ref().map(|w| &w.workload);
    if let Some(workload) = workload {
        let kept: Vec<_> =
            compile::for_workload(&analysis.entries, workload, &root).cloned().collect();
        eprintln!(
            "warden: note: {} of {} objects apply to workload {}",
            kept.len(),
            analysis.entries.len(),
            args.workload.as_ref().map(|w| w.to_string()).unwrap_or_default()
        );
        analysis.entries = kept;
    }
    if args.inline_jwks {
        let timeout = warden::config::duration::parse(&args.timeout)
            .map_err(|e| anyhow!("--timeout {:?}: {e}", args.timeout))?;
        let mut fetcher = fetch::Fetcher::new(timeout);
        for inlined in fetch::inline_jwks(&mut analysis.entries, &mut fetcher)? {
            eprintln!(
                "warden: note: {}: inlined {} key(s) from {}",
                inlined.rule, inlined.keys, inlined.uri
            );
            for skipped in inlined.skipped {
                eprintln!("warden: note: {}: left out {skipped}", inlined.rule);
            }
        }
    }
    let direct_peer = {
        let kept: std::collections::BTreeSet<_> =
            analysis.entries.iter().map(|e| &e.object).collect();
        // Whether a policy reads the direct peer's address (`ipBlocks`, `source.ip`): then the
        // output carries the network filter that hands it over.
        analysis.policies.iter().any(|p| kept.contains(p.object_ref()) && p.needs().source_ip)
    };
    analysis.policies = Vec::new();
    // The objects move into the configuration (at 10,000 policies they are most of the memory).
    let objects: Vec<Value> =
        std::mem::take(&mut analysis.entries).iter().map(analysis::Entry::value).collect();
    let config = compile::plugin_config(objects, &analysis.settings, workload)?;
    // What is written must be what the module accepts, inlined keys included.
    let parsed = warden::config::PluginConfig::from_value(&config)?;
    let node = warden::config::Workload { namespace: root, labels: Default::default() };
    if let Err(errors) = warden::enforcer::Enforcer::new(&parsed, Some(node)) {
        for error in errors.0 {
            eprintln!("warden: error: {error}");
        }
        eprintln!("warden: compile: the module refuses the result; nothing written");
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    if args.format == Format::EnvoyNative {
        let inputs: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
        let json =
            args.output.as_deref().is_some_and(|p| p.extension().is_some_and(|e| e == "json"));
        let text = native::compile(&parsed, &inputs, json)?;
        output::emit(args.output.as_deref(), text.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    let wasm = args.wasm.unwrap_or_else(|| args.format.default_wasm().to_string());
    let pin = module_pin(&args.format, &wasm, &args.pin)?;
    let options = EcdsOptions {
        name: args.name,
        wasm,
        vm_id: args.vm_id,
        failure_policy: args.failure_policy,
        split: args.split,
        pin,
    };
    let inputs: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
    drop(parsed);
    drop(analysis);
    let text = compile::render(
        args.format,
        &config,
        &options,
        &args.manifest_namespace,
        &inputs,
        args.output.as_deref().is_some_and(|p| p.extension().is_some_and(|e| e == "json")),
        direct_peer,
    )?;
    output::emit(args.output.as_deref(), text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
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
    let issued_at = args.iat.map_or(now, |time| time.at(now));
    let expires_at = match (args.exp, args.no_exp) {
        (_, true) => None,
        (Some(time), false) => Some(time.at(now)),
        (None, false) => Some(now.saturating_add(args.ttl.0)),
    };
    let mut extra = Map::new();
    extra.extend(args.claim);
    if let Some(path) = &args.bind_cert {
        extra.insert("cnf".into(), token::certificate_binding(path)?);
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
        not_before: args.nbf.map(|time| time.at(now)),
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
    match &args.output {
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

    /// Every command and subcommand, with its path (`warden token mint`).
    fn every_command() -> Vec<(String, clap::Command)> {
        fn walk(prefix: &str, command: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
            let path = format!("{prefix} {}", command.get_name()).trim().to_string();
            out.push((path.clone(), command.clone()));
            for sub in command.get_subcommands() {
                walk(&path, sub, out);
            }
        }
        let mut out = Vec::new();
        walk("", &Cli::command(), &mut out);
        out
    }

    /// One meaning per flag across the command: `-o/--output` is always where the result is
    /// written (a file, or a directory for `package`), `--format` always its form,
    /// `-n/--namespace` always the namespace of policies without one, and every flag has help
    /// text.
    #[test]
    fn flags_mean_the_same_in_every_subcommand() {
        for (path, command) in every_command() {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let long = arg.get_long();
                if arg.get_short() == Some('o') || long == Some("output") {
                    assert_eq!(long, Some("output"), "{path}: -o must be --output");
                    assert_eq!(arg.get_short(), Some('o'), "{path}: --output must have -o");
                    let names: Vec<_> = arg.get_value_names().unwrap_or_default().to_vec();
                    assert!(
                        names.iter().any(|n| n == "FILE" || n == "DIR"),
                        "{path}: --output takes a FILE or DIR, not {names:?}"
                    );
                }
                assert_ne!(long, Some("out"), "{path}: --out is spelled -o/--output");
                if arg.get_short() == Some('n') || long == Some("namespace") {
                    assert_eq!(
                        (arg.get_short(), long),
                        (Some('n'), Some("namespace")),
                        "{path}: -n/--namespace is the namespace of objects without one"
                    );
                }
                if long == Some("format") {
                    assert_eq!(arg.get_short(), None, "{path}: --format has no short form");
                }
                assert!(
                    arg.get_help().is_some() || arg.get_long_help().is_some(),
                    "{path}: --{} has no help",
                    long.unwrap_or(id)
                );
            }
        }
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
                assert_eq!(mint.ttl, token::SignedDuration(-300));
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
