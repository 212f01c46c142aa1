//! The memory-and-scale section of `make bench-envoy`: what a sidecar pays for the mesh.
//!
//! One Envoy per configuration, one after the other (`--concurrency 2`, Istio's sidecar
//! default), each a plaintext listener in front of a `direct_response`: passthrough, the empty
//! filter, Warden with no policy, native `rbac` with the policies that apply to the workload
//! (what istiod would hand the sidecar), Warden with those, and Warden with the whole generated
//! mesh of 1,000 and 10,000 policies in 500 namespaces (20 of which select the workload). The
//! workload comes from the node metadata, as in an Istio sidecar. `benches/envoy/scale.sh`
//! measures each: resident memory, Warden's VM memory, time from start to the first decision.

use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde_json::{json, Value};

use super::bootstrap::{self, Hcm, Listener, Tls};
use super::{compile, read_json};
use crate::envoy::fixtures;
use crate::policies;

/// One row of the section.
pub struct ScaleRow {
    /// Its name in the plan and the results.
    pub name: &'static str,
    /// What it is, for the table.
    pub title: &'static str,
}

/// The rows, in order.
pub const ROWS: [ScaleRow; 8] = [
    ScaleRow { name: "passthrough", title: "passthrough (router → direct_response)" },
    ScaleRow { name: "empty-filter", title: "empty Rust proxy-wasm filter" },
    ScaleRow { name: "warden-idle", title: "Warden, no policy" },
    ScaleRow { name: "native-applicable", title: "native rbac, the 20 policies that apply" },
    ScaleRow { name: "warden-applicable", title: "Warden, the 20 policies that apply" },
    ScaleRow { name: "warden-mesh-1000", title: "Warden, the whole mesh: 1,000 policies" },
    ScaleRow { name: "warden-mesh-10000", title: "Warden, the whole mesh: 10,000 policies" },
    // Envoy's own share of a big configuration: the same ECDS file, the empty filter's module.
    ScaleRow {
        name: "empty-filter-mesh-10000",
        title: "empty filter, handed the whole mesh's configuration (10,000)",
    },
];

/// Writes `scale/plan.tsv` (name, port, admin port, bootstrap, and for Warden's rows the watched
/// ECDS file, the configuration that replaces it and the probe's answer under the new one) and
/// everything it names.
pub fn prepare(
    out: &Path,
    warden: &Path,
    wasm: &Path,
    empty_wasm: &Path,
    base_port: u16,
) -> Result<()> {
    let dir = out.join("scale");
    fs::create_dir_all(&dir)?;
    let settings = dir.join("settings.json");
    fs::write(&settings, "{}")?;
    let (workload, mesh_1k) = policies::scaled_mesh(1_000, 500, 20);
    let (_, mesh_10k) = policies::scaled_mesh(10_000, 500, 20);
    let labels: Vec<String> = workload.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let workload_arg = format!("{},{}", workload.namespace, labels.join(","));
    // scale.sh times `warden compile --workload` for the same workload.
    fs::write(dir.join("workload.txt"), &workload_arg)?;
    fixtures::write_objects(&dir.join("none.yaml"), &[])?;
    fixtures::write_objects(&dir.join("mesh-1000.yaml"), &mesh_1k)?;
    fixtures::write_objects(&dir.join("mesh-10000.yaml"), &mesh_10k)?;
    // What istiod would hand the sidecar: the policies selecting the workload.
    let applicable = dir.join("applicable.yaml");
    let output = std::process::Command::new(warden)
        .args(["compile"])
        .arg(dir.join("mesh-10000.yaml"))
        .args(["--workload", &workload_arg, "--format", "plugin-config"])
        .output()
        .context("running warden compile --workload")?;
    anyhow::ensure!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let config: Value = serde_json::from_slice(&output.stdout)?;
    let objects: Vec<Value> =
        config["policies"].as_array().cloned().context("the compiled configuration's policies")?;
    fixtures::write_objects(&applicable, &objects)?;

    let native_path = dir.join("applicable.native.json");
    let native_settings = dir.join("settings-workload.json");
    fs::write(&native_settings, serde_json::to_string(&json!({ "workload": workload }))?)?;
    compile(warden, &applicable, &native_settings, "envoy-native", None, &native_path)?;

    let tls_dir = out.join("certs");
    let certs = fixtures::Certificates::open(&tls_dir)?;
    let (server, ca, key) = (certs.server()?, certs.ca(), certs.key());
    let tls = Tls { cert: &server, key: &key, ca: &ca };
    // A Warden row's filter comes by ECDS from a watched file, as a WasmPlugin reaches an Istio
    // sidecar, so the reload column can replace it with the module already loaded: the same
    // policies plus one root-namespace policy that flips the probe's answer when it carries
    // `x-reload-probe: 1` (DENY where nothing is configured, giving 403; ALLOW where no ALLOW
    // matches, giving 200). The plan says which answer means the new configuration decided.
    let warden_row = |name: &str, objects: &[Value]| -> Result<(Value, String)> {
        // Written above, `objects` as YAML.
        let input = dir.join(format!("{name}.yaml"));
        let watched = dir.join(format!("ecds-{name}"));
        fs::create_dir_all(&watched)?;
        let current = watched.join("warden.json");
        compile(warden, &input, &settings, "ecds", Some(wasm), &current)?;
        let (action, expected) = if objects.is_empty() { ("DENY", 403) } else { ("ALLOW", 200) };
        let mut flipped = objects.to_vec();
        flipped.push(policies::object(
            "reload-probe",
            "istio-system",
            json!({
                "action": action,
                "rules": [{"when": [{"key": "request.headers[x-reload-probe]", "values": ["1"]}]}],
            }),
        ));
        let reload_input = dir.join(format!("{name}.reload.yaml"));
        fixtures::write_objects(&reload_input, &flipped)?;
        let reload = dir.join(format!("{name}.reload.warden.json"));
        compile(warden, &reload_input, &settings, "ecds", Some(wasm), &reload)?;
        let filter = bootstrap::warden_filter_discovered(&current, &watched);
        Ok((filter, format!("{}\t{}\t{expected}", current.display(), reload.display())))
    };
    let mut plan = String::new();
    for (index, row) in ROWS.iter().enumerate() {
        let (filters, reload) = match row.name {
            "passthrough" => (Vec::new(), "\t\t".to_string()),
            "empty-filter" => (vec![bootstrap::empty_wasm_filter(empty_wasm)], "\t\t".to_string()),
            "warden-idle" => {
                let (filter, reload) = warden_row("none", &[])?;
                (vec![filter], reload)
            }
            "native-applicable" => {
                (bootstrap::native_filters(&read_json(&native_path)?, false)?, "\t\t".to_string())
            }
            "warden-applicable" => {
                let (filter, reload) = warden_row("applicable", &objects)?;
                (vec![filter], reload)
            }
            "warden-mesh-1000" => {
                let (filter, reload) = warden_row("mesh-1000", &mesh_1k)?;
                (vec![filter], reload)
            }
            "warden-mesh-10000" => {
                let (filter, reload) = warden_row("mesh-10000", &mesh_10k)?;
                (vec![filter], reload)
            }
            "empty-filter-mesh-10000" => {
                // Warden's file for the whole mesh (written by the row above), the module
                // swapped for the empty filter, which reads nothing of it.
                let mut ecds = read_json(&dir.join("ecds-mesh-10000/warden.json"))?;
                *ecds
                    .pointer_mut("/resources/0/typed_config/config/vm_config/code/local/filename")
                    .context("the ECDS file names no module")? =
                    json!(empty_wasm.display().to_string());
                let watched = dir.join("ecds-empty-mesh-10000");
                fs::create_dir_all(&watched)?;
                let file = watched.join("warden.json");
                fs::write(&file, serde_json::to_string(&ecds)?)?;
                (vec![bootstrap::warden_filter_discovered(&file, &watched)], "\t\t".to_string())
            }
            other => anyhow::bail!("no configuration for the scale row {other}"),
        };
        let offset = u16::try_from(index)?;
        let (port, admin) = (base_port + offset, base_port + 100 + offset);
        let listener = Listener {
            name: row.name.replace('-', "_"),
            port,
            mtls: false,
            hcm: Hcm::Playground,
            network_filters: Vec::new(),
            filters,
        };
        let mut config = bootstrap::bootstrap(admin, &[listener], &tls);
        // The workload, as an Istio sidecar's node metadata carries it.
        config["node"]["metadata"] = json!({
            "NAMESPACE": workload.namespace,
            "LABELS": workload.labels,
        });
        let path = dir.join(format!("{}.json", row.name));
        fs::write(&path, serde_json::to_string_pretty(&config)?)?;
        plan.push_str(&format!("{}\t{port}\t{admin}\t{}\t{reload}\n", row.name, path.display()));
    }
    fs::write(dir.join("plan.tsv"), plan)?;
    Ok(())
}

/// One measured row (`scale.sh` writes one JSON object per line).
#[derive(Debug, serde::Deserialize)]
pub struct ScaleMeasurement {
    /// The row's name.
    pub name: String,
    /// Envoy's resident memory, KiB, 3 s after the first answer.
    pub rss_kib: u64,
    /// Envoy's heap: tcmalloc's resident bytes (admin `/memory`, `total_physical_bytes`).
    #[serde(default)]
    pub heap_bytes: Option<u64>,
    /// Of it, what is in use (`allocated`); the rest was freed and tcmalloc kept it.
    #[serde(default)]
    pub heap_live_bytes: Option<u64>,
    /// `warden_wasm_memory_bytes`, 0 when no Warden.
    pub wasm_bytes: u64,
    /// Milliseconds from starting Envoy to the first answer of the listener (the median of the
    /// starts `scale.sh` makes).
    pub first_answer_ms: u64,
    /// The status of that answer.
    pub status: u16,
    /// Milliseconds from replacing the ECDS file (the module already loaded) to the first
    /// answer decided by the new configuration; `None` where there is no Warden, or it never
    /// came (within 60 s).
    #[serde(default)]
    pub reload_ms: Option<u64>,
}

/// The command on the generated mesh of 10,000 policies (`scale/cli.jsonl`).
#[derive(Debug, serde::Deserialize)]
struct CliMeasurement {
    command: String,
    seconds: f64,
    max_rss_kib: u64,
}

/// The section's markdown, from `scale/results.jsonl`, with the module size.
pub fn markdown(run: &Path, wasm: &Path) -> Result<String> {
    let text = fs::read_to_string(run.join("scale/results.jsonl"))?;
    let rows: Vec<ScaleMeasurement> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut out = String::from(
        "## Memory and scale\n\nOne Envoy per row, one after the other, `--concurrency 2` (Istio's sidecar default), a \
         plaintext listener; the workload in the node metadata, as in an Istio sidecar. The mesh: \
         policies in 500 namespaces, 20 of which select the workload (one from the root namespace). \
         RSS 3 s after the first answer; Envoy's heap is tcmalloc's resident bytes (admin `/memory`), which include V8's compilation memory; RSS minus heap is Envoy's binary, its stacks and what V8 maps itself (code space, garbage-collected heaps, the VMs' linear memory); Warden's VMs is its `warden_wasm_memory_bytes` gauge (every \
         Warden VM's linear memory); first answer: from starting Envoy to the listener's first answer, the median of several starts (`STARTS`, 3 by default; the other columns are read in the last); ECDS reload: Warden's filter comes by ECDS from a watched file (as a WasmPlugin reaches a sidecar), which is replaced, the module already loaded, by the same policies plus one that flips a probe's answer: from the rename to the first answer decided by the new configuration.\n\n\
         Reproduce: `make bench-envoy` (or `benches/envoy/scale.sh` alone).\n\n\
         | configuration | RSS | above passthrough | Envoy's heap | Warden's VMs | first answer | ECDS reload |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let base = find("passthrough").map_or(0, |r| r.rss_kib);
    for row in ROWS {
        let Some(m) = find(row.name) else { continue };
        let vm = if m.wasm_bytes > 0 {
            format!("{:.1} MiB", m.wasm_bytes as f64 / (1 << 20) as f64)
        } else {
            String::new()
        };
        let heap = m.heap_bytes.map_or(String::new(), |b| format!("{:.1} MiB", mib(b / 1024)));
        let reload = match (m.reload_ms, m.wasm_bytes > 0) {
            (Some(ms), _) => format!("{ms} ms"),
            (None, true) => "none in 60 s".to_string(),
            (None, false) => String::new(),
        };
        out.push_str(&format!(
            "| {} | {:.1} MiB | {:+.1} MiB | {heap} | {vm} | {} ms ({}) | {reload} |\n",
            row.title,
            mib(m.rss_kib),
            mib(m.rss_kib) - mib(base),
            m.first_answer_ms,
            m.status
        ));
    }
    let size = fs::metadata(wasm).map(|m| m.len()).unwrap_or(0);
    out.push_str("\nTargets (issue \"Mesh scale\"; reported, never asserted):\n\n| target | measured | |\n|---|---|---|\n");
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let met = |ok: bool| if ok { "met" } else { "**missed**" };
    if let (Some(mesh), Some(applicable)) = (find("warden-mesh-10000"), find("warden-applicable")) {
        let vm = ratio(mesh.wasm_bytes as f64, applicable.wasm_bytes as f64);
        let first = ratio(mesh.first_answer_ms as f64, applicable.first_answer_ms as f64);
        out.push_str(&format!(
            "| whole mesh of 10,000 ÷ applicable only, Warden's VM memory ≤ 1.5× | {vm:.2}× | {} |\n",
            met(vm <= 1.5)
        ));
        out.push_str(&format!(
            "| whole mesh of 10,000 ÷ applicable only, first answer ≤ 1.2× | {first:.2}× ({} vs {} ms) | {} |\n",
            mesh.first_answer_ms,
            applicable.first_answer_ms,
            met(first <= 1.2)
        ));
        if let (Some(big), Some(empty)) = (find("empty-filter-mesh-10000"), find("empty-filter")) {
            out.push_str(&format!(
                "| the same configuration handed to the empty filter ÷ the empty filter, first answer (Envoy's own share; no target) | {:.2}× ({} vs {} ms) | |\n",
                ratio(big.first_answer_ms as f64, empty.first_answer_ms as f64),
                big.first_answer_ms,
                empty.first_answer_ms,
            ));
        }
    }
    if let (Some(mesh), Some(applicable)) = (find("warden-mesh-10000"), find("warden-applicable")) {
        if let (Some(a), Some(b)) = (mesh.reload_ms, applicable.reload_ms) {
            out.push_str(&format!(
                "| whole mesh of 10,000 ÷ applicable only, ECDS reload (no target; reported) | {:.1}× ({a} vs {b} ms) | |\n",
                ratio(a as f64, b as f64)
            ));
        }
    }
    if let (Some(idle), Some(empty)) = (find("warden-idle"), find("empty-filter")) {
        let r = ratio(idle.rss_kib as f64 - base as f64, empty.rss_kib as f64 - base as f64);
        out.push_str(&format!(
            "| Warden with no policy, RSS above passthrough ÷ the empty filter's ≤ 1.3× | {r:.2}× ({:+.1} vs {:+.1} MiB) | {} |\n",
            mib(idle.rss_kib) - mib(base),
            mib(empty.rss_kib) - mib(base),
            met(r <= 1.3)
        ));
    }
    let floor = match (find("warden-idle"), find("empty-filter")) {
        (Some(idle), Some(empty)) => floor_split(idle, empty),
        _ => None,
    };
    out.push_str(&format!(
        "| warden.wasm ≤ 500 KiB | {:.0} KiB | {} |\n",
        size as f64 / 1024.0,
        met(size <= 500 * 1024)
    ));
    // The command on the same mesh (scale.sh, GNU time, the median of its runs): each under
    // 1 s and 150 MB.
    if let Ok(text) = fs::read_to_string(run.join("scale/cli.jsonl")) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let m: CliMeasurement = serde_json::from_str(line)?;
            let mb = m.max_rss_kib as f64 * 1024.0 / 1e6;
            out.push_str(&format!(
                "| `{}` under 1 s and 150 MB | {:.2} s, {mb:.0} MB (median of the runs) | {} |\n",
                m.command,
                m.seconds,
                met(m.seconds < 1.0 && mb < 150.0)
            ));
        }
    }
    if let Some(floor) = floor {
        out.push_str(&floor);
    }
    Ok(out)
}

/// Where Warden's floor above the empty filter goes: Envoy's heap (in use, and freed but kept
/// by tcmalloc), Warden's linear memory, and the rest, as measured in the same run.
fn floor_split(idle: &ScaleMeasurement, empty: &ScaleMeasurement) -> Option<String> {
    let mib = |bytes: f64| bytes / f64::from(1 << 20);
    let heap = mib(idle.heap_bytes? as f64 - empty.heap_bytes? as f64);
    let live = mib(idle.heap_live_bytes? as f64 - empty.heap_live_bytes? as f64);
    let rss = mib((idle.rss_kib as f64 - empty.rss_kib as f64) * 1024.0);
    let linear = mib(idle.wasm_bytes as f64);
    Some(format!(
        "\nWhere Warden's floor goes: with no policy, Envoy's RSS is {rss:+.1} MiB above the empty \
         filter's. Envoy's heap (tcmalloc, which V8's compiler allocates from too) accounts for {heap:+.1} MiB \
         of it: {live:+.1} MiB in use, and {:+.1} MiB freed since start (the peak of V8 compiling the \
         module, once per Envoy: floor.md) that the allocator keeps. Warden's linear memory is \
         {linear:.1} MiB (every VM); the remaining {:+.1} MiB is outside both (what V8 maps \
         itself: code space, garbage-collected heaps).\n",
        heap - live,
        rss - heap - linear
    ))
}
