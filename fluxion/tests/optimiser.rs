//! The optimiser on the committed price days: never worse than the cheapest/dearest heuristic,
//! and `Hold` exactly where it pays (compared with the exact optimum without `Hold`).

mod support;

use fluxion::plan::{cheapest_dearest_heuristic, optimise, optimise_over, simulate, Mode};
use support::fixtures::{house_problem, problem, DAYS};

#[test]
fn fixtures_have_the_expected_horizons() {
    assert_eq!(problem("winter").slots.len(), 192);
    assert_eq!(problem("summer_negative").slots.len(), 96);
    assert_eq!(problem("flat").slots.len(), 96);
    assert_eq!(problem("cz_evening_peak").slots.len(), 96);
    // ENTSO-e in EUR/MWh, read per kWh.
    let spring = problem("spring_pv");
    assert_eq!(spring.slots.len(), 192);
    assert!((spring.slots[0].buy - 0.095).abs() < 1e-12);
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

fn holds(plan: &fluxion::plan::Plan) -> usize {
    plan.slots.iter().filter(|s| s.mode == Mode::Hold).count()
}

#[test]
fn hold_appears_only_where_it_pays_on_every_fixture_day() {
    for day in DAYS {
        for (house, p) in [(false, problem(day)), (true, house_problem(day))] {
            let with = optimise(&p);
            let without = optimise_over(&p, &Mode::WITHOUT_HOLD);
            let gain = with.objective() - without.objective();
            // Printed so the figures can be quoted (cargo test -- --nocapture).
            println!(
                "{day}{}: with Hold cash {:.4} + terminal {:.4} = {:.4} ({} Hold slots); \
                 without cash {:.4} + terminal {:.4} = {:.4}; gain {:.4}",
                if house { " (house)" } else { "" },
                with.cash,
                with.terminal_value,
                with.objective(),
                holds(&with),
                without.cash,
                without.terminal_value,
                without.objective(),
                gain
            );
            assert!(gain >= -1e-9, "{day}: Hold made the plan worse");
            if gain < 1e-9 {
                assert_eq!(holds(&with), 0, "{day}: Hold planned without paying");
            }
            if !house {
                // No load: Hold is the same slot as Self Use, which wins the tie.
                assert_eq!(holds(&with), 0, "{day}");
            }
        }
    }
}

#[test]
fn hold_keeps_the_night_charge_for_the_czech_evening_peak() {
    let p = house_problem("cz_evening_peak");
    let with = optimise(&p);
    let without = optimise_over(&p, &Mode::WITHOUT_HOLD);
    assert!(
        with.objective() > without.objective() + 0.5,
        "with {} without {}",
        with.objective(),
        without.objective()
    );
    // Hold only before the evening peak (17:00 local is slot 68), never in it.
    let hold_slots: Vec<usize> = (0..p.slots.len())
        .filter(|&i| with.slots[i].mode == Mode::Hold)
        .collect();
    assert!(!hold_slots.is_empty());
    assert!(hold_slots.iter().all(|&i| i < 68), "{hold_slots:?}");
    // The charge it keeps is spent in the evening, where the plan uses the battery.
    let evening_discharge: f64 = with.slots[68..84]
        .iter()
        .map(|s| (-s.battery_ac_kwh).max(0.0))
        .sum();
    assert!(evening_discharge > 4.0, "{evening_discharge}");
}

/// The module comment of `plan` quotes this day: with the old default terminal value (mean
/// buy price x efficiency) the plan charges at the end of the horizon for energy nothing after
/// it pays back; with the cheap-half rule it does not.
#[test]
fn the_terminal_value_does_not_hoard_at_the_end_of_the_horizon() {
    let mut p = problem("cz_evening_peak");
    let n = p.slots.len();
    let mean = p.slots.iter().map(|s| s.buy).sum::<f64>() / n as f64;
    let tail = |plan: &fluxion::plan::Plan| {
        plan.slots[n - 24..]
            .iter()
            .filter(|s| s.mode == Mode::ForceCharge)
            .count()
    };
    p.terminal_value_per_kwh = Some(mean * p.battery.efficiency);
    let old = optimise(&p);
    p.terminal_value_per_kwh = None;
    let new = optimise(&p);
    println!(
        "old rule {:.4}/kWh: {} force-charge slots in the last 6 h, ends at {:.1} %; \
         new rule {:.4}/kWh: {}, ends at {:.1} %",
        old.terminal_value_per_kwh,
        tail(&old),
        old.slots[n - 1].soc_end,
        new.terminal_value_per_kwh,
        tail(&new),
        new.slots[n - 1].soc_end
    );
    assert_eq!(
        tail(&old),
        4,
        "the old rule changed: the plan module comment is stale"
    );
    assert_eq!(old.slots[n - 1].soc_end, 54.0);
    assert_eq!(tail(&new), 0);
    assert_eq!(new.slots[n - 1].soc_end, 10.0);
}
