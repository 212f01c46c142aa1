//! The Envoy harness's report: medians over the rounds, each Warden row against its native
//! counterpart, the issue's targets (reported, never asserted), memory, and a chart.
//!
//! Inputs, all written by `benches/envoy/run.sh` into its run directory:
//! - `results.jsonl`: one line per measurement, `{"config", "round", "envoy_cpu_seconds",
//!   "wrk": {…}}` where `wrk` is what `benches/envoy/wrk.lua` prints when wrk is done (round 0
//!   is the warm-up, left out);
//! - `memory.jsonl`: one line per configuration, `{"config", "rss_kb", "memory": <Envoy's
//!   /memory>, "wasm_memory_bytes": <Warden's gauge, or null>}` after the last round;
//! - `meta.txt`: `key=value` lines (rounds, duration, connections, versions, commit, sizes);
//! - `lscpu.txt`: the machine.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context as _, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::envoy::{configuration_named, Configuration, Side, CONFIGURATIONS};

/// What `wrk.lua` prints.
#[derive(Debug, Clone, Deserialize)]
pub struct Wrk {
    /// Requests completed.
    pub requests: u64,
    /// Measured duration, µs.
    pub duration_us: u64,
    /// Latency percentiles, µs.
    pub latency_us: Latency,
    /// Errors wrk counted.
    pub errors: Errors,
}

/// Latency percentiles.
#[derive(Debug, Clone, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// wrk's error counters (`status` counts answers with a status of 400 or more).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Errors {
    /// Failed connects.
    pub connect: u64,
    /// Failed reads.
    pub read: u64,
    /// Failed writes.
    pub write: u64,
    /// Non-2xx/3xx answers.
    pub status: u64,
    /// Timeouts.
    pub timeout: u64,
}

impl Errors {
    fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.status + self.timeout
    }
}

/// One measurement.
#[derive(Debug, Clone, Deserialize)]
pub struct Measurement {
    /// The configuration's name.
    pub config: String,
    /// 1-based round; 0 is the warm-up.
    pub round: u32,
    /// Envoy's CPU time (user + system) during the measurement.
    pub envoy_cpu_seconds: f64,
    /// What wrk measured.
    pub wrk: Wrk,
}

impl Measurement {
    fn requests_per_second(&self) -> f64 {
        self.wrk.requests as f64 / (self.wrk.duration_us.max(1) as f64 / 1e6)
    }

    fn envoy_cpu(&self) -> f64 {
        self.envoy_cpu_seconds / (self.wrk.duration_us.max(1) as f64 / 1e6)
    }

    fn cpu_us_per_request(&self) -> f64 {
        self.envoy_cpu_seconds * 1e6 / self.wrk.requests.max(1) as f64
    }
}

/// One configuration over all rounds.
#[derive(Debug, Clone)]
pub struct Row {
    /// The configuration.
    pub config: &'static Configuration,
    /// Median requests per second.
    pub rps: f64,
    /// µs per request: 1e6 / median req/s.
    pub us: f64,
    /// Median p50 latency, µs.
    pub p50: f64,
    /// Median p99 latency, µs.
    pub p99: f64,
    /// Median share of one core Envoy used.
    pub cpu: f64,
    /// Median Envoy CPU time per request, µs (from `/proc`: independent of whether the load
    /// saturated Envoy).
    pub cpu_us: f64,
    /// µs per request in each round, in order.
    pub rounds: Vec<f64>,
    /// Errors over all rounds.
    pub errors: u64,
}

/// The median (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted.get(n / 2).copied().unwrap_or(f64::NAN),
        n => {
            let (a, b) = (sorted.get(n / 2 - 1), sorted.get(n / 2));
            a.zip(b).map_or(f64::NAN, |(a, b)| (a + b) / 2.0)
        }
    }
}

/// Rows for every configuration that has measurements, in [`CONFIGURATIONS`] order.
pub fn rows(measurements: &[Measurement]) -> Vec<Row> {
    let mut rows = Vec::new();
    for config in &CONFIGURATIONS {
        let mine: Vec<&Measurement> =
            measurements.iter().filter(|m| m.config == config.name && m.round > 0).collect();
        if mine.is_empty() {
            continue;
        }
        let rps = median(&mine.iter().map(|m| m.requests_per_second()).collect::<Vec<_>>());
        rows.push(Row {
            config,
            rps,
            us: 1e6 / rps,
            p50: median(&mine.iter().map(|m| m.wrk.latency_us.p50).collect::<Vec<_>>()),
            p99: median(&mine.iter().map(|m| m.wrk.latency_us.p99).collect::<Vec<_>>()),
            cpu: median(&mine.iter().map(|m| m.envoy_cpu()).collect::<Vec<_>>()),
            cpu_us: median(&mine.iter().map(|m| m.cpu_us_per_request()).collect::<Vec<_>>()),
            rounds: mine.iter().map(|m| 1e6 / m.requests_per_second()).collect(),
            errors: mine.iter().map(|m| m.wrk.errors.total()).sum(),
        });
    }
    rows
}

fn us_of(rows: &[Row], name: &str) -> Option<f64> {
    rows.iter().find(|r| r.config.name == name).map(|r| r.us)
}

/// One of issue 5's targets, evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// What is promised.
    pub what: &'static str,
    /// The two sides of the comparison, in µs/req (1e6 / req/s), and in Envoy CPU µs/req.
    pub measured: String,
    /// Whether it holds by µs/req (the issue's measure); `None` when a configuration is missing.
    pub met: Option<bool>,
    /// Whether it holds by Envoy's CPU time per request.
    pub met_by_cpu: Option<bool>,
}

/// How a target compares two figures: `left ≤ factor × right`, where each side is one
/// configuration, or one configuration minus another (cost above a floor).
struct Rule {
    what: &'static str,
    left: (&'static str, Option<&'static str>),
    right: (&'static str, Option<&'static str>),
    factor: f64,
}

const RULES: [Rule; 4] = [
    Rule {
        what: "authorization only: Warden above the empty filter ≤ native rbac above passthrough",
        left: ("authz-warden", Some("wasm-empty")),
        right: ("authz-native", Some("passthrough")),
        factor: 1.0,
    },
    Rule {
        what: "reused token: Warden ≤ native jwt_authn with jwt_cache_config + rbac",
        left: ("jwt-reused-warden", None),
        right: ("jwt-reused-native", None),
        factor: 1.0,
    },
    Rule {
        what: "new RS256 token per request: Warden ≤ 1.5 × native without cache",
        left: ("jwt-rs256-warden", None),
        right: ("jwt-rs256-native", None),
        factor: 1.5,
    },
    Rule {
        what: "1,000 rules: Warden ≤ 1.2 × its 10-rule figure",
        left: ("rules1000-warden", None),
        right: ("authz-warden", None),
        factor: 1.2,
    },
];

/// The targets of issue 5, from the rows of one run.
pub fn targets(rows: &[Row]) -> Vec<Target> {
    let side = |metric: fn(&Row) -> f64, (name, floor): (&str, Option<&str>)| -> Option<f64> {
        let value = |name: &str| rows.iter().find(|r| r.config.name == name).map(metric);
        match floor {
            Some(floor) => Some(value(name)? - value(floor)?),
            None => value(name),
        }
    };
    RULES
        .iter()
        .map(|rule| {
            let figures =
                |metric: fn(&Row) -> f64| side(metric, rule.left).zip(side(metric, rule.right));
            let (Some((left, right)), cpu) = (figures(|r| r.us), figures(|r| r.cpu_us)) else {
                return Target {
                    what: rule.what,
                    measured: "not measured".into(),
                    met: None,
                    met_by_cpu: None,
                };
            };
            let describe = |left: f64, right: f64| {
                if rule.left.1.is_some() {
                    format!("{left:.1} vs {right:.1} µs")
                } else {
                    format!("{left:.1} vs {right:.1} µs ({:.2}×)", left / right)
                }
            };
            let mut measured = describe(left, right);
            if let Some((l, r)) = cpu {
                measured.push_str(&format!("; by Envoy CPU: {}", describe(l, r)));
            }
            Target {
                what: rule.what,
                measured,
                met: Some(left <= rule.factor * right),
                met_by_cpu: cpu.map(|(l, r)| l <= rule.factor * r),
            }
        })
        .collect()
}

/// Memory of one configuration's Envoy after the run.
#[derive(Debug, Clone, Deserialize)]
pub struct Memory {
    /// The configuration.
    pub config: String,
    /// VmRSS, KiB.
    pub rss_kb: u64,
    /// Envoy's `/memory` (tcmalloc's view; V8's heaps are outside it).
    #[serde(default)]
    pub memory: Value,
    /// Warden's `warden_wasm_memory_bytes` gauge: the linear memory of its VMs, summed.
    #[serde(default)]
    pub wasm_memory_bytes: Option<u64>,
}

fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).with_context(|| format!("{}: bad line {l}", path.display()))
        })
        .collect()
}

fn meta(path: &Path) -> BTreeMap<String, String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The markdown report of a run directory; `chart` is the PNG's file name beside it.
pub fn markdown(run: &Path, chart: &str) -> Result<String> {
    let measurements: Vec<Measurement> = read_lines(&run.join("results.jsonl"))?;
    let memory: Vec<Memory> = read_lines(&run.join("memory.jsonl")).unwrap_or_default();
    let meta = meta(&run.join("meta.txt"));
    let get = |key: &str| meta.get(key).cloned().unwrap_or_else(|| "?".into());
    let lscpu = fs::read_to_string(run.join("lscpu.txt")).unwrap_or_default();
    let lscpu_field = |name: &str| {
        lscpu
            .lines()
            .find_map(|l| {
                l.strip_prefix(name).map(|v| v.trim_start_matches(':').trim().to_string())
            })
            .unwrap_or_else(|| "?".into())
    };
    let rows = rows(&measurements);
    ensure!(!rows.is_empty(), "no measurements in {}", run.display());

    let mut md = String::new();
    let _ = writeln!(md, "# Warden against Envoy's native filters: {}\n", get("date"));
    let _ = writeln!(
        md,
        "Machine: {} ({} CPUs, {}), {}. Envoy {}; {}; commit `{}`.\n",
        lscpu_field("Model name"),
        lscpu_field("CPU(s)"),
        lscpu_field("Hypervisor vendor"),
        get("kernel"),
        get("envoy"),
        get("wrk"),
        get("commit"),
    );
    let _ = writeln!(
        md,
        "Load: `wrk -t1 -c{} --latency` for {} per measurement, {} interleaved rounds (every \
         configuration once per round, in table order) after a {} warm-up of each; Envoy \
         `--concurrency 1` pinned to CPU 0 (`taskset -c 0`), wrk pinned to CPU 1; mTLS with a \
         client certificate (the caller's SPIFFE identity) on 127.0.0.1; every answer a 200 from \
         a `direct_response`. µs/req = 1e6 / median req/s: the proxy's CPU per request while it \
         is saturated (the Envoy CPU column says how close to one full core it was). CPU µs/req \
         is Envoy's own CPU time (user + system, from `/proc`) divided by the requests: the \
         same cost measured from the proxy's side, which holds even where the load did not \
         saturate it.\n",
        get("connections"),
        get("duration"),
        get("rounds"),
        get("warmup"),
    );
    let _ = writeln!(md, "Reproduce: `{}`\n", get("command"));

    md.push_str(
        "| # | configuration | req/s | µs/req | p50 µs | p99 µs | Envoy CPU | CPU µs/req | \
         Warden ÷ native |\n",
    );
    md.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in &rows {
        let ratio = row
            .config
            .counterpart
            .and_then(|native| us_of(&rows, native))
            .map(|native| format!("{:.2}×", row.us / native))
            .unwrap_or_default();
        let errors =
            if row.errors > 0 { format!(" ⚠ {} errors", row.errors) } else { String::new() };
        let _ = writeln!(
            md,
            "| {} | {}{errors} | {} | {:.1} | {:.0} | {:.0} | {:.0}% | {:.1} | {ratio} |",
            row.config.number,
            row.config.title,
            thousands(row.rps),
            row.us,
            row.p50,
            row.p99,
            row.cpu * 100.0,
            row.cpu_us,
        );
    }
    md.push('\n');
    if rows.iter().any(|r| r.cpu < 0.9) {
        md.push_str(
            "Some configurations kept Envoy below 90% of its core: something else set the pace \
             (the load generator, or other processes on CPU 0), so their µs/req overstates the \
             proxy's cost; CPU µs/req is the better figure for them, and a quiet machine the \
             better remedy.\n\n",
        );
    }
    let _ = writeln!(md, "![µs per request by configuration]({chart})\n");

    md.push_str("## Targets (issue 5; reported, never asserted)\n\n| target | measured | |\n|---|---|---|\n");
    for target in targets(&rows) {
        let verdict = match (target.met, target.met_by_cpu) {
            (Some(true), Some(false)) => "met (by Envoy CPU: **missed**)",
            (Some(false), Some(true)) => "**missed** (by Envoy CPU: met)",
            (Some(true), _) => "met",
            (Some(false), _) => "**missed**",
            (None, _) => "not measured",
        };
        let _ = writeln!(md, "| {} | {} | {verdict} |", target.what, target.measured);
    }
    md.push('\n');

    md.push_str("## Memory\n\nEnvoy's resident memory after the last round (one Envoy per configuration; V8's heaps \
                 and the module's linear memory are in the RSS, not in Envoy's own allocator). Warden's VMs \
                 is its `warden_wasm_memory_bytes` gauge: the linear memory of every Warden VM in that Envoy \
                 (the worker's and the main thread's), its own heap and data:\n\n");
    md.push_str("| configuration | RSS | above passthrough | Envoy heap (tcmalloc) | Warden's VMs |\n|---|---:|---:|---:|---:|\n");
    let floor = memory.iter().find(|m| m.config == "passthrough").map(|m| m.rss_kb);
    for m in &memory {
        let Some(config) = configuration_named(&m.config) else { continue };
        let above = floor
            .map(|f| format!("{:+.1} MiB", (m.rss_kb as f64 - f as f64) / 1024.0))
            .unwrap_or_default();
        let heap = m
            .memory
            .get("allocated")
            .and_then(|v| v.as_str().and_then(|s| s.parse::<f64>().ok()).or_else(|| v.as_f64()))
            .map(|b| format!("{:.1} MiB", b / 1048576.0))
            .unwrap_or_default();
        let vms = m
            .wasm_memory_bytes
            .map(|b| format!("{:.1} MiB", b as f64 / 1048576.0))
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {:.1} MiB | {above} | {heap} | {vms} |",
            config.title,
            m.rss_kb as f64 / 1024.0
        );
    }
    let _ = writeln!(
        md,
        "\nModule sizes: `warden.wasm` {} KiB; the empty filter {} KiB.\n",
        get("warden_wasm_kib"),
        get("empty_wasm_kib"),
    );

    md.push_str("## Every round (µs/req)\n\n| configuration |");
    let count = rows.iter().map(|r| r.rounds.len()).max().unwrap_or(0);
    for round in 1..=count {
        let _ = write!(md, " round {round} |");
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(count));
    md.push('\n');
    for row in &rows {
        let _ = write!(md, "| {} |", row.config.name);
        for us in &row.rounds {
            let _ = write!(md, " {us:.1} |");
        }
        md.push('\n');
    }
    if !lscpu.is_empty() {
        let _ =
            write!(md, "\n<details><summary>lscpu</summary>\n\n```\n{}```\n</details>\n", lscpu);
    }
    Ok(md)
}

/// The markers around the latest results in `benches/README.md`.
pub const README_START: &str = "<!-- bench-envoy:latest (written by `make bench-envoy`) -->";
/// See [`README_START`].
pub const README_END: &str = "<!-- /bench-envoy:latest -->";

/// The report as a README section: without its title and per-round table, headings one level
/// down, the chart at `chart`, and a link to the full report at `full`.
pub fn readme_section(report: &str, chart: &str, full: &str) -> String {
    let mut out = String::new();
    for line in report.lines() {
        if line.starts_with("## Every round") {
            break;
        }
        if line.starts_with("# ") {
            continue;
        }
        let line = match line.strip_prefix("## ") {
            Some(heading) => format!("#### {heading}"),
            None if line.starts_with("![") => {
                format!("![µs per request by configuration]({chart})")
            }
            None => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    format!("{}\n\nEvery round, and the machine's `lscpu`: [{full}]({full}).\n", out.trim_end())
}

/// `readme` with the text between [`README_START`] and [`README_END`] replaced by `section`.
pub fn splice_readme(readme: &str, section: &str) -> Result<String> {
    let start = readme.find(README_START).context("the README has no bench-envoy:latest marker")?;
    let end = readme.find(README_END).context("the README has no /bench-envoy:latest marker")?;
    ensure!(start < end, "the README's bench-envoy markers are out of order");
    let (head, _) = readme.split_at(start + README_START.len());
    let (_, tail) = readme.split_at(end);
    Ok(format!("{head}\n{}\n{tail}", section.trim_end()))
}

/// Draws µs/req by configuration with gnuplot (`gnuplot-nox`) into `png`.
pub fn chart(run: &Path, png: &Path) -> Result<()> {
    let measurements: Vec<Measurement> = read_lines(&run.join("results.jsonl"))?;
    let rows = rows(&measurements);
    let mut data = String::new();
    for row in &rows {
        let color = match row.config.side {
            Side::Floor => "0x999999",
            Side::Native => "0x4477aa",
            Side::Warden => "0xee7733",
        };
        let _ =
            writeln!(data, "\"{} {}\" {:.2} {color}", row.config.number, row.config.name, row.us);
    }
    let data_path = run.join("chart.dat");
    fs::write(&data_path, data)?;
    let script = format!(
        "set terminal pngcairo size 1100,560 font 'DejaVu Sans,10'\n\
         set output '{}'\n\
         set title 'Envoy CPU per request (µs = 1e6 / req/s; lower is better) — grey: floors, blue: native, orange: Warden'\n\
         set ylabel 'µs per request'\n\
         set style fill solid 0.85 border -1\n\
         set boxwidth 0.7\n\
         set grid ytics\n\
         set yrange [0:*]\n\
         set xtics rotate by -30 left nomirror\n\
         set bmargin 9\n\
         set rmargin 12\n\
         unset key\n\
         plot '{}' using 0:2:3:xtic(1) with boxes lc rgb variable, \
         '' using 0:2:(sprintf('%.1f', $2)) with labels offset 0,0.8\n",
        png.display(),
        data_path.display(),
    );
    let script_path = run.join("chart.gp");
    fs::write(&script_path, script)?;
    let output = Command::new("gnuplot")
        .arg(&script_path)
        .output()
        .context("running gnuplot (apt-get install gnuplot-nox)")?;
    ensure!(output.status.success(), "gnuplot: {}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    fn measurement(config: &str, round: u32, requests: u64) -> Measurement {
        Measurement {
            config: config.into(),
            round,
            envoy_cpu_seconds: 1.0,
            wrk: Wrk {
                requests,
                duration_us: 1_000_000,
                latency_us: Latency { p50: 100.0, p99: 400.0 },
                errors: Errors::default(),
            },
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn rows_take_the_median_of_the_rounds_and_skip_the_warm_up() {
        let rows = rows(&[
            measurement("passthrough", 0, 1),
            measurement("passthrough", 1, 40_000),
            measurement("passthrough", 2, 50_000),
            measurement("passthrough", 3, 10_000),
        ]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].rps, 40_000.0);
        assert_eq!(rows[0].us, 25.0);
        assert_eq!(rows[0].rounds.len(), 3);
    }

    #[test]
    fn targets_compare_the_right_rows() {
        let m = |c, rps| measurement(c, 1, rps);
        let rows = rows(&[
            m("passthrough", 50_000),      // 20 µs
            m("wasm-empty", 40_000),       // 25 µs
            m("authz-native", 40_000),     // 25 µs: +5 above passthrough
            m("authz-warden", 31_250),     // 32 µs: +7 above the empty filter
            m("rules1000-warden", 31_250), // same as 10 rules
        ]);
        let targets = targets(&rows);
        assert_eq!(targets[0].met, Some(false));
        assert_eq!(targets[0].measured, "7.0 vs 5.0 µs; by Envoy CPU: 7.0 vs 5.0 µs");
        assert_eq!(targets[1].met, None);
        assert_eq!(targets[3].met, Some(true));
    }

    #[test]
    fn the_readme_section_replaces_only_what_is_between_the_markers() {
        let report = "# Title\n\nMachine: x.\n\n![chart](2026-01-01.png)\n\n## Targets\n\n| a |\n\n## Every round\n\n| r |\n";
        let section = readme_section(report, "results/latest.png", "results/latest.md");
        assert!(!section.contains("# Title") && !section.contains("| r |"), "{section}");
        assert!(section.contains("#### Targets"), "{section}");
        assert!(section.contains("](results/latest.png)"), "{section}");
        let readme = format!("intro\n{README_START}\nold\n{README_END}\noutro\n");
        let spliced = splice_readme(&readme, &section).unwrap();
        assert!(spliced.starts_with("intro\n") && spliced.ends_with("outro\n"), "{spliced}");
        assert!(!spliced.contains("old") && spliced.contains("Machine: x."), "{spliced}");
        assert!(splice_readme("no markers", "x").is_err());
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
