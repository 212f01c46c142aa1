//! The soak: the playground mesh under steady load for a long time, every answer checked.
//!
//! A mix of requests whose answers the playground's policies fix (valid, expired, forged and
//! absent tokens; hostile paths, methods and headers; identities allowed and denied) is sent at
//! half the measured capacity, while the issuer rotates its key and then goes down for a while.
//! Every 10 s it samples each sidecar: Envoy's resident memory, Warden's
//! `warden_wasm_memory_bytes`, the Wasm failure and reload counters, and the answers so far.
//!
//! It passes when no VM trapped or was recreated, every answer was the expected one (above all:
//! nothing policy denies was answered 200), and each sidecar's RSS stayed within 5 % of its
//! first sample after the warm-up.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};

/// What `warden-bench soak` is told.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// How long the load runs.
    pub duration: Duration,
    /// Requests per second; `None`: half the capacity measured first.
    pub rate: Option<f64>,
    /// The playground's run directory (`e2e/.run`: pids and logs).
    pub run_dir: PathBuf,
    /// `envoy/ports.env`.
    pub ports: PathBuf,
    /// Where the report (`soak.md`, `soak.tsv`, `soak.png`) goes.
    pub out: PathBuf,
}

const WORKLOADS: [&str; 3] = ["frontend", "backend", "intruder"];
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const THREADS: usize = 4;

/// The tokens the mix carries, minted by the playground issuer (again after each rotation).
#[derive(Debug, Clone, Default)]
struct Tokens {
    admin: String,
    read: String,
    expired: String,
    other_audience: String,
}

/// Where a request goes.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// frontend's sidecar, then mTLS to backend as frontend.
    Frontend,
    /// intruder's sidecar, then mTLS to backend as intruder (quarantined).
    Intruder,
    /// backend's plaintext port: no peer identity.
    Plaintext,
}

/// One kind of request and the answers the playground's policies allow for it.
struct Case {
    name: &'static str,
    via: Via,
    /// The request line's method and target, sent as is.
    method: &'static str,
    target: &'static str,
    headers: fn(&Tokens) -> Headers,
    expect: &'static [u16],
}

/// Request headers: names and raw values.
type Headers = Vec<(String, Vec<u8>)>;

fn bearer(token: &str) -> Headers {
    vec![("authorization".into(), format!("Bearer {token}").into_bytes())]
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "frontend GET /api/orders",
            via: Via::Frontend,
            method: "GET",
            target: "/api/orders",
            headers: |_| vec![],
            expect: &[200],
        },
        Case {
            name: "frontend PUT /api/orders (no ALLOW matches)",
            via: Via::Frontend,
            method: "PUT",
            target: "/api/orders",
            headers: |_| vec![],
            expect: &[403],
        },
        Case {
            name: "frontend DELETE /public/page (DENY wins)",
            via: Via::Frontend,
            method: "DELETE",
            target: "/public/page",
            headers: |_| vec![],
            expect: &[403],
        },
        Case {
            name: "intruder GET /api/orders (quarantined)",
            via: Via::Intruder,
            method: "GET",
            target: "/api/orders",
            headers: |_| vec![],
            expect: &[403],
        },
        Case {
            name: "plaintext GET /api/orders (no identity)",
            via: Via::Plaintext,
            method: "GET",
            target: "/api/orders",
            headers: |_| vec![],
            expect: &[403],
        },
        Case {
            name: "plaintext GET /healthz",
            via: Via::Plaintext,
            method: "GET",
            target: "/healthz",
            headers: |_| vec![],
            expect: &[200],
        },
        Case {
            name: "admin token on /admin/users",
            via: Via::Frontend,
            method: "GET",
            target: "/admin/users",
            headers: |t| bearer(&t.admin),
            expect: &[200],
        },
        Case {
            name: "no token on /admin/users",
            via: Via::Frontend,
            method: "GET",
            target: "/admin/users",
            headers: |_| vec![],
            expect: &[403],
        },
        Case {
            name: "read-only token on /admin/users",
            via: Via::Frontend,
            method: "GET",
            target: "/admin/users",
            headers: |t| bearer(&t.read),
            expect: &[403],
        },
        Case {
            name: "expired token",
            via: Via::Frontend,
            method: "GET",
            target: "/api/orders",
            headers: |t| bearer(&t.expired),
            expect: &[401],
        },
        Case {
            name: "token for another audience",
            via: Via::Frontend,
            method: "GET",
            target: "/api/orders",
            headers: |t| bearer(&t.other_audience),
            expect: &[403],
        },
        Case {
            name: "forged signature",
            via: Via::Frontend,
            method: "GET",
            target: "/admin/users",
            headers: |t| bearer(&format!("{}x", t.admin)),
            expect: &[401],
        },
        Case {
            name: "two different tokens",
            via: Via::Frontend,
            method: "GET",
            target: "/api/orders",
            headers: |t| [bearer(&t.admin), bearer(&t.read)].concat(),
            expect: &[401],
        },
        Case {
            name: "garbage access_token",
            via: Via::Frontend,
            method: "GET",
            target: "/api/orders?access_token=e30.e30.e30",
            headers: |_| vec![],
            expect: &[401],
        },
        Case {
            name: "dot-dot path to /admin",
            via: Via::Frontend,
            method: "GET",
            target: "/public/../admin/users",
            headers: |_| vec![],
            expect: &[403],
        },
        Case {
            name: "encoded dot-dot path to /admin",
            via: Via::Frontend,
            method: "GET",
            target: "/public/%2e%2e/admin/users",
            headers: |_| vec![],
            expect: &[403],
        },
        Case {
            name: "uncommon method (PROPFIND)",
            via: Via::Frontend,
            method: "PROPFIND",
            target: "/api/orders",
            headers: |_| vec![],
            expect: &[403],
        },
        Case {
            name: "forged claim header, non-UTF-8",
            via: Via::Frontend,
            method: "GET",
            target: "/api/orders",
            headers: |_| vec![("x-jwt-sub".into(), vec![b'a', 0xff, 0xfe])],
            expect: &[200],
        },
        Case {
            name: "60 repeated headers",
            via: Via::Frontend,
            method: "GET",
            target: "/api/orders",
            headers: |_| {
                (0..60).map(|i| ("x-role".to_string(), format!("r{i}").into_bytes())).collect()
            },
            expect: &[200],
        },
    ]
}

/// `NAME=VALUE` lines of `envoy/ports.env`.
fn read_ports(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

struct Ports(BTreeMap<String, String>);

impl Ports {
    fn get(&self, name: &str) -> Result<u16> {
        let value = self.0.get(name).with_context(|| format!("{name} is not in ports.env"))?;
        value.parse().with_context(|| format!("{name}={value}"))
    }
    fn via(&self, via: Via) -> Result<u16> {
        self.get(match via {
            Via::Frontend => "FRONTEND_TO_BACKEND_PORT",
            Via::Intruder => "INTRUDER_TO_BACKEND_PORT",
            Via::Plaintext => "BACKEND_PLAINTEXT_PORT",
        })
    }
    fn admin(&self, workload: &str) -> Result<u16> {
        self.get(&format!("{}_ADMIN_PORT", workload.to_uppercase()))
    }
}

/// One HTTP/1.1 exchange on a new connection (`Connection: close`): the status and the body.
fn exchange(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(String, Vec<u8>)],
) -> Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    let mut request = format!("{method} {target} HTTP/1.1\r\nhost: backend.api.svc.cluster.local\r\nconnection: close\r\n").into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request)?;
    // Read until the body announced is in: Envoy delays closing after a local reply (up to its
    // 1 s delayed_close_timeout) until the client closes first.
    let mut response = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    let body_start = loop {
        let n = stream.read(&mut buffer)?;
        ensure!(n > 0, "connection closed before the response head");
        response.extend_from_slice(&buffer[..n]);
        if let Some(i) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&response[..body_start]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(length) => {
            while response.len() < body_start + length {
                let n = stream.read(&mut buffer)?;
                ensure!(n > 0, "connection closed inside the body");
                response.extend_from_slice(&buffer[..n]);
            }
        }
        None => {
            stream.read_to_end(&mut response)?;
        }
    }
    let status = response
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status line in {head:?}"))?;
    let body = response[body_start..].to_vec();
    Ok((status, body))
}

fn issuer_call(ports: &Ports, method: &str, target: &str) -> Result<String> {
    let (status, body) = exchange(ports.get("ISSUER_PORT")?, method, target, &[])?;
    ensure!(status == 200, "issuer {method} {target}: {status} {}", String::from_utf8_lossy(&body));
    Ok(String::from_utf8(body)?.trim().to_string())
}

fn mint(ports: &Ports) -> Result<Tokens> {
    Ok(Tokens {
        admin: issuer_call(ports, "GET", "/token?sub=alice&scope=read+admin")?,
        read: issuer_call(ports, "GET", "/token?sub=bob&scope=read")?,
        expired: issuer_call(ports, "GET", "/token?ttl=-5m")?,
        other_audience: issuer_call(ports, "GET", "/token?aud=other")?,
    })
}

/// One sidecar at one moment.
#[derive(Debug, Clone, Default)]
struct Reading {
    rss_kib: u64,
    wasm_memory: u64,
    /// `wasm.*` counters whose name says fail or reload, summed.
    failures: u64,
    /// `wasm.envoy.wasm.runtime.v8.created`: VMs created since Envoy started.
    vms_created: u64,
}

fn read_sidecar(ports: &Ports, run_dir: &Path, workload: &str) -> Result<Reading> {
    let pid = fs::read_to_string(run_dir.join(format!("pids/envoy-{workload}.pid")))
        .with_context(|| format!("{workload}'s sidecar is not running (no pid file)"))?;
    let status = fs::read_to_string(format!("/proc/{}/status", pid.trim()))
        .with_context(|| format!("{workload}'s sidecar (pid {}) is gone", pid.trim()))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let (code, stats) = exchange(ports.admin(workload)?, "GET", "/stats", &[])?;
    ensure!(code == 200, "{workload} admin /stats: {code}");
    let mut reading = Reading { rss_kib, ..Reading::default() };
    for line in String::from_utf8_lossy(&stats).lines() {
        let Some((name, value)) = line.split_once(": ") else { continue };
        let Ok(value) = value.trim().parse::<u64>() else { continue };
        if name.ends_with("warden_wasm_memory_bytes") {
            reading.wasm_memory += value;
        } else if name == "wasm.envoy.wasm.runtime.v8.created" {
            reading.vms_created = value;
        } else if name.starts_with("wasm.") && (name.contains("fail") || name.contains("reload")) {
            reading.failures += value;
        }
    }
    Ok(reading)
}

/// Lines of a sidecar's log written since `offset` that show a trap or a failed VM.
fn traps_since(run_dir: &Path, workload: &str, offset: u64) -> Result<Vec<String>> {
    let log = fs::read(run_dir.join(format!("logs/envoy-{workload}.log")))?;
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(log.len());
    Ok(String::from_utf8_lossy(&log[start..])
        .lines()
        .filter(|l| {
            [
                "panicked",
                "Uncaught",
                "RuntimeError",
                "wasm_fail_stream",
                "warden_internal_error",
                "warden_not_configured",
            ]
            .iter()
            .any(|p| l.contains(p))
        })
        .take(5)
        .map(str::to_string)
        .collect())
}

fn log_len(run_dir: &Path, workload: &str) -> u64 {
    fs::metadata(run_dir.join(format!("logs/envoy-{workload}.log"))).map_or(0, |m| m.len())
}

/// Answers per case: `(expected, unexpected, forwarded although denied)`, and the first few
/// unexpected answers.
#[derive(Default)]
struct Tally {
    per_case: Vec<(u64, u64, u64)>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    examples: Vec<String>,
}

/// Sends the first case from two threads for `probe`: requests per second it sustains.
fn capacity(ports: &Ports, probe: Duration) -> Result<f64> {
    let port = ports.via(Via::Frontend)?;
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let count = count.clone();
            thread::spawn(move || {
                while start.elapsed() < probe {
                    if matches!(exchange(port, "GET", "/api/orders", &[]), Ok((200, _))) {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        let _ = handle.join();
    }
    Ok(count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// Runs the soak and writes the report; fails if a pass condition does not hold.
pub fn run(options: &SoakOptions) -> Result<()> {
    let ports = Arc::new(Ports(read_ports(&options.ports)?));
    let run_dir = options.run_dir.clone();
    fs::create_dir_all(&options.out)?;
    let offsets: Vec<u64> = WORKLOADS.iter().map(|w| log_len(&run_dir, w)).collect();
    let before: Vec<Reading> =
        WORKLOADS.iter().map(|w| read_sidecar(&ports, &run_dir, w)).collect::<Result<_>>()?;
    issuer_call(&ports, "POST", "/fault?mode=ok")?;
    let tokens = Arc::new(RwLock::new(mint(&ports)?));

    let measured = capacity(&ports, Duration::from_secs(5))?;
    let rate = options.rate.unwrap_or(measured / 2.0).max(1.0);
    eprintln!("soak: capacity {measured:.0} req/s (GET /api/orders, 2 clients, new connection each); load {rate:.0} req/s for {:?}", options.duration);

    let cases = Arc::new(cases());
    let tally =
        Arc::new(Mutex::new(Tally { per_case: vec![(0, 0, 0); cases.len()], ..Tally::default() }));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut workers = Vec::new();
    for t in 0..THREADS {
        let (cases, tally, tokens, stop, ports) =
            (cases.clone(), tally.clone(), tokens.clone(), stop.clone(), ports.clone());
        let interval = Duration::from_secs_f64(THREADS as f64 / rate);
        workers.push(thread::spawn(move || {
            let mut next = start + interval.mul_f64(t as f64 / THREADS as f64);
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                }
                next += interval;
                let Some(case) = cases.get(i % cases.len()) else { break };
                let index = i % cases.len();
                i += THREADS;
                let headers = (case.headers)(&tokens.read().map(|t| t.clone()).unwrap_or_default());
                let answer = ports
                    .via(case.via)
                    .and_then(|port| exchange(port, case.method, case.target, &headers));
                let Ok(mut tally) = tally.lock() else { break };
                match answer {
                    Ok((status, body)) => {
                        *tally.statuses.entry(status).or_default() += 1;
                        let entry = &mut tally.per_case[index];
                        if case.expect.contains(&status) {
                            entry.0 += 1;
                        } else {
                            entry.1 += 1;
                            if status == 200 {
                                entry.2 += 1;
                            }
                            if tally.examples.len() < 20 {
                                let at = start.elapsed().as_secs();
                                let body = String::from_utf8_lossy(&body[..body.len().min(120)])
                                    .replace('\n', " ");
                                tally.examples.push(format!(
                                    "{at} s: {}: {status} (expected {:?}): {body}",
                                    case.name, case.expect
                                ));
                            }
                        }
                    }
                    Err(error) => {
                        tally.errors += 1;
                        if tally.examples.len() < 20 {
                            tally.examples.push(format!(
                                "{} s: {}: {error:#}",
                                start.elapsed().as_secs(),
                                case.name
                            ));
                        }
                    }
                }
            }
        }));
    }

    // The script of the run: key rotation at 30 %, the issuer down from 50 % to 70 %.
    let events = [
        (0.3, "the issuer rotates its signing key; new tokens carry the new kid"),
        (0.5, "the issuer's JWKS endpoint goes down (connections dropped)"),
        (0.7, "the issuer is back"),
    ];
    let mut done_events = 0;
    let mut samples: Vec<(u64, Vec<Reading>, BTreeMap<u16, u64>)> = Vec::new();
    let mut next_sample = Duration::ZERO;
    let mut log_lines = Vec::new();
    while start.elapsed() < options.duration {
        let elapsed = start.elapsed();
        if let Some((at, what)) = events.get(done_events) {
            if elapsed >= options.duration.mul_f64(*at) {
                match done_events {
                    0 => {
                        issuer_call(&ports, "POST", "/rotate")?;
                        *tokens.write().map_err(|_| anyhow::anyhow!("poisoned"))? = mint(&ports)?;
                    }
                    1 => {
                        issuer_call(&ports, "POST", "/fault?mode=down")?;
                    }
                    _ => {
                        issuer_call(&ports, "POST", "/fault?mode=ok")?;
                    }
                }
                log_lines.push(format!("{} s: {what}", elapsed.as_secs()));
                done_events += 1;
            }
        }
        if elapsed >= next_sample {
            let readings: Vec<Reading> = WORKLOADS
                .iter()
                .map(|w| read_sidecar(&ports, &run_dir, w))
                .collect::<Result<_>>()?;
            let statuses = tally.lock().map(|t| t.statuses.clone()).unwrap_or_default();
            samples.push((elapsed.as_secs(), readings, statuses));
            next_sample += SAMPLE_EVERY;
        }
        thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    issuer_call(&ports, "POST", "/fault?mode=ok")?;
    let elapsed = start.elapsed();
    let after: Vec<Reading> =
        WORKLOADS.iter().map(|w| read_sidecar(&ports, &run_dir, w)).collect::<Result<_>>()?;
    let statuses = tally.lock().map(|t| t.statuses.clone()).unwrap_or_default();
    samples.push((elapsed.as_secs(), after.clone(), statuses));

    // Pass conditions.
    let tally = tally.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut checks: Vec<(String, bool)> = Vec::new();
    let mut traps = Vec::new();
    for (i, w) in WORKLOADS.iter().enumerate() {
        traps
            .extend(traps_since(&run_dir, w, offsets[i])?.into_iter().map(|l| format!("{w}: {l}")));
    }
    checks.push((
        format!("no trap or failed stream in the sidecars' logs ({} found)", traps.len()),
        traps.is_empty(),
    ));
    let restarted: Vec<String> = WORKLOADS
        .iter()
        .zip(before.iter().zip(&after))
        .filter(|(_, (b, a))| a.vms_created != b.vms_created || a.failures != b.failures)
        .map(|(w, (b, a))| {
            format!(
                "{w}: VMs created {}→{}, failure/reload counters {}→{}",
                b.vms_created, a.vms_created, b.failures, a.failures
            )
        })
        .collect();
    checks.push((
        if restarted.is_empty() {
            "no VM recreated, no Wasm failure or reload counted".into()
        } else {
            format!("VMs recreated or failing: {}", restarted.join("; "))
        },
        restarted.is_empty(),
    ));
    let total: u64 = tally.per_case.iter().map(|c| c.0 + c.1).sum();
    let unexpected: u64 = tally.per_case.iter().map(|c| c.1).sum();
    let forwarded: u64 = tally.per_case.iter().map(|c| c.2).sum();
    checks.push((format!("every answer the expected one ({total} requests, {unexpected} unexpected, {} transport errors)", tally.errors), unexpected == 0 && tally.errors == 0 && total > 0));
    checks.push((
        format!("nothing forwarded that policy denies ({forwarded} denied requests answered 200)"),
        forwarded == 0,
    ));
    // Warm-up: the first fifth of the run (caches, VMs, connection pools fill).
    let warm = options.duration.as_secs() / 5;
    let mut flat = true;
    let mut rss_notes = Vec::new();
    for (i, w) in WORKLOADS.iter().enumerate() {
        let after_warmup: Vec<u64> =
            samples.iter().filter(|(t, _, _)| *t >= warm).map(|(_, r, _)| r[i].rss_kib).collect();
        let (Some(first), Some(max)) = (after_warmup.first(), after_warmup.iter().max()) else {
            continue;
        };
        let growth = *max as f64 / (*first).max(1) as f64 - 1.0;
        flat &= growth <= 0.05;
        rss_notes.push(format!(
            "{w} {:.1}→{:.1} MiB (max {:+.1} %)",
            *first as f64 / 1024.0,
            after_warmup.last().copied().unwrap_or(0) as f64 / 1024.0,
            growth * 100.0
        ));
    }
    checks.push((
        format!("RSS flat after the {warm} s warm-up, within 5 %: {}", rss_notes.join(", ")),
        flat,
    ));

    write_samples(&options.out.join("soak.tsv"), &samples)?;
    // A chart left by an earlier run must not pass for this one's.
    let png = options.out.join("soak.png");
    let _ = fs::remove_file(&png);
    let chart = plot(&options.out.join("soak.tsv"), &png, &log_lines).map_err(|error| {
        eprintln!("soak: no chart: {error:#}");
        format!("{error:#}")
    });
    let report = render(
        options, measured, rate, elapsed, &cases, &tally, &samples, &log_lines, &checks, &chart,
    );
    fs::write(options.out.join("soak.md"), &report)?;
    print!("{report}");
    let failed: Vec<&str> = checks.iter().filter(|(_, ok)| !ok).map(|(c, _)| c.as_str()).collect();
    if !failed.is_empty() {
        bail!("soak failed: {}", failed.join("; "));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn render(
    options: &SoakOptions,
    measured: f64,
    rate: f64,
    elapsed: Duration,
    cases: &[Case],
    tally: &Tally,
    samples: &[(u64, Vec<Reading>, BTreeMap<u16, u64>)],
    events: &[String],
    checks: &[(String, bool)],
    chart: &std::result::Result<(), String>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Soak of the playground mesh\n");
    let _ = writeln!(
        out,
        "{:.0} s at {rate:.0} req/s (half of the {measured:.0} req/s measured first), {THREADS} clients, a new connection per request, through frontend's and intruder's sidecars and backend's plaintext port. Reproduce: `make soak DURATION={}`.\n",
        elapsed.as_secs_f64(),
        options.duration.as_secs()
    );
    let _ = writeln!(out, "## Result\n");
    for (check, ok) in checks {
        let _ = writeln!(out, "- {} {check}", if *ok { "PASS" } else { "**FAIL**" });
    }
    let _ = writeln!(out, "\n## Events\n");
    for event in events {
        let _ = writeln!(out, "- {event}");
    }
    let _ = writeln!(
        out,
        "\n## Answers by case\n\n| case | expected | as expected | other |\n|---|---|---:|---:|"
    );
    for (case, (ok, bad, _)) in cases.iter().zip(&tally.per_case) {
        let _ = writeln!(out, "| {} | {:?} | {ok} | {bad} |", case.name, case.expect);
    }
    if !tally.examples.is_empty() {
        let _ = writeln!(out, "\nFirst unexpected answers:\n");
        for example in &tally.examples {
            let _ = writeln!(out, "- {example}");
        }
    }
    let _ = writeln!(out, "\n## Samples (every {} s)\n", SAMPLE_EVERY.as_secs());
    let _ = writeln!(out, "| s | frontend RSS MiB | backend RSS MiB | intruder RSS MiB | backend Warden VMs MiB | Wasm failures | answers |\n|---:|---:|---:|---:|---:|---:|---|");
    for (t, readings, statuses) in samples {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let answers: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        let _ = writeln!(
            out,
            "| {t} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
            mib(readings[0].rss_kib),
            mib(readings[1].rss_kib),
            mib(readings[2].rss_kib),
            readings[1].wasm_memory as f64 / (1 << 20) as f64,
            readings.iter().map(|r| r.failures).sum::<u64>(),
            answers.join(", ")
        );
    }
    match chart {
        Ok(()) => {
            let _ = writeln!(out, "\n![RSS and Warden's memory over time](soak.png)");
        }
        Err(error) => {
            let _ = writeln!(out, "\nNo chart ({error}); the samples are in `soak.tsv`.");
        }
    }
    out
}

fn write_samples(path: &Path, samples: &[(u64, Vec<Reading>, BTreeMap<u16, u64>)]) -> Result<()> {
    let mut text = String::from(
        "# s\tfrontend_rss_mib\tbackend_rss_mib\tintruder_rss_mib\tbackend_wasm_mib\n",
    );
    for (t, r, _) in samples {
        let _ = writeln!(
            text,
            "{t}\t{:.2}\t{:.2}\t{:.2}\t{:.2}",
            r[0].rss_kib as f64 / 1024.0,
            r[1].rss_kib as f64 / 1024.0,
            r[2].rss_kib as f64 / 1024.0,
            r[1].wasm_memory as f64 / (1 << 20) as f64
        );
    }
    fs::write(path, text)?;
    Ok(())
}

fn plot(data: &Path, png: &Path, events: &[String]) -> Result<()> {
    let arrows: String = events
        .iter()
        .filter_map(|e| e.split_once(" s:"))
        .map(|(t, _)| {
            format!("set arrow from {t}, graph 0 to {t}, graph 1 nohead dt 2 lc rgb '0x999999'\n")
        })
        .collect();
    let script = format!(
        "set terminal pngcairo size 1000,480 font 'DejaVu Sans,10'\n\
         set output '{}'\n\
         set title 'Soak: Envoy RSS per sidecar and Warden VM memory (backend); dashed: key rotation, issuer down, issuer back'\n\
         set xlabel 'seconds'\nset ylabel 'MiB'\nset yrange [0:*]\nset grid\nset key bottom right\n{arrows}\
         plot '{d}' using 1:2 with linespoints title 'frontend RSS', '{d}' using 1:3 with linespoints title 'backend RSS', \
         '{d}' using 1:4 with linespoints title 'intruder RSS', '{d}' using 1:5 with linespoints title 'backend Warden VMs'\n",
        png.display(),
        d = data.display()
    );
    let script_path = data.with_extension("gnuplot");
    fs::write(&script_path, script)?;
    let output = Command::new("gnuplot").arg(&script_path).output().context("running gnuplot")?;
    ensure!(output.status.success(), "gnuplot: {}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}
