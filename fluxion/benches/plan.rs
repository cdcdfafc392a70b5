//! Criterion benchmark: planning two days of 15-minute slots (192) from the winter fixture.

#[path = "../tests/support/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;

use criterion::{criterion_group, criterion_main, Criterion};

fn plan_two_days(c: &mut Criterion) {
    let problem = fixtures::problem("winter");
    assert_eq!(problem.slots.len(), 192);
    c.bench_function("optimise 192 slots, 0.5 % SOC step", |b| {
        b.iter(|| fluxion::plan::optimise(std::hint::black_box(&problem)))
    });
}

criterion_group!(benches, plan_two_days);
criterion_main!(benches);
