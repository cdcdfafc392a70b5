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
//!   load (house minus PV, per slot: the load and PV forecasts) from the battery when positive
//!   and stores the surplus when negative, within the same limits and bounds. `Hold` (Solax
//!   Manual Mode + "Stop Charge and Discharge") leaves the battery idle: the grid covers the
//!   whole net load, PV surplus is exported.
//! - The grid takes the rest: importing costs the buy price, exporting earns the sell price
//!   (either may be negative). Each kWh discharged costs `wear_cost_per_kwh`.
//! - Energy left at the end is worth `terminal_value_per_kwh` per stored kWh.
//! - Bounds: charging never ends above `max(start, upper)`, discharging never below
//!   `min(start, lower)`, where lower = the larger of the planning and hardware minimum SOC.
//! - Switching (`Switching`): a slot whose mode differs from the one before it (before slot 0:
//!   the mode the inverter is in, unknown counting as different from every mode) is a switch.
//!   Each switch costs `Switching::cost` in the objective (not in `cash`: it is no money paid,
//!   it is what a needless flip is worth avoiding), and a switch may follow the previous one
//!   only `min_slots` slots later (the controller's `min_mode_change_interval_s` in slots,
//!   rounded up), with `initial_wait` slots still blocked at the start (a change made less than
//!   the interval ago). So the plan the DP shows is one the controller's debounce lets it follow.
//!
//! What is maximised is the pair (money - switch costs, -number of `Hold` slots), compared
//! lexicographically: among the plans that earn the most, the one with the fewest `Hold` slots
//! wins, so `Hold` appears only where every plan without it earns strictly less. Lexicographic
//! order on (f64, integer) pairs is compatible with addition, so backward induction stays
//! exact. Left ties go to the first mode in `Mode::ALL` (SelfUse: fewest inverter writes).
//!
//! The DP state is (slot, SOC level, previous mode, blocked slots left): the previous mode
//! prices a switch, the blocked count (at most `min_slots - 1`, or `initial_wait`) enforces the
//! debounce. With the default 300 s debounce on 15-minute slots `min_slots` is 1 and the count
//! is always 0, so the state is (slot, level, previous mode): 5x the states of a plan without
//! switching. `Grid::step` stays the transition, `Score` the objective.
//!
//! **Terminal value.** Unless `plan.terminal_value_per_kwh` is set, a stored kWh at the end is
//! worth the mean of the cheapest half of the horizon's buy prices times the round-trip
//! efficiency, and never less than zero. Why: after the horizon the battery can be refilled
//! again in the next cheap hours, so a kWh kept is worth what it saves against buying it
//! again then (cheap-half price, after the loss of storing it), not the horizon's mean price.
//! The mean price made horizons end with a charge that nothing after it pays back: on the
//! Czech fixture day (`tests/fixtures/prices/cz_evening_peak.json`, empty battery, no load) the
//! old rule (mean buy x efficiency) force-charges in 4 of the last 24 slots and ends at 54 %,
//! to be valued at a price no later hour pays; this rule ends at the 10 % floor
//! (`tests/optimiser.rs`, `the_terminal_value_does_not_hoard_at_the_end_of_the_horizon`). Negative prices would make
//! stored energy a liability, which it is not (it can always be kept): hence the floor at 0.

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

/// How mode changes are priced and spaced; the default (free, any slot boundary, inverter mode
/// unknown) is a plan without switching rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Switching {
    /// Objective cost of one switch, in the price currency.
    pub cost: f64,
    /// A switch may follow the previous one only this many slots later (at least 1: the next
    /// slot boundary).
    pub min_slots: usize,
    /// The mode the inverter is in before the first slot; `None`: unknown (or a mode FluxION
    /// does not set), so the first slot is a switch whatever it is.
    pub initial: Option<Mode>,
    /// Slots at the start in which the mode may not change yet (ignored when `initial` is
    /// `None`, as nothing can be kept then).
    pub initial_wait: usize,
}

impl Default for Switching {
    fn default() -> Self {
        Switching {
            cost: 0.0,
            min_slots: 1,
            initial: None,
            initial_wait: 0,
        }
    }
}

impl Switching {
    /// The rules as the DP applies them over `modes`: `min_slots` at least 1, and no wait when
    /// the initial mode is unknown or not among `modes` (a comparison plan without `Hold` cannot
    /// keep a `Hold` the inverter is in).
    fn for_modes(&self, modes: &[Mode]) -> Switching {
        let keepable = self.initial.is_some_and(|m| modes.contains(&m));
        Switching {
            cost: self.cost,
            min_slots: self.min_slots.max(1),
            initial: self.initial,
            initial_wait: if keepable { self.initial_wait } else { 0 },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub battery: Battery,
    pub slots: Vec<SlotInput>,
    pub slot_hours: f64,
    pub start_soc: f64,
    pub soc_step_percent: f64,
    /// `None`: the mean of the cheapest half of the horizon's buy prices times the round-trip
    /// efficiency, at least 0 (see the module comment).
    pub terminal_value_per_kwh: Option<f64>,
    pub switching: Switching,
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
    /// Slots whose mode differs from the mode before them.
    pub switches: usize,
    /// `switches` times the switch cost: in the objective, not in the money.
    pub switch_cost: f64,
}

impl Plan {
    /// Money the plan is worth: cash plus the value of the energy left at the end.
    pub fn value(&self) -> f64 {
        self.cash + self.terminal_value
    }

    /// What the optimiser maximises: the money less the switch costs.
    pub fn objective(&self) -> f64 {
        self.value() - self.switch_cost
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

/// The default terminal value per stored kWh: the mean of the cheapest half of `buy` (at least
/// one price) times `efficiency`, never below 0. See the module comment.
pub fn default_terminal_value(buy: &[f64], efficiency: f64) -> f64 {
    if buy.is_empty() {
        return 0.0;
    }
    let mut sorted = buy.to_vec();
    sorted.sort_by(f64::total_cmp);
    let half = &sorted[..sorted.len().div_ceil(2)];
    (half.iter().sum::<f64>() / half.len() as f64 * efficiency).max(0.0)
}

impl Problem {
    pub fn terminal_value_per_kwh(&self) -> f64 {
        self.terminal_value_per_kwh.unwrap_or_else(|| {
            let buy: Vec<f64> = self.slots.iter().map(|s| s.buy).collect();
            default_terminal_value(&buy, self.battery.efficiency)
        })
    }
}

/// Whether `modes` keeps the debounce of `p.switching` (the controller could follow it).
pub fn feasible(p: &Problem, modes: &[Mode]) -> bool {
    let sw = p.switching.for_modes(&Mode::ALL);
    let mut prev = sw.initial;
    let mut wait = if sw.initial.is_some() {
        sw.initial_wait
    } else {
        0
    };
    for &m in modes {
        if prev != Some(m) {
            if wait > 0 {
                return false;
            }
            wait = sw.min_slots - 1;
        } else {
            wait = wait.saturating_sub(1);
        }
        prev = Some(m);
    }
    true
}

/// Applies a given mode sequence to the model: the reference every plan is measured with.
/// (It does not check the debounce: see `feasible`.)
pub fn simulate(p: &Problem, modes: &[Mode]) -> Plan {
    assert_eq!(modes.len(), p.slots.len(), "one mode per slot");
    let g = Grid::new(p);
    let mut k = g.start;
    let mut slots = Vec::with_capacity(modes.len());
    let mut prev = p.switching.initial;
    let mut switches = 0;
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
        switches += usize::from(prev != Some(mode));
        prev = Some(mode);
        k = next;
    }
    let v = p.terminal_value_per_kwh();
    Plan {
        cash: slots.iter().map(|s| s.cash).sum(),
        terminal_value: v * k as f64 * g.step_kwh,
        terminal_value_per_kwh: v,
        switches,
        switch_cost: switches as f64 * p.switching.cost,
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
    const NONE: Score = Score {
        money: f64::NEG_INFINITY,
        holds: u32::MAX,
    };

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

/// Index of `m` in `Mode::ALL`; `UNKNOWN` stands for "no known mode" before slot 0.
fn mode_index(m: Mode) -> usize {
    Mode::ALL
        .iter()
        .position(|&x| x == m)
        .expect("every mode is in ALL")
}
const UNKNOWN: usize = 4;
const PREVS: usize = 5;

/// The optimal plan using only `modes` (in tie-breaking order): backward induction over
/// (slot, SOC level, previous mode, blocked slots left). `optimise_over(p, &Mode::WITHOUT_HOLD)`
/// is the plan without `Hold`.
pub fn optimise_over(p: &Problem, modes: &[Mode]) -> Plan {
    assert!(!modes.is_empty(), "at least one mode");
    let g = Grid::new(p);
    let sw = p.switching.for_modes(modes);
    let n = p.slots.len();
    let width = g.levels.max(g.start) + 1;
    let waits = sw.min_slots.max(sw.initial_wait + 1);
    let states = width * PREVS * waits;
    let at = |k: usize, prev: usize, w: usize| (k * PREVS + prev) * waits + w;
    let v = p.terminal_value_per_kwh();
    // value[state]: best score from slot t onwards; starts as the terminal value.
    let mut value: Vec<Score> = (0..states)
        .map(|i| Score {
            money: v * (i / (PREVS * waits)) as f64 * g.step_kwh,
            holds: 0,
        })
        .collect();
    let mut next_value = value.clone();
    const NO_CHOICE: u8 = u8::MAX;
    let mut choice = vec![NO_CHOICE; n * states];
    let mut steps = Vec::with_capacity(modes.len());
    for t in (0..n).rev() {
        let s = &p.slots[t];
        for k in 0..width {
            steps.clear();
            steps.extend(modes.iter().map(|&m| {
                let (next, _, _, cash) = g.step(&p.battery, s, k, m);
                (m, mode_index(m), next, cash)
            }));
            // "Unknown" is only ever the state before slot 0.
            let prevs = if t == 0 { PREVS } else { PREVS - 1 };
            for prev in 0..prevs {
                for w in 0..waits {
                    let mut best = Score::NONE;
                    let mut pick = NO_CHOICE;
                    for (i, &(mode, mi, next, cash)) in steps.iter().enumerate() {
                        let switched = prev != mi;
                        if switched && w > 0 {
                            continue;
                        }
                        let w2 = if switched {
                            sw.min_slots - 1
                        } else {
                            w.saturating_sub(1)
                        };
                        let after = value[at(next, mi, w2)];
                        let total = Score {
                            money: cash - if switched { sw.cost } else { 0.0 } + after.money,
                            holds: after.holds.saturating_add(u32::from(mode == Mode::Hold)),
                        };
                        if pick == NO_CHOICE || total.beats(best) {
                            best = total;
                            pick = i as u8;
                        }
                    }
                    next_value[at(k, prev, w)] = best;
                    choice[t * states + at(k, prev, w)] = pick;
                }
            }
        }
        std::mem::swap(&mut value, &mut next_value);
    }
    let mut chosen = Vec::with_capacity(n);
    let mut k = g.start;
    let mut prev = sw.initial.map_or(UNKNOWN, mode_index);
    let mut w = if sw.initial.is_some() {
        sw.initial_wait
    } else {
        0
    };
    for t in 0..n {
        let pick = choice[t * states + at(k, prev, w)];
        assert_ne!(pick, NO_CHOICE, "the initial mode is always keepable");
        let mode = modes[pick as usize];
        let mi = mode_index(mode);
        w = if mi != prev {
            sw.min_slots - 1
        } else {
            w.saturating_sub(1)
        };
        prev = mi;
        chosen.push(mode);
        k = g.step(&p.battery, &p.slots[t], k, mode).0;
    }
    simulate(p, &chosen)
}

/// The slots a full charge from the lower to the upper bound takes, at most half the horizon.
fn full_charge_slots(p: &Problem) -> usize {
    let g = Grid::new(p);
    let span = g.upper.saturating_sub(g.lower);
    span.div_ceil(g.charge_steps.max(1)).min(p.slots.len() / 2)
}

/// The comparison heuristic: force-charge in the N cheapest slots and force-discharge in the N
/// dearest others, N being the slots a full charge from the lower to the upper bound takes.
pub fn cheapest_dearest_heuristic(p: &Problem) -> Vec<Mode> {
    let n = p.slots.len();
    let count = full_charge_slots(p);
    let mut modes = cheapest_hours_heuristic(p);
    let mut by_sell: Vec<usize> = (0..n).filter(|&i| modes[i] == Mode::SelfUse).collect();
    by_sell.sort_by(|&a, &b| p.slots[b].sell.total_cmp(&p.slots[a].sell).then(a.cmp(&b)));
    for &i in by_sell.iter().take(count) {
        modes[i] = Mode::ForceDischarge;
    }
    modes
}

/// What many Home Assistant automations do ("charge in the cheapest N hours"): force-charge in
/// the N cheapest slots, N being the slots a full charge from the lower to the upper bound
/// takes, and Self Use in every other slot.
pub fn cheapest_hours_heuristic(p: &Problem) -> Vec<Mode> {
    let n = p.slots.len();
    let count = full_charge_slots(p);
    let mut by_buy: Vec<usize> = (0..n).collect();
    by_buy.sort_by(|&a, &b| p.slots[a].buy.total_cmp(&p.slots[b].buy).then(a.cmp(&b)));
    let mut modes = vec![Mode::SelfUse; n];
    for &i in &by_buy[..count] {
        modes[i] = Mode::ForceCharge;
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
            switching: Switching::default(),
        }
    }

    /// Best objective over all |allowed|^n mode sequences the debounce allows.
    fn brute_force(p: &Problem, allowed: &[Mode]) -> f64 {
        let n = p.slots.len();
        let m = allowed.len();
        let p = Problem {
            switching: p.switching.for_modes(allowed),
            ..p.clone()
        };
        let mut best = f64::NEG_INFINITY;
        let mut modes = vec![Mode::SelfUse; n];
        for code in 0..m.pow(n as u32) {
            let mut c = code;
            for slot in modes.iter_mut() {
                *slot = allowed[c % m];
                c /= m;
            }
            if feasible(&p, &modes) {
                best = best.max(simulate(&p, &modes).objective());
            }
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
    fn default_terminal_value_is_the_cheap_half_times_efficiency() {
        let mut p = problem(&[0.4, 0.1, 0.3, 0.2], 50.0);
        p.terminal_value_per_kwh = None;
        assert!((p.terminal_value_per_kwh() - 0.15 * 0.9).abs() < 1e-12);
        // An odd count takes the middle price too; negative prices floor at zero.
        assert!((default_terminal_value(&[0.3, 0.1, 0.2], 1.0) - 0.15).abs() < 1e-12);
        assert_eq!(default_terminal_value(&[-0.2, -0.1, 0.5], 0.9), 0.0);
        assert_eq!(default_terminal_value(&[], 0.9), 0.0);
    }

    #[test]
    fn a_switch_cost_removes_a_flip_for_a_tiny_gain() {
        // One slightly cheaper quarter hour in the middle of a flat night: charging there and
        // selling at the end gains a little; a switch cost above that gain leaves it out.
        let mut p = problem(&[0.300, 0.300, 0.280, 0.300, 0.300, 0.312], 40.0);
        p.terminal_value_per_kwh = Some(0.0);
        let free = optimise(&p);
        assert!(free.switches >= 2, "{free:?}");
        p.switching.cost = 0.05;
        p.switching.initial = Some(Mode::SelfUse);
        let costly = optimise(&p);
        assert!(costly.switches < free.switches, "{costly:?}");
        assert!(costly.objective() >= simulate(&p, &[Mode::SelfUse; 6]).objective() - 1e-12);
    }

    #[test]
    fn the_debounce_is_kept_from_the_first_slot() {
        // Cheap then dear: charge at once, then discharge. The inverter switched to Self Use
        // a moment ago and the debounce is 2 slots: slot 0 must stay Self Use.
        let mut p = problem(&[0.1, 0.1, 0.5, 0.5], 10.0);
        p.switching = Switching {
            cost: 0.0,
            min_slots: 2,
            initial: Some(Mode::SelfUse),
            initial_wait: 1,
        };
        let plan = optimise(&p);
        let modes: Vec<Mode> = plan.slots.iter().map(|s| s.mode).collect();
        assert_eq!(modes[0], Mode::SelfUse, "{modes:?}");
        assert!(feasible(&p, &modes));
        // Every change is at least two slots after the one before.
        let changes: Vec<usize> = (1..4).filter(|&i| modes[i] != modes[i - 1]).collect();
        assert!(changes.windows(2).all(|w| w[1] - w[0] >= 2), "{modes:?}");
        assert!(!feasible(
            &p,
            &[
                Mode::ForceCharge,
                Mode::ForceCharge,
                Mode::SelfUse,
                Mode::SelfUse
            ]
        ));
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
            (
                prop_oneof![Just(0.0), 0.0f64..0.3],
                1usize..=3,
                proptest::option::of(proptest::sample::select(Mode::ALL.to_vec())),
                0usize..=3,
            ),
        )
            .prop_map(
                |(
                    slots,
                    (cap, ch, dis, eff),
                    (lo, span, start, wear),
                    (step, tv),
                    (cost, min_slots, initial, initial_wait),
                )| Problem {
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
                    switching: Switching {
                        cost,
                        min_slots,
                        initial,
                        initial_wait,
                    },
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
            // Hold is planned exactly when every sequence without it earns less (unless the
            // inverter is in Hold and the debounce keeps it there).
            let gain = best - best_without;
            let holds = plan.slots.iter().any(|s| s.mode == Mode::Hold);
            let kept = p.switching.initial == Some(Mode::Hold) && p.switching.initial_wait > 0;
            if kept {
            } else if gain > 1e-9 {
                prop_assert!(holds, "hold pays {gain} but is not planned: {plan:?}");
            } else if gain.abs() < 1e-13 {
                prop_assert!(!holds, "hold planned without paying: {plan:?}");
            }
        }

        #[test]
        fn reported_money_is_what_the_modes_earn(p in arb_problem(40)) {
            let plan = optimise(&p);
            let modes: Vec<Mode> = plan.slots.iter().map(|s| s.mode).collect();
            prop_assert!(feasible(&p, &modes), "the plan breaks the debounce: {modes:?}");
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
            for h in [cheapest_dearest_heuristic(&p), cheapest_hours_heuristic(&p)] {
                if feasible(&p, &h) {
                    let h = simulate(&p, &h).objective();
                    prop_assert!(best >= h - 1e-9, "dp {best} < heuristic {h}");
                }
            }
            let mut x = seed;
            let random: Vec<Mode> = (0..p.slots.len()).map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                Mode::ALL[(x >> 33) as usize % Mode::ALL.len()]
            }).collect();
            if feasible(&p, &random) {
                prop_assert!(best >= simulate(&p, &random).objective() - 1e-9);
            }
        }
    }
}
