//! Warden's logger and panic hook, on Envoy's log.
//!
//! The SDK's logger `unwrap`s the host's answer to every log call (and its panic hook the one
//! to the panic message), so a host that refused a log line would trap the VM on the request
//! path, where denials are logged. Here a line the host refuses is lost, nothing more.

use super::abi;

struct HostLogger;

static LOGGER: HostLogger = HostLogger;

/// proxy-wasm log levels.
const TRACE: u32 = 0;
const DEBUG: u32 = 1;
const INFO: u32 = 2;
const WARN: u32 = 3;
const ERROR: u32 = 4;
const CRITICAL: u32 = 5;

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Trace => TRACE,
            log::Level::Debug => DEBUG,
            log::Level::Info => INFO,
            log::Level::Warn => WARN,
            log::Level::Error => ERROR,
        };
        match record.args().as_str() {
            Some(message) => abi::log(level, message),
            None => abi::log(level, &record.args().to_string()),
        }
    }

    fn flush(&self) {}
}

/// Installs the logger and the panic hook (once per VM).
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        std::panic::set_hook(Box::new(|panic| abi::log(CRITICAL, &panic.to_string())));
    }
    log::set_max_level(log::LevelFilter::Trace);
}

/// Follows Envoy's level for Wasm: lines below it are never formatted nor sent (each would
/// cost a host call on the request path).
pub fn follow_host_level() {
    let filter = match abi::log_level() {
        Some(TRACE) => log::LevelFilter::Trace,
        Some(DEBUG) => log::LevelFilter::Debug,
        Some(INFO) => log::LevelFilter::Info,
        Some(WARN) => log::LevelFilter::Warn,
        Some(ERROR) => log::LevelFilter::Error,
        Some(_) => log::LevelFilter::Off,
        None => return,
    };
    log::set_max_level(filter);
}
