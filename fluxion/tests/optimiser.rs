//! The optimiser on the committed price days: never worse than the cheapest/dearest heuristic.

mod support;

use fluxion::plan::{cheapest_dearest_heuristic, optimise, simulate, Mode};
use support::fixtures::{problem, DAYS};

#[test]
fn fixtures_have_the_expected_horizons() {
    assert_eq!(problem("winter").slots.len(), 192);
    assert_eq!(problem("summer_negative").slots.len(), 96);
    assert_eq!(problem("flat").slots.len(), 96);
    assert!(problem("summer_negative").slots.iter().any(|s| s.buy < 0.0));
}

#[test]
fn optimiser_beats_or_equals_the_heuristic_on_every_fixture_day() {
    for day in DAYS {
        let p = problem(day);
        let dp = optimise(&p);
        let h = simulate(&p, &cheapest_dearest_heuristic(&p));
        // Printed so the numbers can be quoted (cargo test -- --nocapture).
        println!(
            "{day}: optimiser cash {:.4} + terminal {:.4} = {:.4}; heuristic cash {:.4} + terminal {:.4} = {:.4}",
            dp.cash,
            dp.terminal_value,
            dp.objective(),
            h.cash,
            h.terminal_value,
            h.objective()
        );
        assert!(
            dp.objective() >= h.objective() - 1e-9,
            "{day}: optimiser worse than heuristic"
        );
    }
}

#[test]
fn flat_tariff_is_left_alone_and_the_heuristic_loses_money() {
    let p = problem("flat");
    let dp = optimise(&p);
    assert!(dp.slots.iter().all(|s| s.mode == Mode::SelfUse));
    let h = simulate(&p, &cheapest_dearest_heuristic(&p));
    assert!(h.objective() < dp.objective());
}

#[test]
fn summer_charges_while_prices_are_negative() {
    let p = problem("summer_negative");
    let dp = optimise(&p);
    let charged_negative = p
        .slots
        .iter()
        .zip(&dp.slots)
        .filter(|(s, d)| d.mode == Mode::ForceCharge && s.buy < 0.0)
        .count();
    assert!(charged_negative > 0);
    assert!(dp.cash > 0.0);
}
