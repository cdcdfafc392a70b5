//! The household comparison (`cargo bench -p fluxion --bench household`): money over fixture
//! days for (a) Self Use only, (b) charging in the cheapest N slots, (c) FluxION without
//! forecasts (net load 0, as before issue 13), (d) FluxION with the PV and load forecasts, (d*)
//! FluxION with perfect forecasts, and (e) the continuous LP optimum of the same model with
//! perfect foresight (an upper bound for every mode sequence), then the optimiser's time for two
//! days of 15-minute slots at 0.5 % SOC steps.
//!
//! Every strategy is scored on the same "actual" day (`household::actual_day`: another draw of
//! the household's load, PV with passing clouds), by `plan::simulate`: the model the DP is
//! exact on, with Self Use covering the real load. FluxION replans at every slot from the SOC
//! it really reached, as the controller does (`receding`); the heuristic is a fixed schedule. Money is cash
//! plus the stored energy at the end at the horizon's terminal value (the same for all), in the
//! fixture's currency; switch costs are not money and are left out.

#[path = "../tests/support/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
#[path = "../tests/support/household.rs"]
#[allow(dead_code)]
mod household;

use std::time::Instant;

use chrono::{DateTime, Utc};
use fluxion::config::{PricingConfig, PvEstimate};
use fluxion::forecast;
use fluxion::plan::{self, Mode, Problem, SlotInput, Switching};
use fluxion::price::PriceSlot;
use good_lp::{constraint, variable, Expression, Solution, SolverModel};

const TZ: chrono_tz::Tz = chrono_tz::Europe::Prague;

/// The fixture days: winter without PV (two days), spring with a PV surplus at noon (two days,
/// ENTSO-e in EUR/MWh), summer with negative prices, and the Czech evening peak (Kč).
const DAYS: [&str; 4] = ["winter", "spring_pv", "summer_negative", "cz_evening_peak"];

/// Tariffs as paid: EUR days 0.08 EUR/kWh on import and 0.02 on export, 21 % VAT; the Czech day
/// 1.8 Kč/kWh and 0.3 Kč/kWh, 21 % VAT.
fn tariff(day: &str) -> PricingConfig {
    let czk = fixtures::price_attributes(day)["unit_of_measurement"] == "Kč/kWh";
    let (buy, sell) = if czk { (1.8, 0.3) } else { (0.08, 0.02) };
    PricingConfig {
        grid_fee_buy: buy,
        grid_fee_sell: sell,
        vat_percent: 21.0,
        ..Default::default()
    }
}

fn problem(prices: &[PriceSlot], net: &[f64], start_soc: f64, switching: Switching) -> Problem {
    let mut p = fixtures::problem("winter");
    p.slots = prices
        .iter()
        .zip(net)
        .map(|(s, &n)| SlotInput {
            buy: s.buy,
            sell: s.sell,
            net_load_kwh: n,
        })
        .collect();
    p.start_soc = start_soc;
    p.switching = switching;
    p
}

/// The controller's default switch cost: 0.1 kWh at the mean absolute buy price.
fn switch_cost(prices: &[PriceSlot]) -> f64 {
    0.1 * prices.iter().map(|p| p.buy.abs()).sum::<f64>() / prices.len() as f64
}

/// FluxION as the controller runs it: at each slot, plan the rest of the horizon on `believed`
/// net loads from the SOC really reached, and follow the first slot's mode. The controller's
/// horizon never ends within 11 h (tomorrow's prices come at 13:00), so in the last 12 h of a
/// fixture the last plan made with 12 h left is followed instead of replanning ever shorter.
fn receding(prices: &[PriceSlot], believed: &[f64], actual: &Problem, cost: bool) -> Vec<Mode> {
    const LAST_REPLAN: usize = 48;
    let n = prices.len();
    let mut modes: Vec<Mode> = Vec::new();
    let mut soc = actual.start_soc;
    for t in 0..n {
        let switching = Switching {
            cost: if cost { switch_cost(&prices[t..]) } else { 0.0 },
            min_slots: 1,
            initial: modes.last().copied(),
            initial_wait: 0,
        };
        let p = problem(&prices[t..], &believed[t..], soc, switching);
        let plan = plan::optimise(&p);
        if n - t <= LAST_REPLAN {
            modes.extend(plan.slots.iter().map(|s| s.mode));
            break;
        }
        modes.push(plan.slots[0].mode);
        soc = plan::simulate(actual, &pad(&modes, n)).slots[t].soc_end;
    }
    modes
}

fn pad(modes: &[Mode], n: usize) -> Vec<Mode> {
    let mut m = modes.to_vec();
    m.resize(n, Mode::SelfUse);
    m
}

/// The continuous relaxation of the model: any charge and discharge energy within the power
/// limits in each slot, SOC within the same bounds, grid import at the buy and export at the
/// sell price, wear on discharge, stored energy at the end at the terminal value.
fn lp_bound(p: &Problem) -> f64 {
    let b = &p.battery;
    let mut vars = good_lp::variables!();
    let n = p.slots.len();
    let cap = b.capacity_kwh;
    let e0 = p.start_soc / 100.0 * cap;
    let lo = (b.min_soc / 100.0 * cap).min(e0);
    let hi = (b.max_soc / 100.0 * cap).max(e0);
    let charge: Vec<_> = (0..n)
        .map(|_| vars.add(variable().min(0.0).max(b.max_charge_kw * p.slot_hours)))
        .collect();
    let discharge: Vec<_> = (0..n)
        .map(|_| vars.add(variable().min(0.0).max(b.max_discharge_kw * p.slot_hours)))
        .collect();
    // A bound on the grid only so the LP stays bounded; it never binds (buy >= sell here).
    let import: Vec<_> = (0..n)
        .map(|_| vars.add(variable().min(0.0).max(100.0)))
        .collect();
    let export: Vec<_> = (0..n)
        .map(|_| vars.add(variable().min(0.0).max(100.0)))
        .collect();
    let mut stored = Expression::from(e0);
    let mut objective = Expression::from(0.0);
    let mut levels = Vec::new();
    for (t, s) in p.slots.iter().enumerate() {
        objective += s.sell * export[t] - s.buy * import[t] - b.wear_cost_per_kwh * discharge[t];
        stored += b.efficiency * charge[t] - discharge[t];
        levels.push(stored.clone());
    }
    objective += p.terminal_value_per_kwh() * stored;
    let mut model = vars.maximise(objective.clone()).using(good_lp::microlp);
    for (t, s) in p.slots.iter().enumerate() {
        model = model.with(constraint!(
            import[t] - export[t] == s.net_load_kwh + charge[t] - discharge[t]
        ));
        model = model.with(constraint!(levels[t].clone() >= lo));
        model = model.with(constraint!(levels[t].clone() <= hi));
    }
    let solution = model.solve().expect("the LP is feasible and bounded");
    solution.eval(&objective)
}

struct Row {
    day: &'static str,
    slots: usize,
    currency: &'static str,
    money: [f64; 6],
    /// (d) without a switch cost, and the mode changes of (b), (d) and that plan.
    free: f64,
    switches: [usize; 3],
}

fn main() {
    let mut rows = Vec::new();
    for day in DAYS {
        let prices = fixtures::price_slots_with(day, &tariff(day));
        let n = prices.len();
        let start: DateTime<Utc> = prices[0].start;
        let season = household::season(day);
        let (load, pv) = household::actual_day(start, n, TZ, season);
        let actual_net: Vec<f64> = load.iter().zip(&pv).map(|(l, p)| l - p).collect();
        let actual = problem(&prices, &actual_net, 10.0, Switching::default());
        // The forecasts the controller would have: seven days of history, Solcast's median.
        let today = start.with_timezone(&TZ).date_naive();
        let rows_w = household::load_history(today, 7, TZ, season);
        let mut days = Vec::new();
        for d in forecast::history_days(today, 7) {
            let (s, e) = forecast::local_day(d, TZ).unwrap();
            let hist: Vec<fluxion::ha::HistoryRow> = rows_w
                .iter()
                .filter(|r| r.0 >= s && r.0 < e)
                .map(|(t, v)| fluxion::ha::HistoryRow {
                    state: v.clone(),
                    last_changed: *t,
                })
                .collect();
            days.push(forecast::day_load(&hist, s, e, TZ, 0.001));
        }
        let profile = forecast::load_profile(&days).unwrap();
        let starts: Vec<DateTime<Utc>> = prices.iter().map(|p| p.start).collect();
        let mut intervals = Vec::new();
        for d in 0..(n / 96) as i64 {
            let attrs =
                household::solcast_attributes(today + chrono::Duration::days(d), TZ, season);
            intervals
                .extend(forecast::pv_intervals("solcast", &attrs, PvEstimate::PvEstimate).unwrap());
        }
        let pv_forecast = forecast::per_slot(&intervals, &starts);
        let believed: Vec<f64> = starts
            .iter()
            .zip(&pv_forecast)
            .map(|(&t, pv)| profile[forecast::bin(t, TZ)] * 0.25 - pv.unwrap_or(0.0))
            .collect();
        let score = |modes: &[Mode]| plan::simulate(&actual, modes).value();
        let changes = |modes: &[Mode]| modes.windows(2).filter(|w| w[0] != w[1]).count();
        let self_use = score(&vec![Mode::SelfUse; n]);
        let heuristic = plan::cheapest_hours_heuristic(&actual);
        let cheapest = score(&heuristic);
        let blind = score(&receding(&prices, &vec![0.0; n], &actual, true));
        let planned = receding(&prices, &believed, &actual, true);
        let forecasts = score(&planned);
        let free_plan = receding(&prices, &believed, &actual, false);
        let perfect = score(&receding(&prices, &actual_net, &actual, true));
        let bound = lp_bound(&actual);
        rows.push(Row {
            day,
            slots: n,
            currency: if tariff(day).grid_fee_buy > 1.0 {
                "Kč"
            } else {
                "EUR"
            },
            money: [self_use, cheapest, blind, forecasts, perfect, bound],
            free: score(&free_plan),
            switches: [changes(&heuristic), changes(&planned), changes(&free_plan)],
        });
    }
    println!("money over the horizon (cash + stored energy at the terminal value), actual day:");
    println!(
        "| day | slots | (a) self use | (b) cheapest N | (c) FluxION, no forecasts | (d) FluxION, forecasts | (d*) perfect forecasts | (e) LP bound | (d)/(e) | (d)-(a) | (d)-(b) | (d)-(c) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let [a, b, c, d, p, e] = r.money;
        println!(
            "| {} ({}) | {} | {a:.2} | {b:.2} | {c:.2} | {d:.2} | {p:.2} | {e:.2} | {:.1} % | {:+.2} | {:+.2} | {:+.2} |",
            r.day,
            r.currency,
            r.slots,
            100.0 * (d - a) / (e - a),
            d - a,
            d - b,
            d - c,
        );
    }
    println!(
        "(d)/(e): the share of the LP bound's gain over Self Use that the plan reaches, \
         ((d) - (a)) / ((e) - (a)); the money itself is a bill (negative) on days with load."
    );
    println!("\nswitch cost (default: 0.1 kWh at the mean buy price) on (d):");
    println!("| day | (b) mode changes | (d) money | (d) mode changes | (d) without switch cost: money | mode changes |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.2} | {} | {:.2} | {} |",
            r.day, r.switches[0], r.money[3], r.switches[1], r.free, r.switches[2]
        );
    }
    // The optimiser's time: two days of 15-minute slots at 0.5 % SOC steps, with the household
    // net load and switching (the DP state as the controller uses it).
    let prices = fixtures::price_slots_with("winter", &tariff("winter"));
    let start = prices[0].start;
    let (load, _) = household::actual_day(start, prices.len(), TZ, household::season("winter"));
    for (label, min_slots) in [
        ("300 s debounce (1 slot)", 1),
        ("1800 s debounce (2 slots)", 2),
    ] {
        let p = problem(
            &prices,
            &load,
            10.0,
            Switching {
                cost: switch_cost(&prices),
                min_slots,
                initial: Some(Mode::SelfUse),
                initial_wait: min_slots - 1,
            },
        );
        let runs = 20;
        let t = Instant::now();
        for _ in 0..runs {
            std::hint::black_box(plan::optimise(std::hint::black_box(&p)));
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0 / runs as f64;
        println!(
            "optimise {} slots, 0.5 % SOC steps, {label}: {ms:.1} ms (mean of {runs})",
            p.slots.len()
        );
    }
}
