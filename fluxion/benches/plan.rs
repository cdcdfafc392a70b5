//! Criterion benchmark: planning two days of 15-minute slots (192) from the winter fixture at
//! 0.5 % SOC steps, with the household's load as net load and the controller's switching rules
//! (inverter mode known, a switch cost, the default 300 s debounce and an 1800 s one).

#[path = "../tests/support/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
#[path = "../tests/support/household.rs"]
#[allow(dead_code)]
mod household;

use criterion::{criterion_group, criterion_main, Criterion};
use fluxion::plan::{Mode, Switching};

fn plan_two_days(c: &mut Criterion) {
    let mut problem = fixtures::problem("winter");
    assert_eq!(problem.slots.len(), 192);
    let start = fixtures::price_slots("winter")[0].start;
    let tz = chrono_tz::Europe::Prague;
    let (load, _) = household::actual_day(start, 192, tz, household::season("winter"));
    for (s, l) in problem.slots.iter_mut().zip(load) {
        s.net_load_kwh = l;
    }
    for (name, min_slots) in [("300 s", 1), ("1800 s", 2)] {
        problem.switching = Switching {
            cost: 0.01,
            min_slots,
            initial: Some(Mode::SelfUse),
            initial_wait: 0,
        };
        c.bench_function(
            &format!("optimise 192 slots, 0.5 % SOC step, {name} debounce"),
            |b| b.iter(|| fluxion::plan::optimise(std::hint::black_box(&problem))),
        );
    }
}

criterion_group!(benches, plan_two_days);
criterion_main!(benches);
