//! Durations as Istio's YAML writes them.
//!
//! Protobuf's JSON form (`5s`, `0.250s`) and the Go form Kubernetes users also write
//! (`500ms`, `1m30s`, `2h`). Anything else is an error rather than a guess.

use std::time::Duration;

/// Parses `5s`, `1.5s`, `500ms`, `1m30s`, `2h`, `100us`. Negative, empty and unit-less values
/// are refused.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("invalid duration {text:?}: expected a number with a unit, such as 5s, 1.5s, 500ms or 1m30s")
    };
    if text.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        if number_len == 0 {
            return Err(bad());
        }
        let (number, tail) = rest.split_at(number_len);
        let number: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let seconds_per_unit = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += number * seconds_per_unit;
        rest = tail;
    }
    // Ten years is far beyond any sensible timeout or interval, and keeps the conversion exact.
    if !total.is_finite() || total > 315_360_000.0 {
        return Err(format!("invalid duration {text:?}: too long"));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn protobuf_and_go_forms_parse() {
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0.250s"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
    }

    #[test]
    fn malformed_durations_are_refused() {
        for bad in ["", "5", "s", "-5s", "5 s", "5sec", "1e3s", "..s", "99999999999h"] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
