//! The optimiser: an exact dynamic programme over discretised state of charge that picks one
//! inverter mode per 15-minute slot to maximise money over the known price horizon.
//!
//! The model (every number below is what `simulate` computes, and the DP is exact on it):
//! - The battery's stored energy lives on a grid of `levels` steps of `step_kwh` each. Round-trip
//!   losses are booked when charging: storing one step costs `step_kwh / efficiency` from the AC
//!   side, and one stored step delivers `step_kwh` back.
//! - `ForceCharge` charges as many whole steps as the charge power allows in the slot (AC
//!   energy `max_charge_kw * hours`), never above the upper bound. `ForceDischarge` likewise
//!   discharges to the grid, never below the lower bound. `SelfUse` covers the expected net
//!   load (house minus PV) from the battery when positive and stores the surplus when negative,
//!   within the same limits and bounds. `Hold` (Solax Manual Mode + "Stop Charge and
//!   Discharge") leaves the battery idle: the grid covers the whole net load, PV surplus is
//!   exported.
//! - The grid takes the rest: importing costs the buy price, exporting earns the sell price
//!   (either may be negative). Each kWh discharged costs `wear_cost_per_kwh`.
//! - Energy left at the end is worth `terminal_value_per_kwh` per stored kWh.
//! - Bounds: charging never ends above `max(start, upper)`, discharging never below
//!   `min(start, lower)`, where lower = the larger of the planning and hardware minimum SOC.
//!
//! What is maximised is the pair (money, -number of `Hold` slots), compared lexicographically:
//! among the plans that earn the most, the one with the fewest `Hold` slots wins, so `Hold`
//! appears only where every plan without it earns strictly less. Lexicographic order on
//! (f64, integer) pairs is compatible with addition, so backward induction stays exact. Left
//! ties go to the first mode in `Mode::ALL` (SelfUse: fewest inverter writes).
//!
//! The DP state is (slot, SOC level) and the per-slot input carries its own net load, so a
//! per-slot load forecast needs no change here; a cost per mode switch would add the previous
//! mode to the state (`Grid::step` stays the transition, `Score` the objective).

use serde::{Deserialize, Serialize};

/// What the inverter is told to do for one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    SelfUse,
    ForceCharge,
    ForceDischarge,
    /// Battery idle, the grid covers the house: keeps stored energy for a dearer slot.
    Hold,
}

impl Mode {
    /// Every mode, in tie-breaking order.
    pub const ALL: [Mode; 4] = [
        Mode::SelfUse,
        Mode::ForceCharge,
        Mode::ForceDischarge,
        Mode::Hold,
    ];
    /// The modes the optimiser had before `Hold`, for comparisons.
    pub const WITHOUT_HOLD: [Mode; 3] = [Mode::SelfUse, Mode::ForceCharge, Mode::ForceDischarge];

    /// The name people read (dashboard banner, logs).
    pub fn label(self) -> &'static str {
        match self {
            Mode::SelfUse => "Self Use",
            Mode::ForceCharge => "Force Charge",
            Mode::ForceDischarge => "Force Discharge",
            Mode::Hold => "Hold",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::SelfUse => "SelfUse",
            Mode::ForceCharge => "ForceCharge",
            Mode::ForceDischarge => "ForceDischarge",
            Mode::Hold => "Hold",
        })
    }
}

/// The battery as the optimiser sees it; SOC values in percent.
#[derive(Debug, Clone, PartialEq)]
pub struct Battery {
    pub capacity_kwh: f64,
    pub max_charge_kw: f64,
    pub max_discharge_kw: f64,
    pub efficiency: f64,
    /// Effective lower bound: the larger of the planning and the hardware minimum.
    pub min_soc: f64,
    pub max_soc: f64,
    pub wear_cost_per_kwh: f64,
}

/// One slot's prices (per kWh) and expected net house load (kWh in the slot, PV subtracted).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SlotInput {
    pub buy: f64,
    pub sell: f64,
    pub net_load_kwh: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub battery: Battery,
    pub slots: Vec<SlotInput>,
    pub slot_hours: f64,
    pub start_soc: f64,
    pub soc_step_percent: f64,
    /// `None`: mean buy price of the horizon times the round-trip efficiency.
    pub terminal_value_per_kwh: Option<f64>,
}

/// The result for one slot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlannedSlot {
    pub mode: Mode,
    pub soc_start: f64,
    pub soc_end: f64,
    /// Positive: imported from the grid; negative: exported.
    pub grid_kwh: f64,
    /// AC energy into (positive) or out of (negative) the battery.
    pub battery_ac_kwh: f64,
    /// Money made in the slot: export revenue - import cost - wear.
    pub cash: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub slots: Vec<PlannedSlot>,
    /// Sum of the slots' cash.
    pub cash: f64,
    /// Value of the energy stored at the end.
    pub terminal_value: f64,
    pub terminal_value_per_kwh: f64,
}

impl Plan {
    /// What the optimiser maximises.
    pub fn objective(&self) -> f64 {
        self.cash + self.terminal_value
    }
}

/// The discretised model derived from a problem: all integer steps.
#[derive(Debug, Clone, Copy)]
struct Grid {
    step_kwh: f64,
    levels: usize,
    start: usize,
    lower: usize,
    upper: usize,
    charge_steps: usize,
    discharge_steps: usize,
}

impl Grid {
    fn new(p: &Problem) -> Grid {
        let b = &p.battery;
        let levels = (100.0 / p.soc_step_percent).round().max(1.0) as usize;
        let step_kwh = b.capacity_kwh / levels as f64;
        let to_level = |soc: f64| soc.clamp(0.0, 100.0) / 100.0 * levels as f64;
        // Rounding inwards keeps the plan inside the configured bounds.
        let lower = (to_level(b.min_soc) - 1e-9).ceil() as usize;
        // When no level fits between the bounds, upper < lower and the battery stays put.
        let upper = (to_level(b.max_soc) + 1e-9).floor() as usize;
        let start = to_level(p.start_soc).round() as usize;
        // Whole steps only, rounded down, so the power limits are never exceeded.
        let charge_steps =
            (b.max_charge_kw * p.slot_hours * b.efficiency / step_kwh + 1e-9).floor() as usize;
        let discharge_steps =
            (b.max_discharge_kw * p.slot_hours / step_kwh + 1e-9).floor() as usize;
        Grid {
            step_kwh,
            levels,
            start,
            lower,
            upper,
            charge_steps,
            discharge_steps,
        }
    }

    fn soc(&self, level: usize) -> f64 {
        level as f64 * 100.0 / self.levels as f64
    }

    /// Next level, AC energy into the battery, grid energy and cash for one slot.
    fn step(&self, b: &Battery, s: &SlotInput, k: usize, mode: Mode) -> (usize, f64, f64, f64) {
        let room = self.upper.saturating_sub(k);
        let avail = k.saturating_sub(self.lower);
        let next = match mode {
            Mode::ForceCharge => k + self.charge_steps.min(room),
            Mode::ForceDischarge => k - self.discharge_steps.min(avail),
            Mode::SelfUse if s.net_load_kwh > 0.0 => {
                let want = (s.net_load_kwh / self.step_kwh + 1e-9).floor() as usize;
                k - want.min(self.discharge_steps).min(avail)
            }
            Mode::SelfUse => {
                let want = (-s.net_load_kwh * b.efficiency / self.step_kwh + 1e-9).floor() as usize;
                k + want.min(self.charge_steps).min(room)
            }
            Mode::Hold => k,
        };
        let ac = if next >= k {
            (next - k) as f64 * self.step_kwh / b.efficiency
        } else {
            -((k - next) as f64 * self.step_kwh)
        };
        let grid = s.net_load_kwh + ac;
        let money = if grid > 0.0 {
            -s.buy * grid
        } else {
            -s.sell * grid
        };
        let wear = b.wear_cost_per_kwh * (-ac).max(0.0);
        (next, ac, grid, money - wear)
    }
}

impl Problem {
    pub fn terminal_value_per_kwh(&self) -> f64 {
        self.terminal_value_per_kwh.unwrap_or_else(|| {
            if self.slots.is_empty() {
                0.0
            } else {
                let mean = self.slots.iter().map(|s| s.buy).sum::<f64>() / self.slots.len() as f64;
                mean * self.battery.efficiency
            }
        })
    }
}

/// Applies a given mode sequence to the model: the reference every plan is measured with.
pub fn simulate(p: &Problem, modes: &[Mode]) -> Plan {
    assert_eq!(modes.len(), p.slots.len(), "one mode per slot");
    let g = Grid::new(p);
    let mut k = g.start;
    let mut slots = Vec::with_capacity(modes.len());
    for (s, &mode) in p.slots.iter().zip(modes) {
        let (next, ac, grid, cash) = g.step(&p.battery, s, k, mode);
        slots.push(PlannedSlot {
            mode,
            soc_start: g.soc(k),
            soc_end: g.soc(next),
            grid_kwh: grid,
            battery_ac_kwh: ac,
            cash,
        });
        k = next;
    }
    let v = p.terminal_value_per_kwh();
    Plan {
        cash: slots.iter().map(|s| s.cash).sum(),
        terminal_value: v * k as f64 * g.step_kwh,
        terminal_value_per_kwh: v,
        slots,
    }
}

/// The objective of a (partial) plan: money first, then fewer `Hold` slots.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Score {
    money: f64,
    holds: u32,
}

impl Score {
    /// Strictly better. Money within a small tolerance counts as equal so that float noise
    /// cannot flip a tie away from the preferred mode.
    fn beats(self, other: Score) -> bool {
        if self.money > other.money + 1e-12 {
            true
        } else if self.money < other.money - 1e-12 {
            false
        } else {
            self.holds < other.holds
        }
    }
}

/// The optimal plan over all modes.
pub fn optimise(p: &Problem) -> Plan {
    optimise_over(p, &Mode::ALL)
}

/// The optimal plan using only `modes` (in tie-breaking order): backward induction over
/// (slot, SOC level). `optimise_over(p, &Mode::WITHOUT_HOLD)` is the plan without `Hold`.
pub fn optimise_over(p: &Problem, modes: &[Mode]) -> Plan {
    assert!(!modes.is_empty(), "at least one mode");
    let g = Grid::new(p);
    let n = p.slots.len();
    let width = g.levels.max(g.start) + 1;
    let v = p.terminal_value_per_kwh();
    // value[k]: best score from slot t onwards at level k; starts as the terminal value.
    let mut value: Vec<Score> = (0..width)
        .map(|k| Score {
            money: v * k as f64 * g.step_kwh,
            holds: 0,
        })
        .collect();
    let mut next_value = value.clone();
    let mut choice = vec![modes[0]; n * width];
    for t in (0..n).rev() {
        let s = &p.slots[t];
        for k in 0..width {
            let mut best: Option<Score> = None;
            for &mode in modes {
                let (next, _, _, cash) = g.step(&p.battery, s, k, mode);
                let total = Score {
                    money: cash + value[next].money,
                    holds: value[next].holds + u32::from(mode == Mode::Hold),
                };
                if best.is_none_or(|b| total.beats(b)) {
                    best = Some(total);
                    choice[t * width + k] = mode;
                }
            }
            next_value[k] = best.expect("at least one mode");
        }
        std::mem::swap(&mut value, &mut next_value);
    }
    let mut chosen = Vec::with_capacity(n);
    let mut k = g.start;
    for t in 0..n {
        let mode = choice[t * width + k];
        chosen.push(mode);
        k = g.step(&p.battery, &p.slots[t], k, mode).0;
    }
    simulate(p, &chosen)
}

/// The comparison heuristic: force-charge in the N cheapest slots and force-discharge in the N
/// dearest others, N being the slots a full charge from the lower to the upper bound takes.
pub fn cheapest_dearest_heuristic(p: &Problem) -> Vec<Mode> {
    let g = Grid::new(p);
    let n = p.slots.len();
    let span = g.upper.saturating_sub(g.lower);
    let per_slot = g.charge_steps.max(1);
    let count = span.div_ceil(per_slot).min(n / 2);
    let mut by_buy: Vec<usize> = (0..n).collect();
    by_buy.sort_by(|&a, &b| p.slots[a].buy.total_cmp(&p.slots[b].buy).then(a.cmp(&b)));
    let mut modes = vec![Mode::SelfUse; n];
    for &i in &by_buy[..count] {
        modes[i] = Mode::ForceCharge;
    }
    let mut by_sell: Vec<usize> = (0..n).filter(|&i| modes[i] == Mode::SelfUse).collect();
    by_sell.sort_by(|&a, &b| p.slots[b].sell.total_cmp(&p.slots[a].sell).then(a.cmp(&b)));
    for &i in by_sell.iter().take(count) {
        modes[i] = Mode::ForceDischarge;
    }
    modes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn battery() -> Battery {
        Battery {
            capacity_kwh: 10.0,
            max_charge_kw: 5.0,
            max_discharge_kw: 5.0,
            efficiency: 0.9,
            min_soc: 10.0,
            max_soc: 100.0,
            wear_cost_per_kwh: 0.0,
        }
    }

    fn problem(prices: &[f64], start_soc: f64) -> Problem {
        Problem {
            battery: battery(),
            slots: prices
                .iter()
                .map(|&p| SlotInput {
                    buy: p,
                    sell: p,
                    net_load_kwh: 0.0,
                })
                .collect(),
            slot_hours: 0.25,
            start_soc,
            soc_step_percent: 0.5,
            terminal_value_per_kwh: Some(0.0),
        }
    }

    /// Best objective over all |allowed|^n mode sequences.
    fn brute_force(p: &Problem, allowed: &[Mode]) -> f64 {
        let n = p.slots.len();
        let m = allowed.len();
        let mut best = f64::NEG_INFINITY;
        let mut modes = vec![Mode::SelfUse; n];
        for code in 0..m.pow(n as u32) {
            let mut c = code;
            for slot in modes.iter_mut() {
                *slot = allowed[c % m];
                c /= m;
            }
            best = best.max(simulate(p, &modes).objective());
        }
        best
    }

    /// A house with a steady load: energy in the battery, a cheaper night, a dear evening and
    /// a sell price below zero (grid fees), so the battery's value is covering the house.
    fn evening_problem(start_soc: f64) -> Problem {
        let mut slots = Vec::new();
        for (count, buy) in [(8, 0.20), (12, 0.50), (8, 0.20)] {
            for _ in 0..count {
                slots.push(SlotInput {
                    buy,
                    sell: -0.05,
                    net_load_kwh: 0.25,
                });
            }
        }
        Problem {
            slots,
            start_soc,
            ..problem(&[], 0.0)
        }
    }

    #[test]
    fn buys_low_sells_high() {
        let plan = optimise(&problem(&[0.1, 0.1, 0.5, 0.5], 10.0));
        let modes: Vec<Mode> = plan.slots.iter().map(|s| s.mode).collect();
        assert_eq!(
            modes,
            [
                Mode::ForceCharge,
                Mode::ForceCharge,
                Mode::ForceDischarge,
                Mode::ForceDischarge
            ]
        );
        // 5 kW x 0.25 h x 0.9 = 1.125 kWh stored per slot, rounded down to whole 0.05 kWh
        // steps: 1.1 kWh (1.2222 kWh from the grid). Two slots store 2.2 kWh, sold back at 0.5.
        let bought = 2.0 * 1.1 / 0.9;
        assert!(
            (plan.cash - (-0.1 * bought + 0.5 * 2.2)).abs() < 1e-9,
            "{}",
            plan.cash
        );
        assert_eq!(plan.slots[1].soc_end, 32.0);
    }

    #[test]
    fn flat_prices_do_nothing_because_of_losses() {
        // At the lower bound nothing can be sold without buying first, which loses 10 %.
        let plan = optimise(&problem(&[0.3; 8], 10.0));
        assert!(plan.slots.iter().all(|s| s.mode == Mode::SelfUse));
        assert_eq!(plan.cash, 0.0);
    }

    #[test]
    fn negative_prices_are_paid_to_charge() {
        let plan = optimise(&problem(&[-0.2, 0.0, 0.0], 10.0));
        assert_eq!(plan.slots[0].mode, Mode::ForceCharge);
        assert!(plan.cash > 0.0);
    }

    #[test]
    fn default_terminal_value_is_mean_price_times_efficiency() {
        let mut p = problem(&[0.1, 0.3], 50.0);
        p.terminal_value_per_kwh = None;
        assert!((p.terminal_value_per_kwh() - 0.2 * 0.9).abs() < 1e-12);
    }

    #[test]
    fn hold_keeps_the_charge_for_the_dear_evening() {
        // 40 % of 10 kWh above the 10 % floor is 3 kWh: exactly the evening's 12 x 0.25 kWh.
        let p = evening_problem(40.0);
        let with = optimise(&p);
        let without = optimise_over(&p, &Mode::WITHOUT_HOLD);
        let modes: Vec<Mode> = with.slots.iter().map(|s| s.mode).collect();
        assert_eq!(&modes[..8], &[Mode::Hold; 8], "{modes:?}");
        assert!(
            modes[8..20].iter().all(|&m| m == Mode::SelfUse),
            "{modes:?}"
        );
        // Draining 2 kWh into the night saves 0.20 each but buys them back at 0.50 in the
        // evening; charging more at night costs 0.20 / 0.9 for energy worth only 0.20 after it.
        assert!(
            (with.objective() - (-0.20 * 2.0 - 0.20 * 2.0)).abs() < 1e-9,
            "{}",
            with.objective()
        );
        // Without Hold the best is to drain at night and buy back at 0.20 / 0.9 before the
        // evening: the round-trip loss on 2 kWh.
        assert!(
            without.objective() < with.objective() - 0.04,
            "{} vs {}",
            without.objective(),
            with.objective()
        );
        assert!(without.slots.iter().all(|s| s.mode != Mode::Hold));
    }

    #[test]
    fn hold_never_appears_without_a_reason() {
        // No load: Hold and SelfUse are the same slot, and ties go to SelfUse.
        let plan = optimise(&problem(&[0.3, 0.1, 0.5, 0.2, 0.4], 50.0));
        assert!(plan.slots.iter().all(|s| s.mode != Mode::Hold), "{plan:?}");
        // Flat prices with load: nothing to keep energy for.
        let mut p = evening_problem(40.0);
        for s in &mut p.slots {
            s.buy = 0.2;
        }
        let plan = optimise(&p);
        assert!(plan.slots.iter().all(|s| s.mode != Mode::Hold), "{plan:?}");
    }

    #[test]
    fn empty_horizon_is_an_empty_plan() {
        let plan = optimise(&problem(&[], 40.0));
        assert!(plan.slots.is_empty());
        assert_eq!(plan.cash, 0.0);
    }

    fn arb_problem(max_slots: usize) -> impl Strategy<Value = Problem> {
        let slot =
            (-0.5f64..1.0, -0.5f64..1.0, -3.0f64..3.0).prop_map(|(buy, sell, net_load_kwh)| {
                SlotInput {
                    buy,
                    sell: sell.min(buy),
                    net_load_kwh,
                }
            });
        (
            proptest::collection::vec(slot, 0..=max_slots),
            (1.0f64..20.0, 0.5f64..8.0, 0.5f64..8.0, 0.5f64..=1.0),
            (0.0f64..60.0, 0.0f64..40.0, 0.0f64..=100.0, 0.0f64..0.2),
            (
                prop_oneof![Just(0.5), Just(1.0), Just(2.5), Just(5.0)],
                proptest::option::of(-0.2f64..0.6),
            ),
        )
            .prop_map(
                |(slots, (cap, ch, dis, eff), (lo, span, start, wear), (step, tv))| Problem {
                    battery: Battery {
                        capacity_kwh: cap,
                        max_charge_kw: ch,
                        max_discharge_kw: dis,
                        efficiency: eff,
                        min_soc: lo,
                        max_soc: (lo + 1.0 + span).min(100.0),
                        wear_cost_per_kwh: wear,
                    },
                    slots,
                    slot_hours: 0.25,
                    start_soc: start,
                    soc_step_percent: step,
                    terminal_value_per_kwh: tv,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn equals_brute_force_on_small_instances(p in arb_problem(6)) {
            let plan = optimise(&p);
            let best = brute_force(&p, &Mode::ALL);
            prop_assert!((plan.objective() - best).abs() < 1e-9, "dp {} brute {}", plan.objective(), best);
            let without = optimise_over(&p, &Mode::WITHOUT_HOLD);
            let best_without = brute_force(&p, &Mode::WITHOUT_HOLD);
            prop_assert!((without.objective() - best_without).abs() < 1e-9, "dp {} brute {}", without.objective(), best_without);
            prop_assert!(without.slots.iter().all(|s| s.mode != Mode::Hold));
            // Hold is planned exactly when every sequence without it earns less.
            let gain = best - best_without;
            let holds = plan.slots.iter().any(|s| s.mode == Mode::Hold);
            if gain > 1e-9 {
                prop_assert!(holds, "hold pays {gain} but is not planned: {plan:?}");
            } else if gain.abs() < 1e-13 {
                prop_assert!(!holds, "hold planned without paying: {plan:?}");
            }
        }

        #[test]
        fn reported_money_is_what_the_modes_earn(p in arb_problem(40)) {
            let plan = optimise(&p);
            let modes: Vec<Mode> = plan.slots.iter().map(|s| s.mode).collect();
            prop_assert_eq!(simulate(&p, &modes), plan);
        }

        #[test]
        fn never_violates_a_bound(p in arb_problem(60)) {
            let plan = optimise(&p);
            let b = &p.battery;
            let eps = 1e-9;
            let start = plan.slots.first().map(|s| s.soc_start).unwrap_or(p.start_soc);
            for s in &plan.slots {
                prop_assert!((0.0..=100.0).contains(&s.soc_end));
                let stored = (s.soc_end - s.soc_start) / 100.0 * b.capacity_kwh;
                if stored > 0.0 {
                    prop_assert!(s.soc_end <= b.max_soc.max(start) + eps, "above max: {s:?}");
                    prop_assert!(s.battery_ac_kwh <= b.max_charge_kw * p.slot_hours + eps, "charge power: {s:?}");
                    prop_assert!((s.battery_ac_kwh * b.efficiency - stored).abs() < 1e-9);
                } else if stored < 0.0 {
                    prop_assert!(s.soc_end >= b.min_soc.min(start) - eps, "below min: {s:?}");
                    prop_assert!(-s.battery_ac_kwh <= b.max_discharge_kw * p.slot_hours + eps, "discharge power: {s:?}");
                }
                // Energy balance: the grid covers whatever the battery does not.
                let self_use_load = s.grid_kwh - s.battery_ac_kwh;
                prop_assert!(self_use_load.is_finite());
            }
        }

        #[test]
        fn at_least_as_good_as_any_other_sequence(p in arb_problem(30), seed in any::<u64>()) {
            let best = optimise(&p).objective();
            let h = simulate(&p, &cheapest_dearest_heuristic(&p)).objective();
            prop_assert!(best >= h - 1e-9, "dp {best} < heuristic {h}");
            let mut x = seed;
            let random: Vec<Mode> = (0..p.slots.len()).map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                Mode::ALL[(x >> 33) as usize % Mode::ALL.len()]
            }).collect();
            prop_assert!(best >= simulate(&p, &random).objective() - 1e-9);
        }
    }
}
