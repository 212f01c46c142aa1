//! The authorization engine natively: decisions at 10, 100 and 1,000 rules for requests that
//! match the first ALLOW rule Envoy evaluates, the last one, and none; the same decisions
//! without the index (every rule in Envoy's order, as RBAC scans them); and compilation.
//!
//! `cargo bench -p warden-benches --bench authz`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use warden::authz::{self, Mesh};
use warden_benches::policies::{self, SampleRequest};

const SIZES: [usize; 3] = [10, 100, 1000];

fn requests(mesh: &policies::GeneratedMesh) -> [(&'static str, SampleRequest); 3] {
    [
        ("first", mesh.request_matching_first()),
        ("last", mesh.request_matching_last()),
        ("none", mesh.request_matching_none()),
    ]
}

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("authz/decide");
    for rules in SIZES {
        let mesh = policies::generate(rules);
        let Ok(engine) = mesh.engine() else { return };
        for (name, request) in requests(&mesh) {
            request.with(|request, identity| {
                group.bench_with_input(BenchmarkId::new(name, rules), &rules, |b, _| {
                    b.iter(|| engine.decide(black_box(request), black_box(identity)))
                });
            });
        }
    }
    group.finish();
}

fn decide_without_index(c: &mut Criterion) {
    let mut group = c.benchmark_group("authz/decide-exhaustive");
    for rules in SIZES {
        let mesh = policies::generate(rules);
        let Ok(engine) = mesh.engine() else { return };
        for (name, request) in requests(&mesh) {
            request.with(|request, identity| {
                group.bench_with_input(BenchmarkId::new(name, rules), &rules, |b, _| {
                    b.iter(|| engine.decide_exhaustive(black_box(request), black_box(identity)))
                });
            });
        }
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("authz/compile");
    let mesh = policies::generate(1000);
    let settings = Mesh::default();
    let Ok(validated) = mesh.validate(&settings) else { return };
    group.bench_function("validate+compile/1000", |b| {
        b.iter(|| {
            let policies = mesh.validate(black_box(&settings)).unwrap_or_default();
            authz::compile(&policies, &mesh.workload, &settings)
        })
    });
    group.bench_function("compile/1000", |b| {
        b.iter(|| authz::compile(black_box(&validated), &mesh.workload, &settings))
    });
    group.finish();
}

criterion_group!(benches, decide, decide_without_index, compile);
criterion_main!(benches);
