//! `warden check`: every error and every suspicious policy in a set of files, for people and CI.
//!
//! The JSON report (`--format json`) is versioned; its shape is documented in the command's
//! `--help` ([`JSON_HELP`]) and pinned by the integration tests.

use serde::Serialize;
use warden::config::{KIND_AUTHORIZATION_POLICY, KIND_REQUEST_AUTHENTICATION};

use crate::analysis::{Analysis, Diagnostic, Severity};
use crate::k8s::Origin;
use crate::style::{paint, severity, DIM, EMPHASIS};

/// The `--format json` shape, for `--help`.
pub const JSON_HELP: &str = "\
JSON output (--format json), version 1; fields are never removed or renamed within a version:
  {
    \"version\": 1,
    \"ok\": bool,                      same as exit status 0
    \"summary\": {\"files\", \"documents\", \"authorizationPolicies\", \"requestAuthentications\",
                \"skipped\", \"errors\", \"warnings\", \"notes\"},        all numbers
    \"diagnostics\": [{
      \"severity\": \"error\" | \"warning\" | \"note\",
      \"code\": string,                e.g. \"yaml\", \"schema\", \"missing\", \"duplicate\",
                                     \"authz/invalid-ip\", \"authn/jwks\", \"lint/allows-plaintext\",
                                     \"lint/never-matches\", \"lint/shadowed-by-deny\",
                                     \"lint/path-without-slash\", \"lint/wildcard-in-middle\",
                                     \"lint/unknown-issuer\", \"lint/host-port\", \"default-namespace\"
      \"file\": string | null,         null for plugin settings
      \"document\": number | null,     1-based, in the file
      \"item\": number | null,         0-based element of a `kind: List`
      \"line\": number | null,         1-based line where the document starts
      \"kind\", \"namespace\", \"name\": string | null,    the Istio object
      \"rule\": number | null,         index in spec.rules / spec.jwtRules
      \"field\": string,               e.g. \"spec.rules[0].from[0].source.ipBlocks[1]\"; may be \"\"
      \"message\": string
    }],
    \"skipped\": [{\"file\", \"document\", \"item\", \"line\", \"kind\"}]     documents of other kinds
  }";

/// Whether the check passed: no errors, and with `strict` no warnings either.
pub fn passed(analysis: &Analysis, strict: bool) -> bool {
    analysis.count(Severity::Error) == 0 && !(strict && analysis.count(Severity::Warning) > 0)
}

fn count_kind(analysis: &Analysis, kind: &str) -> usize {
    analysis.entries.iter().filter(|e| e.object.kind == kind).count()
}

/// `file:line (document N, items[i])`.
pub fn location(origin: &Origin) -> String {
    let mut text = origin.path.display().to_string();
    if origin.line > 0 {
        text.push_str(&format!(":{}", origin.line));
    }
    text.push_str(&format!(" (document {}", origin.document));
    if let Some(item) = origin.item {
        text.push_str(&format!(", items[{item}]"));
    }
    text.push(')');
    text
}

/// One finding on one line: `place: severity: object: field: message [code]`.
pub fn diagnostic_line(diagnostic: &Diagnostic) -> String {
    let place = match &diagnostic.origin {
        Some(origin) => location(origin),
        None => "plugin settings".to_string(),
    };
    let mut line = format!(
        "{}: {}: ",
        paint(EMPHASIS, place),
        paint(severity(diagnostic.severity), diagnostic.severity.name())
    );
    if let Some(object) = &diagnostic.object {
        line.push_str(&format!("{object}: "));
    }
    if !diagnostic.field.is_empty() {
        line.push_str(&format!("{}: ", diagnostic.field));
    }
    line.push_str(&diagnostic.message);
    line.push_str(&format!(" {}", paint(DIM, format!("[{}]", diagnostic.code))));
    line
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The human report.
pub fn human(analysis: &Analysis, strict: bool, verbose: bool) -> String {
    let mut out = String::new();
    for diagnostic in &analysis.diagnostics {
        out.push_str(&diagnostic_line(diagnostic));
        out.push('\n');
    }
    if verbose {
        for (origin, what) in &analysis.skipped {
            out.push_str(&format!(
                "{}: {}: skipped {what}: not an Istio security policy\n",
                paint(EMPHASIS, location(origin)),
                paint(severity(Severity::Note), "note"),
            ));
        }
    }
    let errors = analysis.count(Severity::Error);
    let warnings = analysis.count(Severity::Warning);
    let verdict = if passed(analysis, strict) {
        paint(crate::style::GOOD, "ok")
    } else {
        paint(crate::style::BAD, "failed")
    };
    let mut summary = format!(
        "{verdict}: {}, {} in {} of {} ({}, {}",
        plural(errors, "error", "errors"),
        plural(warnings, "warning", "warnings"),
        plural(analysis.documents, "document", "documents"),
        plural(analysis.files, "file", "files"),
        plural(
            count_kind(analysis, KIND_AUTHORIZATION_POLICY),
            "AuthorizationPolicy",
            "AuthorizationPolicies"
        ),
        plural(
            count_kind(analysis, KIND_REQUEST_AUTHENTICATION),
            "RequestAuthentication",
            "RequestAuthentications"
        ),
    );
    if !analysis.skipped.is_empty() {
        summary.push_str(&format!(
            "; {} of other kinds skipped{}",
            plural(analysis.skipped.len(), "document", "documents"),
            if verbose { "" } else { ", -v lists them" }
        ));
    }
    summary.push(')');
    if strict && errors == 0 && warnings > 0 {
        summary.push_str(": --strict fails on warnings");
    }
    out.push_str(&summary);
    out.push('\n');
    out
}

/// Where a document is, in the JSON report.
#[derive(Debug, Serialize)]
struct Place {
    file: Option<String>,
    document: Option<usize>,
    item: Option<usize>,
    line: Option<usize>,
}

impl Place {
    fn of(origin: Option<&Origin>) -> Place {
        Place {
            file: origin.map(|o| o.path.display().to_string()),
            document: origin.map(|o| o.document),
            item: origin.and_then(|o| o.item),
            line: origin.filter(|o| o.line > 0).map(|o| o.line),
        }
    }
}

/// The JSON report (see [`JSON_HELP`]).
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    version: u32,
    ok: bool,
    summary: Summary,
    diagnostics: Vec<DiagnosticReport<'a>>,
    skipped: Vec<Skipped<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    files: usize,
    documents: usize,
    authorization_policies: usize,
    request_authentications: usize,
    skipped: usize,
    errors: usize,
    warnings: usize,
    notes: usize,
}

#[derive(Debug, Serialize)]
struct DiagnosticReport<'a> {
    severity: &'static str,
    code: &'a str,
    #[serde(flatten)]
    place: Place,
    kind: Option<&'a str>,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    rule: Option<usize>,
    field: &'a str,
    message: &'a str,
}

#[derive(Debug, Serialize)]
struct Skipped<'a> {
    #[serde(flatten)]
    place: Place,
    kind: &'a str,
}

/// The JSON report (see [`JSON_HELP`]).
pub fn json(analysis: &Analysis, strict: bool) -> Report<'_> {
    let diagnostics = analysis
        .diagnostics
        .iter()
        .map(|d| DiagnosticReport {
            severity: d.severity.name(),
            code: &d.code,
            place: Place::of(d.origin.as_ref()),
            kind: d.object.as_ref().map(|o| o.kind.as_str()),
            namespace: d.object.as_ref().map(|o| o.namespace.as_str()),
            name: d.object.as_ref().map(|o| o.name.as_str()),
            rule: d.rule(),
            field: &d.field,
            message: &d.message,
        })
        .collect();
    let skipped = analysis
        .skipped
        .iter()
        .map(|(origin, what)| Skipped { place: Place::of(Some(origin)), kind: what })
        .collect();
    Report {
        version: 1,
        ok: passed(analysis, strict),
        summary: Summary {
            files: analysis.files,
            documents: analysis.documents,
            authorization_policies: count_kind(analysis, KIND_AUTHORIZATION_POLICY),
            request_authentications: count_kind(analysis, KIND_REQUEST_AUTHENTICATION),
            skipped: analysis.skipped.len(),
            errors: analysis.count(Severity::Error),
            warnings: analysis.count(Severity::Warning),
            notes: analysis.count(Severity::Note),
        },
        diagnostics,
        skipped,
    }
}
