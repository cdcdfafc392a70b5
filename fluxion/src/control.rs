//! The control loop: reads HA, plans, and drives the Solax mode selects safely (debug mode,
//! stale-data fallback to SelfUse, debounce, writes only what differs).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use tokio::sync::watch;

use crate::config::Config;
use crate::ha::{EntityState, HaClient, HaError};
use crate::plan::{self, Battery, Mode, Problem, SlotInput};
use crate::price::{self, PriceSlot};

pub const SELF_USE_MODE: &str = "Self Use Mode";
pub const MANUAL_MODE: &str = "Manual Mode";
pub const STOP: &str = "Stop Charge and Discharge";
pub const FORCE_CHARGE: &str = "Force Charge";
pub const FORCE_DISCHARGE: &str = "Force Discharge";

/// How many telemetry samples `/export` keeps (a day at the default interval).
const HISTORY: usize = 1440;

/// The entity ids derived from `inverter.entity_prefix`.
#[derive(Debug, Clone, Serialize)]
pub struct Entities {
    pub soc: String,
    pub pv_power: String,
    pub house_load: String,
    pub grid_import: String,
    pub grid_export: String,
    pub hardware_min_soc: String,
    pub use_mode: String,
    pub manual_mode: String,
}

impl Entities {
    pub fn new(prefix: &str) -> Entities {
        Entities {
            soc: format!("sensor.{prefix}_battery_capacity"),
            pv_power: format!("sensor.{prefix}_pv_power_total"),
            house_load: format!("sensor.{prefix}_house_load"),
            grid_import: format!("sensor.{prefix}_grid_import"),
            grid_export: format!("sensor.{prefix}_grid_export"),
            hardware_min_soc: format!("number.{prefix}_selfuse_discharge_min_soc"),
            use_mode: format!("select.{prefix}_charger_use_mode"),
            manual_mode: format!("select.{prefix}_manual_mode_select"),
        }
    }

    /// The select writes for `mode`, in a glitch-free order: the manual command is set before
    /// entering Manual Mode, and Self Use is entered before the manual command is cleared.
    pub fn writes(&self, mode: Mode) -> [(&str, &'static str); 2] {
        match mode {
            Mode::SelfUse => [(&self.use_mode, SELF_USE_MODE), (&self.manual_mode, STOP)],
            Mode::ForceCharge => [
                (&self.manual_mode, FORCE_CHARGE),
                (&self.use_mode, MANUAL_MODE),
            ],
            Mode::ForceDischarge => [
                (&self.manual_mode, FORCE_DISCHARGE),
                (&self.use_mode, MANUAL_MODE),
            ],
        }
    }
}

/// The mode the two selects currently express, if they express one of ours.
pub fn mode_of(use_mode: &str, manual: &str) -> Option<Mode> {
    match (use_mode, manual) {
        (SELF_USE_MODE, STOP) => Some(Mode::SelfUse),
        (MANUAL_MODE, FORCE_CHARGE) => Some(Mode::ForceCharge),
        (MANUAL_MODE, FORCE_DISCHARGE) => Some(Mode::ForceDischarge),
        _ => None,
    }
}

/// One measurement round, kept for `/export`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Telemetry {
    pub at: DateTime<Utc>,
    pub soc: Option<f64>,
    pub pv_power: Option<f64>,
    pub house_load: Option<f64>,
    pub grid_import: Option<f64>,
    pub grid_export: Option<f64>,
    pub hardware_min_soc: Option<f64>,
    pub use_mode: Option<String>,
    pub manual_mode: Option<String>,
}

/// A `select.select_option` call, sent or (in debug mode) only logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Command {
    pub at: DateTime<Utc>,
    pub entity_id: String,
    pub option: String,
    pub sent: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanSlotView {
    pub start: DateTime<Utc>,
    pub mode: Mode,
    pub buy: f64,
    pub sell: f64,
    pub soc_start: f64,
    pub soc_end: f64,
    pub cash: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanView {
    pub generated_at: DateTime<Utc>,
    pub start_soc: f64,
    pub min_soc: f64,
    pub max_soc: f64,
    pub cash: f64,
    pub terminal_value: f64,
    pub slots: Vec<PlanSlotView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub at: DateTime<Utc>,
    pub mode: Mode,
}

/// Everything the dashboard shows; replaced after every tick.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Status {
    pub updated_at: Option<DateTime<Utc>>,
    pub debug_mode: bool,
    pub soc: Option<f64>,
    pub current_mode: Option<Mode>,
    pub wanted_mode: Option<Mode>,
    /// Why nothing is commanded from the plan right now, if so.
    pub blocked: Option<String>,
    pub next_changes: Vec<Change>,
    pub recent_commands: Vec<Command>,
    /// When the plan behind `/api/plan` was computed: clients re-fetch it when this changes.
    pub plan_generated_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub plan: Option<PlanView>,
    pub time_zone: Option<String>,
}

/// Shared between the control loop (writer) and the web server (readers).
pub struct Shared {
    pub status: watch::Sender<Status>,
    pub history: Mutex<VecDeque<Telemetry>>,
    /// Turns true on SIGTERM/SIGINT: the loop and open event streams end on it.
    pub shutdown: watch::Sender<bool>,
}

impl Shared {
    pub fn new(debug_mode: bool) -> Arc<Shared> {
        let (status, _) = watch::channel(Status {
            debug_mode,
            ..Status::default()
        });
        Arc::new(Shared {
            status,
            shutdown: watch::channel(false).0,
            history: Mutex::new(VecDeque::new()),
        })
    }
}

/// What a tick did, for logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Plan followed; the inverter already was in the wanted mode.
    Unchanged(Mode),
    /// Commands were sent (or logged in debug mode) to reach this mode.
    Changed(Mode),
    /// The wanted mode differs but the last change was too recent.
    Held { wanted: Mode, until: DateTime<Utc> },
    /// Data was missing or stale: SelfUse fallback (commanded once per episode).
    Blocked(String),
}

pub struct Controller {
    cfg: Config,
    client: Option<HaClient>,
    entities: Entities,
    tz: Option<Tz>,
    last_change: Option<DateTime<Utc>>,
    fallback_done: bool,
    commands: VecDeque<Command>,
    shared: Arc<Shared>,
}

/// What one read round produced.
struct Readings {
    telemetry: Telemetry,
    soc: Result<f64, String>,
    prices: Vec<PriceSlot>,
    price_error: Option<String>,
}

impl Controller {
    pub fn new(cfg: Config, shared: Arc<Shared>) -> Controller {
        let client = cfg
            .ha_endpoint()
            .and_then(|(url, token)| match HaClient::new(&url, &token) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!("{e}");
                    None
                }
            });
        Controller::with_client(cfg, client, shared)
    }

    pub fn with_client(cfg: Config, client: Option<HaClient>, shared: Arc<Shared>) -> Controller {
        Controller {
            entities: Entities::new(&cfg.inverter.entity_prefix),
            cfg,
            client,
            tz: None,
            last_change: None,
            fallback_done: false,
            commands: VecDeque::new(),
            shared,
        }
    }

    /// Ticks every `update_interval_s` until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        if self.client.is_none() {
            tracing::warn!(
                "home assistant is not configured: set HA_URL and HA_TOKEN, or run as an add-on; \
                 showing no data and sending no commands"
            );
        }
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(
            self.cfg.control.update_interval_s,
        ));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            // A slow HA must not delay shutdown: the tick is dropped mid-request on stop.
            tokio::select! {
                outcome = self.tick(Utc::now()) => tracing::debug!(?outcome, "tick"),
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// One round: read, plan, decide, command. `now` is passed in so tests control time.
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Outcome {
        let Some(client) = self.client.clone() else {
            let reason = "home assistant is not configured (set HA_URL and HA_TOKEN)".to_string();
            self.publish(now, None, None, Some(reason.clone()), None);
            return Outcome::Blocked(reason);
        };
        if self.tz.is_none() {
            match client.time_zone().await {
                Ok(name) => match name.parse::<Tz>() {
                    Ok(tz) => self.tz = Some(tz),
                    Err(_) => {
                        tracing::warn!("unknown home assistant time zone {name:?}, using UTC")
                    }
                },
                Err(e) => return self.fallback(&client, now, None, format!("{e}")).await,
            }
        }
        let tz = self.tz.unwrap_or(chrono_tz::UTC);
        let r = self.read(&client, now, tz).await;
        let current = mode_of(
            r.telemetry.use_mode.as_deref().unwrap_or(""),
            r.telemetry.manual_mode.as_deref().unwrap_or(""),
        );
        {
            let mut h = self.shared.history.lock().expect("history lock");
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(r.telemetry.clone());
        }
        let soc = match r.soc {
            Ok(soc) => soc,
            Err(reason) => {
                return self
                    .fallback(&client, now, Some(&r.telemetry), reason)
                    .await
            }
        };
        if r.prices.is_empty() {
            let reason = match r.price_error {
                Some(e) => format!("no price for the current slot: {e}"),
                None => format!(
                    "no price for the current slot in {} (and no fixed prices configured)",
                    self.cfg.pricing.spot_price_entity
                ),
            };
            return self
                .fallback(&client, now, Some(&r.telemetry), reason)
                .await;
        }
        if let Some(e) = &r.price_error {
            tracing::warn!("{e}; planning on the fixed prices");
        }
        let hardware_min = r
            .telemetry
            .hardware_min_soc
            .unwrap_or(self.cfg.battery.hardware_min_soc);
        let view = self.plan(now, soc, hardware_min, &r.prices);
        let wanted = view.slots[0].mode;
        self.fallback_done = false;
        let outcome = if current == Some(wanted) {
            Outcome::Unchanged(wanted)
        } else {
            let min = Duration::seconds(self.cfg.control.min_mode_change_interval_s as i64);
            match self.last_change {
                Some(last) if now < last + min => {
                    tracing::info!(
                        "plan wants {wanted}, holding {} until {} (control.min_mode_change_interval_s)",
                        current.map(|m| m.to_string()).unwrap_or_else(|| "the current mode".into()),
                        last + min
                    );
                    Outcome::Held {
                        wanted,
                        until: last + min,
                    }
                }
                _ => {
                    tracing::info!(soc, price = view.slots[0].buy, "switching to {wanted}");
                    self.command(&client, now, &r.telemetry, wanted).await;
                    self.last_change = Some(now);
                    Outcome::Changed(wanted)
                }
            }
        };
        self.publish(now, Some(&r.telemetry), Some(wanted), None, Some(view));
        outcome
    }

    /// Reads every entity; only SOC, selects and prices matter for safety.
    async fn read(&self, client: &HaClient, now: DateTime<Utc>, tz: Tz) -> Readings {
        let e = &self.entities;
        let (soc, pv, load, import, export, hw, use_mode, manual, spot) = tokio::join!(
            client.state(&e.soc),
            client.state(&e.pv_power),
            client.state(&e.house_load),
            client.state(&e.grid_import),
            client.state(&e.grid_export),
            client.state(&e.hardware_min_soc),
            client.state(&e.use_mode),
            client.state(&e.manual_mode),
            client.state(&self.cfg.pricing.spot_price_entity),
        );
        let number = |r: &Result<EntityState, HaError>, name: &str| match r {
            Ok(s) => s.number(),
            Err(err) => {
                tracing::debug!("{name}: {err}");
                None
            }
        };
        let text = |r: Result<EntityState, HaError>| match r {
            Ok(s) => Some(s.state),
            Err(err) => {
                tracing::warn!("{err}");
                None
            }
        };
        let max_age = Duration::seconds(3 * self.cfg.control.update_interval_s as i64);
        let soc_value = match &soc {
            Err(err) => Err(format!("state of charge unavailable: {err}")),
            Ok(s) => match (s.number(), s.seen_at()) {
                (None, _) => Err(format!("state of charge {} is {:?}, not a number", s.entity_id, s.state)),
                (Some(_), None) => Err(format!("state of charge {} has no timestamp", s.entity_id)),
                (Some(_), Some(at)) if now - at > max_age => Err(format!(
                    "state of charge {} is stale: last reported {at}, more than 3 update intervals ({} s) ago",
                    s.entity_id,
                    max_age.num_seconds()
                )),
                (Some(v), Some(_)) if !(0.0..=100.0).contains(&v) => {
                    Err(format!("state of charge {} reads {v} %, outside 0-100", s.entity_id))
                }
                (Some(v), Some(_)) => Ok(v),
            },
        };
        let today = now.with_timezone(&tz).date_naive();
        let (points, price_error) = match spot {
            Ok(s) => match price::parse_attributes(&s.entity_id, &s.attributes, tz, today) {
                Ok(p) => (p, None),
                Err(err) => (Vec::new(), Some(err.to_string())),
            },
            Err(err) => (Vec::new(), Some(err.to_string())),
        };
        let prices = price::horizon(&points, &self.cfg.pricing, tz, now);
        Readings {
            telemetry: Telemetry {
                at: now,
                soc: soc.as_ref().ok().and_then(EntityState::number),
                pv_power: number(&pv, "pv power"),
                house_load: number(&load, "house load"),
                grid_import: number(&import, "grid import"),
                grid_export: number(&export, "grid export"),
                hardware_min_soc: number(&hw, "hardware min soc"),
                use_mode: text(use_mode),
                manual_mode: text(manual),
            },
            soc: soc_value,
            prices,
            price_error,
        }
    }

    fn plan(
        &self,
        now: DateTime<Utc>,
        soc: f64,
        hardware_min: f64,
        prices: &[PriceSlot],
    ) -> PlanView {
        let b = &self.cfg.battery;
        let hours = price::SLOT_MINUTES as f64 / 60.0;
        let min_soc = b.min_soc.max(hardware_min);
        let problem = Problem {
            battery: Battery {
                capacity_kwh: b.capacity_kwh,
                max_charge_kw: b.max_charge_kw,
                max_discharge_kw: b.max_discharge_kw,
                efficiency: b.efficiency,
                min_soc,
                max_soc: b.max_soc,
                wear_cost_per_kwh: b.wear_cost_per_kwh,
            },
            slots: prices
                .iter()
                .map(|p| SlotInput {
                    buy: p.buy,
                    sell: p.sell,
                    net_load_kwh: self.cfg.plan.expected_net_load_kw * hours,
                })
                .collect(),
            slot_hours: hours,
            start_soc: soc,
            soc_step_percent: self.cfg.plan.soc_step_percent,
            terminal_value_per_kwh: self.cfg.plan.terminal_value_per_kwh,
        };
        let plan = plan::optimise(&problem);
        PlanView {
            generated_at: now,
            start_soc: soc,
            min_soc,
            max_soc: b.max_soc,
            cash: plan.cash,
            terminal_value: plan.terminal_value,
            slots: prices
                .iter()
                .zip(&plan.slots)
                .map(|(p, s)| PlanSlotView {
                    start: p.start,
                    mode: s.mode,
                    buy: p.buy,
                    sell: p.sell,
                    soc_start: s.soc_start,
                    soc_end: s.soc_end,
                    cash: s.cash,
                })
                .collect(),
        }
    }

    /// Missing or stale data: SelfUse once per episode (the inverter's own safe behaviour),
    /// then only reads until the data is back.
    async fn fallback(
        &mut self,
        client: &HaClient,
        now: DateTime<Utc>,
        telemetry: Option<&Telemetry>,
        reason: String,
    ) -> Outcome {
        if !self.fallback_done {
            tracing::warn!("{reason}: falling back to SelfUse and retrying reads");
            let empty = Telemetry {
                at: now,
                soc: None,
                pv_power: None,
                house_load: None,
                grid_import: None,
                grid_export: None,
                hardware_min_soc: None,
                use_mode: None,
                manual_mode: None,
            };
            let t = telemetry.cloned().unwrap_or(empty);
            if mode_of(
                t.use_mode.as_deref().unwrap_or(""),
                t.manual_mode.as_deref().unwrap_or(""),
            ) != Some(Mode::SelfUse)
            {
                self.command(client, now, &t, Mode::SelfUse).await;
                self.last_change = Some(now);
            }
            self.fallback_done = true;
        } else {
            tracing::warn!("{reason}: still waiting for usable data");
        }
        self.publish(
            now,
            telemetry,
            Some(Mode::SelfUse),
            Some(reason.clone()),
            None,
        );
        Outcome::Blocked(reason)
    }

    /// Writes the selects that differ from `mode`; in debug mode only logs them.
    async fn command(&mut self, client: &HaClient, now: DateTime<Utc>, t: &Telemetry, mode: Mode) {
        for (entity, option) in self.entities.writes(mode) {
            let current = if entity == self.entities.use_mode {
                &t.use_mode
            } else {
                &t.manual_mode
            };
            if current.as_deref() == Some(option) {
                continue;
            }
            let mut cmd = Command {
                at: now,
                entity_id: entity.to_string(),
                option: option.to_string(),
                sent: false,
                error: None,
            };
            if self.cfg.control.debug_mode {
                tracing::info!(
                    "debug mode: would call select.select_option entity_id={entity} option={option:?}"
                );
            } else {
                match client.select_option(entity, option).await {
                    Ok(()) => {
                        tracing::info!(
                            "called select.select_option entity_id={entity} option={option:?}"
                        );
                        cmd.sent = true;
                    }
                    Err(e) => {
                        tracing::error!("{e}");
                        cmd.error = Some(e.to_string());
                    }
                }
            }
            if self.commands.len() == 50 {
                self.commands.pop_front();
            }
            self.commands.push_back(cmd);
        }
    }

    fn publish(
        &self,
        now: DateTime<Utc>,
        t: Option<&Telemetry>,
        wanted: Option<Mode>,
        blocked: Option<String>,
        plan: Option<PlanView>,
    ) {
        let current = t.and_then(|t| {
            mode_of(
                t.use_mode.as_deref().unwrap_or(""),
                t.manual_mode.as_deref().unwrap_or(""),
            )
        });
        let next_changes = plan
            .as_ref()
            .map(|p| {
                p.slots
                    .windows(2)
                    .filter(|w| w[0].mode != w[1].mode)
                    .map(|w| Change {
                        at: w[1].start,
                        mode: w[1].mode,
                    })
                    .take(5)
                    .collect()
            })
            .unwrap_or_default();
        let previous_plan = self.shared.status.borrow().plan.clone();
        // Keep showing the last plan while data is missing, marked by `blocked`.
        let plan = plan.or(previous_plan);
        let status = Status {
            updated_at: Some(now),
            debug_mode: self.cfg.control.debug_mode,
            soc: t.and_then(|t| t.soc),
            current_mode: current,
            wanted_mode: wanted,
            blocked,
            next_changes,
            recent_commands: self.commands.iter().rev().take(10).cloned().collect(),
            plan_generated_at: plan.as_ref().map(|p| p.generated_at),
            plan,
            time_zone: self.tz.map(|tz| tz.name().to_string()),
        };
        self.shared.status.send_replace(status);
    }

    /// Commands recorded so far (sent or, in debug mode, only logged).
    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        self.commands.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_from_selects() {
        assert_eq!(mode_of(SELF_USE_MODE, STOP), Some(Mode::SelfUse));
        // A leftover force command is fixed too, so a later switch to Manual Mode is safe.
        assert_eq!(mode_of(SELF_USE_MODE, FORCE_CHARGE), None);
        assert_eq!(mode_of(MANUAL_MODE, FORCE_CHARGE), Some(Mode::ForceCharge));
        assert_eq!(
            mode_of(MANUAL_MODE, FORCE_DISCHARGE),
            Some(Mode::ForceDischarge)
        );
        assert_eq!(mode_of(MANUAL_MODE, STOP), None);
        assert_eq!(mode_of("Feedin Priority", STOP), None);
    }

    #[test]
    fn write_order_never_passes_through_a_wrong_force() {
        let e = Entities::new("solax");
        assert_eq!(
            e.writes(Mode::ForceCharge),
            [
                ("select.solax_manual_mode_select", FORCE_CHARGE),
                ("select.solax_charger_use_mode", MANUAL_MODE)
            ]
        );
        assert_eq!(
            e.writes(Mode::SelfUse),
            [
                ("select.solax_charger_use_mode", SELF_USE_MODE),
                ("select.solax_manual_mode_select", STOP)
            ]
        );
    }
}
