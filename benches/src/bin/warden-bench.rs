//! `warden-bench`: the Envoy harness's helper (`benches/envoy/run.sh` and `diff.sh` call it).
//!
//! ```text
//! warden-bench prepare --out DIR --warden BIN --wasm FILE --empty-wasm FILE --empty-slim-wasm FILE [--pool N] [--base-port P]
//! warden-bench diff-prepare --out DIR --warden BIN --wasm FILE [--base-port P] [--rules N]
//! warden-bench diff-check DIR
//! warden-bench report --run DIR --out DIR --date YYYY-MM-DD [--readme benches/README.md]
//! warden-bench scale-prepare --out DIR --warden BIN --wasm FILE --empty-wasm FILE [--base-port P]
//! warden-bench scale-report --run DIR --wasm FILE --out FILE
//! warden-bench scale-mesh --total N --namespaces M --applying K --out FILE
//! warden-bench soak --seconds N --run-dir e2e/.run --ports envoy/ports.env --out DIR [--rate R]
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _, Result};
use warden_benches::envoy::{self, diff, PrepareOptions};
use warden_benches::report;

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("warden-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--key value` pairs, and the positional arguments.
fn options(args: &[String]) -> Result<(BTreeMap<String, String>, Vec<String>)> {
    let mut named = BTreeMap::new();
    let mut positional = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.strip_prefix("--") {
            Some(key) => {
                let value = args.next().ok_or_else(|| anyhow!("--{key} needs a value"))?;
                named.insert(key.to_string(), value.clone());
            }
            None => positional.push(arg.clone()),
        }
    }
    Ok((named, positional))
}

fn run(args: Vec<String>) -> Result<()> {
    let (command, rest) = args.split_first().ok_or_else(|| {
        anyhow!("usage: warden-bench prepare|diff-prepare|diff-check|report|soak …")
    })?;
    let (named, positional) = options(rest)?;
    let path =
        |key: &str| named.get(key).map(PathBuf::from).ok_or_else(|| anyhow!("--{key} is required"));
    let number = |key: &str, default: usize| -> Result<usize> {
        named.get(key).map_or(Ok(default), |v| v.parse().with_context(|| format!("--{key} {v}")))
    };
    match command.as_str() {
        "prepare" => envoy::prepare(&PrepareOptions {
            out: path("out")?,
            warden: path("warden")?,
            wasm: path("wasm")?,
            empty_wasm: path("empty-wasm")?,
            empty_slim_wasm: path("empty-slim-wasm")?,
            pool: number("pool", 4096)?,
            base_port: u16::try_from(number("base-port", 17100)?)?,
        }),
        "diff-prepare" => diff::prepare(&diff::DiffOptions {
            out: path("out")?,
            warden: path("warden")?,
            wasm: path("wasm")?,
            base_port: u16::try_from(number("base-port", 17300)?)?,
            rules: number("rules", 30)?,
        }),
        "diff-check" => {
            let dir = positional.first().ok_or_else(|| anyhow!("diff-check DIR"))?;
            print!("{}", diff::check(&PathBuf::from(dir))?);
            Ok(())
        }
        "report" => {
            let run = path("run")?;
            let out = path("out")?;
            let date = named.get("date").ok_or_else(|| anyhow!("--date is required"))?;
            fs::create_dir_all(&out)?;
            let chart = format!("{date}.png");
            report::chart(&run, &out.join(&chart))?;
            let mut text = report::markdown(&run, &chart)?;
            if run.join("scale/results.jsonl").exists() {
                let wasm = PathBuf::from(
                    named
                        .get("wasm")
                        .map_or("target/wasm32-wasip1/wasm/warden.wasm", String::as_str),
                );
                text.push('\n');
                text.push_str(&envoy::scale::markdown(&run, &wasm)?);
            }
            fs::write(out.join(format!("{date}.md")), &text)?;
            fs::copy(out.join(&chart), out.join("latest.png"))?;
            fs::write(
                out.join("latest.md"),
                text.replace(&format!("]({chart})"), "](latest.png)"),
            )?;
            if let Some(readme) = named.get("readme") {
                let section =
                    report::readme_section(&text, "results/latest.png", "results/latest.md");
                let current =
                    fs::read_to_string(readme).with_context(|| format!("reading {readme}"))?;
                fs::write(readme, report::splice_readme(&current, &section)?)?;
            }
            println!("{}", out.join(format!("{date}.md")).display());
            Ok(())
        }
        "scale-prepare" => envoy::scale::prepare(
            &path("out")?,
            &path("warden")?,
            &path("wasm")?,
            &path("empty-wasm")?,
            u16::try_from(number("base-port", 17500)?)?,
        ),
        "scale-report" => {
            let text = envoy::scale::markdown(&path("run")?, &path("wasm")?)?;
            fs::write(path("out")?, &text)?;
            print!("{text}");
            Ok(())
        }
        "scale-mesh" => {
            let (workload, policies) = warden_benches::policies::scaled_mesh(
                number("total", 10_000)?,
                number("namespaces", 500)?,
                number("applying", 20)?,
            );
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": policies});
            fs::write(path("out")?, serde_json::to_string(&list)?)?;
            let labels: Vec<String> =
                workload.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("{},{}", workload.namespace, labels.join(","));
            Ok(())
        }
        "soak" => warden_benches::soak::run(&warden_benches::soak::SoakOptions {
            duration: std::time::Duration::from_secs(u64::try_from(number("seconds", 600)?)?),
            rate: named.get("rate").map(|r| r.parse()).transpose().context("--rate")?,
            run_dir: path("run-dir")?,
            ports: path("ports")?,
            out: path("out")?,
        }),
        other => bail!("unknown command {other:?}"),
    }
}
