//! `warden-bench`: the Envoy harness's helper (`benches/envoy/run.sh` and `diff.sh` call it).
//!
//! `warden-bench --help` lists its subcommands; the scripts name every flag they pass.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use warden_benches::envoy::{self, diff, PrepareOptions};
use warden_benches::report;

/// The Envoy harness's helper: fixtures, configurations and reports for `benches/envoy/*.sh`.
#[derive(Debug, Parser)]
#[command(name = "warden-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What every `*-prepare` builds from.
#[derive(Debug, Args)]
struct Inputs {
    /// Where everything goes (`plan.tsv` there is what the script reads).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The `warden` command.
    #[arg(long, value_name = "FILE")]
    warden: PathBuf,
    /// `warden.wasm`.
    #[arg(long, value_name = "FILE")]
    wasm: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Policies, tokens, certificates and one Envoy configuration per benchmark row.
    Prepare {
        #[command(flatten)]
        inputs: Inputs,
        /// The SDK's empty filter.
        #[arg(long, value_name = "FILE")]
        empty_wasm: PathBuf,
        /// The empty filter with only Warden's callbacks exported.
        #[arg(long, value_name = "FILE")]
        empty_slim_wasm: PathBuf,
        /// Tokens per new-token pool (more than Warden's cache holds).
        #[arg(long, default_value_t = 4096)]
        pool: usize,
        /// The first port; every configuration takes the next ones.
        #[arg(long, default_value_t = 17100)]
        base_port: u16,
    },
    /// The differential test's Envoy: native filters and Warden from the same policies.
    DiffPrepare {
        #[command(flatten)]
        inputs: Inputs,
        /// Admin on this port, the listeners on the next four.
        #[arg(long, default_value_t = 17300)]
        base_port: u16,
        /// Rules in the generated mesh.
        #[arg(long, default_value_t = 30)]
        rules: usize,
    },
    /// Compares the answers both sides gave; exits 1 on any disagreement.
    DiffCheck {
        /// The directory `diff-prepare` wrote and `diff.sh` filled.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// The run's Markdown report and chart; optionally spliced into a README.
    Report {
        /// The run directory.
        #[arg(long, value_name = "DIR")]
        run: PathBuf,
        /// Where `<date>.md`, `latest.md` and the charts go.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The run's date, `YYYY-MM-DD`.
        #[arg(long)]
        date: String,
        /// A README whose generated section is replaced.
        #[arg(long, value_name = "FILE")]
        readme: Option<PathBuf>,
        /// `warden.wasm`, for the scale section's module size.
        #[arg(long, value_name = "FILE", default_value = "target/wasm32-wasip1/wasm/warden.wasm")]
        wasm: PathBuf,
    },
    /// The memory-and-scale section's configurations.
    ScalePrepare {
        #[command(flatten)]
        inputs: Inputs,
        /// The empty filter (the floor).
        #[arg(long, value_name = "FILE")]
        empty_wasm: PathBuf,
        /// The first port.
        #[arg(long, default_value_t = 17500)]
        base_port: u16,
    },
    /// The memory-and-scale section from a run's measurements.
    ScaleReport {
        /// The run directory.
        #[arg(long, value_name = "DIR")]
        run: PathBuf,
        /// `warden.wasm`, for its size.
        #[arg(long, value_name = "FILE")]
        wasm: PathBuf,
        /// The Markdown file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// A generated mesh as one `kind: List`; prints the workload its `applying` policies select.
    ScaleMesh {
        /// Policies in the mesh.
        #[arg(long, default_value_t = 10_000)]
        total: usize,
        /// Namespaces they are spread over.
        #[arg(long, default_value_t = 500)]
        namespaces: usize,
        /// How many select the printed workload.
        #[arg(long, default_value_t = 20)]
        applying: usize,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// The soak: the running playground under a mixed load, every answer checked.
    Soak {
        /// How long the load runs, in seconds.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        /// Requests per second; default half the capacity measured first.
        #[arg(long)]
        rate: Option<f64>,
        /// The playground's run directory (pids and logs).
        #[arg(long, value_name = "DIR")]
        run_dir: PathBuf,
        /// `envoy/ports.env`.
        #[arg(long, value_name = "FILE")]
        ports: PathBuf,
        /// Where the report goes.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("warden-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Prepare {
            inputs: Inputs { out, warden, wasm },
            empty_wasm,
            empty_slim_wasm,
            pool,
            base_port,
        } => envoy::prepare(&PrepareOptions {
            out,
            warden,
            wasm,
            empty_wasm,
            empty_slim_wasm,
            pool,
            base_port,
        }),
        Command::DiffPrepare { inputs: Inputs { out, warden, wasm }, base_port, rules } => {
            diff::prepare(&diff::DiffOptions { out, warden, wasm, base_port, rules })
        }
        Command::DiffCheck { dir } => {
            print!("{}", diff::check(&dir)?);
            Ok(())
        }
        Command::Report { run, out, date, readme, wasm } => {
            fs::create_dir_all(&out)?;
            let chart = format!("{date}.png");
            report::chart(&run, &out.join(&chart))?;
            let mut text = report::markdown(&run, &chart)?;
            if run.join("scale/results.jsonl").exists() {
                text.push('\n');
                text.push_str(&envoy::scale::markdown(&run, &wasm)?);
            }
            fs::write(out.join(format!("{date}.md")), &text)?;
            fs::copy(out.join(&chart), out.join("latest.png"))?;
            fs::write(
                out.join("latest.md"),
                text.replace(&format!("]({chart})"), "](latest.png)"),
            )?;
            if let Some(readme) = readme {
                let section =
                    report::readme_section(&text, "results/latest.png", "results/latest.md");
                let current = fs::read_to_string(&readme)
                    .with_context(|| format!("reading {}", readme.display()))?;
                fs::write(&readme, report::splice_readme(&current, &section)?)?;
            }
            println!("{}", out.join(format!("{date}.md")).display());
            Ok(())
        }
        Command::ScalePrepare { inputs: Inputs { out, warden, wasm }, empty_wasm, base_port } => {
            envoy::scale::prepare(&out, &warden, &wasm, &empty_wasm, base_port)
        }
        Command::ScaleReport { run, wasm, out } => {
            let text = envoy::scale::markdown(&run, &wasm)?;
            fs::write(&out, &text)?;
            print!("{text}");
            Ok(())
        }
        Command::ScaleMesh { total, namespaces, applying, out } => {
            let (workload, policies) =
                warden_benches::policies::scaled_mesh(total, namespaces, applying);
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": policies});
            fs::write(&out, serde_json::to_string(&list)?)?;
            let labels: Vec<String> =
                workload.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("{},{}", workload.namespace, labels.join(","));
            Ok(())
        }
        Command::Soak { seconds, rate, run_dir, ports, out } => {
            warden_benches::soak::run(&warden_benches::soak::SoakOptions {
                duration: Duration::from_secs(seconds),
                rate,
                run_dir,
                ports,
                out,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
