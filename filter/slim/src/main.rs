//! `warden-slim MODULE`: rewrites `MODULE` (warden.wasm) in place with only the proxy-wasm
//! callbacks Warden handles exported (see the library's documentation).

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        eprintln!("usage: warden-slim MODULE   (rewrites warden.wasm in place)");
        return ExitCode::from(2);
    };
    match run(&path) {
        Ok(report) => {
            println!("warden-slim: {path}: {report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("warden-slim: {path}: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &str) -> Result<warden_slim::Report, Box<dyn std::error::Error>> {
    let module = std::fs::read(path)?;
    let (slimmed, report) = warden_slim::slim(&module, warden_slim::CALLBACKS)?;
    if slimmed != module {
        // Written beside it and renamed over it, so Envoy never reads half a module.
        let temporary = format!("{path}.slim");
        std::fs::write(&temporary, &slimmed)?;
        std::fs::rename(&temporary, path)?;
    }
    Ok(report)
}
