//! The control loop: reads HA (states, prices, PV forecast, house load history), plans, and
//! drives the Solax mode selects so the inverter is never left in a mode nobody chose. Writes
//! are transactions checked by read-back (never `Manual Mode` before the manual select reads
//! the wanted command), failed writes back off and hand back an unsafe half-done state,
//! missing or stale data falls back to Self Use until the inverter reads Self Use, and a stop
//! hands the inverter back (`control.stop_mode`). Each tick also writes FluxION's own
//! `sensor.fluxion_*` entities (`publish.entities`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use tokio::sync::watch;

use crate::config::{Config, StopMode};
use crate::forecast::{self, DayCache, Interval};
use crate::ha::{EntityState, HaClient, HaError};
use crate::plan::{self, Battery, Mode, Problem, SlotInput, Switching};
use crate::price::{self, Currency, PriceSlot};

pub const SELF_USE_MODE: &str = "Self Use Mode";
pub const MANUAL_MODE: &str = "Manual Mode";
pub const STOP: &str = "Stop Charge and Discharge";
pub const FORCE_CHARGE: &str = "Force Charge";
pub const FORCE_DISCHARGE: &str = "Force Discharge";

/// How many telemetry samples `/export` keeps (a day at the default interval).
const HISTORY: usize = 1440;

/// On stop, a tick still running after this long is abandoned (it is only waiting on HA).
pub const STOP_TICK_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// On stop, the hand-back (read, up to two writes, read-back) must finish within this. With
/// the tick grace and the web server's 1 s (in parallel) the whole stop stays under 5 s;
/// Supervisor kills the add-on 10 s after SIGTERM.
pub const STOP_HAND_BACK: std::time::Duration = std::time::Duration::from_secs(3);
/// Longest wait between two write attempts after repeated failures.
const WRITE_BACKOFF_MAX_S: i64 = 300;
/// The largest recorder history answer read for one day of house load (a sensor written every
/// second is about 6 MB a day with `minimal_response`).
pub const HISTORY_MAX_BYTES: usize = 16 * 1024 * 1024;
/// A failed history read is tried again after this long (history is refreshed at most hourly).
const HISTORY_RETRY_S: i64 = 3600;
/// Unset `plan.mode_switch_cost`: the value of this much energy at the horizon's mean absolute
/// buy price, so the default scales with the currency.
const DEFAULT_SWITCH_COST_KWH: f64 = 0.1;
/// Home Assistant's recorder stores no state whose attributes exceed 16384 bytes, and keeps a
/// row for every change: the plan published as attributes stays well below that.
const PUBLISHED_ATTRIBUTES_MAX: usize = 8 * 1024;

/// The entity ids derived from `inverter.entity_prefix`.
#[derive(Debug, Clone, Serialize)]
pub struct Entities {
    pub soc: String,
    pub pv_power: String,
    pub house_load: String,
    pub grid_import: String,
    pub grid_export: String,
    pub battery_power: String,
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
            battery_power: format!("sensor.{prefix}_battery_power_charge"),
            hardware_min_soc: format!("number.{prefix}_selfuse_discharge_min_soc"),
            use_mode: format!("select.{prefix}_charger_use_mode"),
            manual_mode: format!("select.{prefix}_manual_mode_select"),
        }
    }

    /// The select writes for `mode`, in the safe order: the manual command is set before
    /// entering Manual Mode, and Self Use is entered before the manual command is cleared.
    pub fn writes(&self, mode: Mode) -> [(&str, &'static str); 2] {
        let manual = |option| {
            [
                (self.manual_mode.as_str(), option),
                (&self.use_mode, MANUAL_MODE),
            ]
        };
        match mode {
            Mode::SelfUse => [(&self.use_mode, SELF_USE_MODE), (&self.manual_mode, STOP)],
            Mode::ForceCharge => manual(FORCE_CHARGE),
            Mode::ForceDischarge => manual(FORCE_DISCHARGE),
            Mode::Hold => manual(STOP),
        }
    }
}

/// The mode the two selects currently express, if they express one of ours.
pub fn mode_of(use_mode: &str, manual: &str) -> Option<Mode> {
    match (use_mode, manual) {
        (SELF_USE_MODE, STOP) => Some(Mode::SelfUse),
        (MANUAL_MODE, FORCE_CHARGE) => Some(Mode::ForceCharge),
        (MANUAL_MODE, FORCE_DISCHARGE) => Some(Mode::ForceDischarge),
        (MANUAL_MODE, STOP) => Some(Mode::Hold),
        _ => None,
    }
}

/// The two Solax selects as read from HA (`None`: could not be read).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Selects {
    pub use_mode: Option<String>,
    pub manual_mode: Option<String>,
}

impl Selects {
    pub fn mode(&self) -> Option<Mode> {
        mode_of(self.use_mode.as_deref()?, self.manual_mode.as_deref()?)
    }

    /// Whether the inverter is in a mode FluxION sets and must hand back: Manual Mode with any
    /// command, or Self Use with a force command left over (a later Manual Mode would act on
    /// it).
    pub fn forced(&self) -> bool {
        match (self.use_mode.as_deref(), self.manual_mode.as_deref()) {
            (Some(MANUAL_MODE), _) => true,
            (Some(SELF_USE_MODE), Some(m)) => m != STOP,
            _ => false,
        }
    }

    /// Manual Mode with a command other than `wanted`'s: a state nobody wants right now.
    fn unsafe_for(&self, wanted: Mode) -> bool {
        self.use_mode.as_deref() == Some(MANUAL_MODE) && self.mode() != Some(wanted)
    }

    fn get(&self, which: Which) -> Option<&str> {
        match which {
            Which::Use => self.use_mode.as_deref(),
            Which::Manual => self.manual_mode.as_deref(),
        }
    }

    fn set(&mut self, which: Which, value: &str) {
        match which {
            Which::Use => self.use_mode = Some(value.into()),
            Which::Manual => self.manual_mode = Some(value.into()),
        }
    }
}

impl std::fmt::Display for Selects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} / {}",
            self.use_mode.as_deref().unwrap_or("unknown"),
            self.manual_mode.as_deref().unwrap_or("unknown")
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Which {
    Use,
    Manual,
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
    pub battery_power: Option<f64>,
    pub hardware_min_soc: Option<f64>,
    pub use_mode: Option<String>,
    pub manual_mode: Option<String>,
}

impl Telemetry {
    fn selects(&self) -> Selects {
        Selects {
            use_mode: self.use_mode.clone(),
            manual_mode: self.manual_mode.clone(),
        }
    }
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

/// Why the inverter is not in the mode FluxION wants: shown as the dashboard's banner.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub at: DateTime<Utc>,
    pub wanted: Mode,
    /// The selects after the failed attempt, e.g. `Manual Mode / Stop Charge and Discharge`.
    pub inverter: String,
    pub error: String,
    /// The banner: "inverter is in <selects>, FluxION wanted <mode>: <error>".
    pub message: String,
    /// Failed attempts in a row.
    pub attempts: u32,
    /// When the next attempt is made.
    pub retry_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanSlotView {
    pub start: DateTime<Utc>,
    pub mode: Mode,
    /// The spot price per kWh, before fees and VAT.
    pub spot: f64,
    pub buy: f64,
    pub sell: f64,
    /// True when the price came from `pricing.fixed_buy_prices`.
    pub fixed_price: bool,
    /// Forecast PV energy and house load in the slot, and load minus PV.
    pub pv_kwh: f64,
    pub load_kwh: f64,
    pub net_load_kwh: f64,
    /// Positive: imported; negative: exported.
    pub grid_kwh: f64,
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
    pub currency: Option<Currency>,
    pub cash: f64,
    pub terminal_value: f64,
    pub terminal_value_per_kwh: f64,
    /// cash + terminal value: what the plan is worth.
    pub value: f64,
    /// The same horizon and forecasts in Self Use only.
    pub self_use_value: f64,
    /// `value - self_use_value`.
    pub savings: f64,
    pub hours: f64,
    pub switches: usize,
    pub switch_cost: f64,
    /// Where the PV and load forecasts came from.
    pub pv_source: String,
    pub load_source: String,
    pub slots: Vec<PlanSlotView>,
}

/// The plan's money against Self Use only, for status, dashboard and export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValueSummary {
    pub plan: f64,
    pub self_use: f64,
    pub savings: f64,
    pub hours: f64,
    pub currency: Option<Currency>,
    /// e.g. "saves 31.20 Kč over the next 27 h".
    pub text: String,
}

impl ValueSummary {
    fn of(plan: &PlanView) -> ValueSummary {
        let symbol = plan
            .currency
            .as_ref()
            .map(|c| format!(" {}", c.symbol))
            .unwrap_or_default();
        let verb = if plan.savings >= 0.0 {
            "saves"
        } else {
            "costs"
        };
        ValueSummary {
            plan: plan.value,
            self_use: plan.self_use_value,
            savings: plan.savings,
            hours: plan.hours,
            currency: plan.currency.clone(),
            text: format!(
                "{verb} {:.2}{symbol} over the next {} h against Self Use only",
                plan.savings.abs(),
                plan.hours.round()
            ),
        }
    }
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
    /// The two selects as read, e.g. `Self Use Mode / Force Charge` (which is no mode of ours).
    pub inverter: Option<String>,
    pub wanted_mode: Option<Mode>,
    /// Why nothing is commanded from the plan right now, if so.
    pub blocked: Option<String>,
    /// A failed write or an inverter not in the wanted mode, until a write succeeds.
    pub failure: Option<Failure>,
    /// Which freshness rule judged the state of charge, and its verdict.
    pub freshness: Option<String>,
    pub next_changes: Vec<Change>,
    pub recent_commands: Vec<Command>,
    /// When the plan behind `/api/plan` was computed: clients re-fetch it when this changes.
    pub plan_generated_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub plan: Option<PlanView>,
    pub time_zone: Option<String>,
    /// `version` from HA's `/api/config`.
    pub core_version: Option<String>,
    /// The price currency (Home Assistant's, as the price sensor writes it).
    pub currency: Option<Currency>,
    /// The plan's money against Self Use only.
    pub value: Option<ValueSummary>,
    /// What is degraded but not blocking: forecasts missing, fixed prices, publishing failed.
    pub notes: Vec<String>,
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
    /// The inverter reads back the wanted mode after the writes (or, in debug mode, the
    /// writes were logged).
    Changed(Mode),
    /// The wanted mode differs but the last change was too recent.
    Held { wanted: Mode, until: DateTime<Utc> },
    /// The writes failed or did not read back; see `Status::failure`.
    Failed { wanted: Mode, error: String },
    /// Writes failed before; the next attempt waits until `until`.
    BackingOff { wanted: Mode, until: DateTime<Utc> },
    /// Data was missing or stale: Self Use fallback (written until it reads back).
    Blocked(String),
}

/// What the stop did to the inverter.
#[derive(Debug, Clone, PartialEq)]
pub enum HandBack {
    /// Debug mode: nothing is ever written.
    Debug,
    /// `control.stop_mode: keep`.
    Kept,
    NotConfigured,
    /// The inverter was in no mode FluxION sets.
    NotNeeded(Selects),
    /// Self Use written and read back.
    Done(Selects),
    Failed(String),
}

/// Consecutive write failures and when the next attempt may be made.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<DateTime<Utc>>,
}

impl Backoff {
    /// The tick an interval later starts a few milliseconds before `retry_at` (its time is
    /// read after the timer fires): a second of slack keeps "retry next tick" from slipping
    /// to the tick after.
    fn allows(&self, now: DateTime<Utc>) -> bool {
        self.retry_at
            .is_none_or(|at| now + Duration::seconds(1) >= at)
    }

    /// Records a failure: waits one update interval, doubling per failure, at most 5 min.
    fn failed(&mut self, now: DateTime<Utc>, interval_s: u64) -> DateTime<Utc> {
        self.failures += 1;
        let base = interval_s as i64;
        let delay = base
            .saturating_mul(1 << (self.failures - 1).min(20))
            .min(WRITE_BACKOFF_MAX_S.max(base));
        let at = now + Duration::seconds(delay);
        self.retry_at = Some(at);
        at
    }

    fn succeeded(&mut self) {
        *self = Backoff::default();
    }
}

/// The end of a write transaction: what the selects read afterwards.
struct Transaction {
    selects: Selects,
    /// At least one write took effect (so the inverter changed).
    wrote: bool,
    result: Result<(), String>,
}

pub struct Controller {
    cfg: Config,
    client: Option<HaClient>,
    entities: Entities,
    tz: Option<Tz>,
    core_version: Option<String>,
    /// `currency` from `/api/config`.
    ha_currency: Option<String>,
    currency: Option<Currency>,
    config_read: bool,
    /// House load per local day, read from the recorder once per day.
    load_days: DayCache,
    /// A history read failed: the next try waits until then.
    load_retry_at: Option<DateTime<Utc>>,
    load_error: Option<String>,
    /// Notes of the current tick (`Status::notes`).
    notes: Vec<String>,
    /// Why publishing `sensor.fluxion_*` failed last time.
    publish_error: Option<String>,
    last_change: Option<DateTime<Utc>>,
    /// The inverter read back Self Use during the current stretch of missing data.
    fallback_done: bool,
    has_plan: bool,
    backoff: Backoff,
    failure: Option<Failure>,
    freshness: Option<String>,
    /// The selects as last read, for the stop when HA cannot be read then.
    last_selects: Selects,
    commands: VecDeque<Command>,
    shared: Arc<Shared>,
}

/// What one read round produced.
struct Readings {
    telemetry: Telemetry,
    soc: Result<f64, String>,
    /// The freshness rule that judged the SOC and its verdict.
    freshness: String,
    prices: Vec<PriceSlot>,
    price_error: Option<String>,
    /// The PV forecast and where it came from, or why there is none.
    pv: Result<(Vec<Interval>, String), String>,
    /// kW per unit of the house load sensor (W: 0.001), or why it cannot be used.
    load_unit: Result<f64, String>,
}

/// Judges the state of charge reading. With `last_reported` (core 2024.4 and later, set on
/// every write even when the value holds still) the SOC's own report must be newer than
/// `max_age`. Without it (core 2024.3 and older), `last_updated` moves only when a value
/// changes, so a SOC that holds still (full battery, idle night) is not stale by itself: it
/// must be available and the integration must have updated one of its sensors within
/// `max_age`. Returns the value and the rule that judged it, or why it cannot be used.
pub fn judge_soc(
    soc: &EntityState,
    integration: &[&EntityState],
    now: DateTime<Utc>,
    max_age: Duration,
) -> Result<(f64, String), String> {
    let id = &soc.entity_id;
    if !soc.available() {
        return Err(format!("state of charge {id} is {:?}", soc.state));
    }
    let Some(value) = soc.number() else {
        return Err(format!(
            "state of charge {id} is {:?}, not a number",
            soc.state
        ));
    };
    if !(0.0..=100.0).contains(&value) {
        return Err(format!(
            "state of charge {id} reads {value} %, outside 0-100"
        ));
    }
    let limit = max_age.num_seconds();
    if let Some(at) = soc.last_reported {
        let age = (now - at).num_seconds();
        return if age > limit {
            Err(format!(
                "state of charge {id} is stale: last reported at {at}, {age} s ago \
                 (control.max_data_age_s {limit} s)"
            ))
        } else {
            Ok((
                value,
                format!("last_reported of {id}: {age} s ago (limit {limit} s)"),
            ))
        };
    }
    let newest = std::iter::once(soc)
        .chain(integration.iter().copied())
        .filter(|s| s.available())
        .filter_map(|s| s.last_updated.map(|at| (at, &s.entity_id)))
        .max();
    let Some((at, by)) = newest else {
        return Err(format!(
            "state of charge {id} has no timestamp to judge its age by"
        ));
    };
    let age = (now - at).num_seconds();
    if age > limit {
        Err(format!(
            "state of charge {id} is stale: no last_reported (core before 2024.4) and the \
             integration's newest update was {by} at {at}, {age} s ago \
             (control.max_data_age_s {limit} s)"
        ))
    } else {
        Ok((
            value,
            format!(
                "no last_reported (core before 2024.4): {id} available and the integration \
                 updated {by} {age} s ago (limit {limit} s)"
            ),
        ))
    }
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
            core_version: None,
            ha_currency: None,
            currency: None,
            config_read: false,
            load_days: DayCache::new(),
            load_retry_at: None,
            load_error: None,
            notes: Vec::new(),
            publish_error: None,
            last_change: None,
            fallback_done: false,
            has_plan: false,
            backoff: Backoff::default(),
            failure: None,
            freshness: None,
            last_selects: Selects::default(),
            commands: VecDeque::new(),
            shared,
        }
    }

    /// Ticks every `update_interval_s` until `stop` turns true, then hands the inverter back
    /// (`hand_back`). A tick running at the stop may finish its writes for `STOP_TICK_GRACE`;
    /// it starts no new ones.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> HandBack {
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
                // A stop wins over a due tick: no new round starts once stopping.
                biased;
                _ = stop.wait_for(|s| *s) => break,
                _ = interval.tick() => {}
            }
            let mut stopping = stop.clone();
            let grace = async move {
                let _ = stopping.wait_for(|s| *s).await;
                tokio::time::sleep(STOP_TICK_GRACE).await;
            };
            tokio::select! {
                outcome = self.tick(Utc::now()) => tracing::debug!(?outcome, "tick"),
                _ = grace => {
                    tracing::warn!(
                        "stopping: abandoned a tick still waiting for home assistant after {} s",
                        STOP_TICK_GRACE.as_secs()
                    );
                    break;
                }
            }
        }
        self.hand_back(STOP_HAND_BACK).await
    }

    fn stopping(&self) -> bool {
        *self.shared.shutdown.borrow()
    }

    /// One round: read, plan, decide, command, then publish FluxION's own entities. `now` is
    /// passed in so tests control time.
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Outcome {
        self.notes.clear();
        let outcome = self.decide(now).await;
        if !self.stopping() {
            self.publish_entities().await;
        }
        outcome
    }

    async fn decide(&mut self, now: DateTime<Utc>) -> Outcome {
        let Some(client) = self.client.clone() else {
            let reason = "home assistant is not configured (set HA_URL and HA_TOKEN)".to_string();
            self.publish(now, None, None, Some(reason.clone()), None);
            return Outcome::Blocked(reason);
        };
        if !self.config_read {
            match client.core_config().await {
                Ok(core) => {
                    self.config_read = true;
                    match core.time_zone.parse::<Tz>() {
                        Ok(tz) => self.tz = Some(tz),
                        Err(_) => tracing::warn!(
                            "unknown home assistant time zone {:?}, using UTC",
                            core.time_zone
                        ),
                    }
                    if let Some(v) = &core.version {
                        tracing::info!(version = %v, "home assistant core");
                    }
                    self.core_version = core.version;
                    self.ha_currency = core.currency;
                }
                Err(e) => return self.fallback(&client, now, None, format!("{e}")).await,
            }
        }
        let tz = self.tz.unwrap_or(chrono_tz::UTC);
        let r = self.read(&client, now, tz).await;
        self.freshness = Some(r.freshness.clone());
        let selects = r.telemetry.selects();
        if selects.use_mode.is_some() && selects.manual_mode.is_some() {
            self.last_selects = selects.clone();
        }
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
            self.notes
                .push(format!("{e}; planning on the fixed prices"));
        }
        let load = self.load_forecast(&client, now, tz, &r.load_unit).await;
        let hardware_min = r
            .telemetry
            .hardware_min_soc
            .unwrap_or(self.cfg.battery.hardware_min_soc);
        let current = selects.mode();
        let view = self.plan(now, soc, hardware_min, &r.prices, &r.pv, &load, current);
        let wanted = view.slots[0].mode;
        self.has_plan = true;
        self.fallback_done = false;
        let outcome = if current == Some(wanted) {
            self.backoff.succeeded();
            self.failure = None;
            Outcome::Unchanged(wanted)
        } else if let Some(until) = self.debounce_until(now) {
            tracing::info!(
                "plan wants {wanted}, holding {selects} until {until} (control.min_mode_change_interval_s)"
            );
            Outcome::Held { wanted, until }
        } else if !self.backoff.allows(now) {
            let until = self.backoff.retry_at.expect("backing off");
            tracing::warn!(
                "plan wants {wanted}, inverter is in {selects}; after {} failed attempts the next is at {until}",
                self.backoff.failures
            );
            Outcome::BackingOff { wanted, until }
        } else {
            tracing::info!(soc, price = view.slots[0].buy, "switching to {wanted}");
            let tx = self.transact(&client, now, wanted, &selects, false).await;
            if self.stopping() && tx.result.is_err() {
                return Outcome::Blocked("stopping".into());
            }
            self.settle(now, wanted, tx)
        };
        let telemetry = Telemetry {
            use_mode: self.last_selects.use_mode.clone(),
            manual_mode: self.last_selects.manual_mode.clone(),
            ..r.telemetry
        };
        self.publish(now, Some(&telemetry), Some(wanted), None, Some(view));
        outcome
    }

    /// Books a transaction's result: success clears the failure, failure backs off.
    fn settle(&mut self, now: DateTime<Utc>, wanted: Mode, tx: Transaction) -> Outcome {
        if tx.selects.use_mode.is_some() && tx.selects.manual_mode.is_some() {
            self.last_selects = tx.selects.clone();
        }
        // Debug mode debounces its logged changes like real ones.
        if tx.wrote || self.cfg.control.debug_mode {
            self.last_change = Some(now);
        }
        match tx.result {
            Ok(()) => {
                self.backoff.succeeded();
                self.failure = None;
                Outcome::Changed(wanted)
            }
            Err(error) => {
                let retry_at = self.backoff.failed(now, self.cfg.control.update_interval_s);
                let inverter = tx.selects.to_string();
                let message = format!(
                    "inverter is in {inverter}, FluxION wanted {}: {error}",
                    wanted.label()
                );
                tracing::error!(
                    "{message} (attempt {}, next at {retry_at})",
                    self.backoff.failures
                );
                self.failure = Some(Failure {
                    at: now,
                    wanted,
                    inverter,
                    error: error.clone(),
                    message,
                    attempts: self.backoff.failures,
                    retry_at: Some(retry_at),
                });
                Outcome::Failed { wanted, error }
            }
        }
    }

    /// Reads every entity; only SOC, selects and prices matter for safety.
    async fn read(&mut self, client: &HaClient, now: DateTime<Utc>, tz: Tz) -> Readings {
        let e = &self.entities;
        let (soc, pv, load, import, export, battery, hw, use_mode, manual, spot, pv_forecast) = tokio::join!(
            client.state(&e.soc),
            client.state(&e.pv_power),
            client.state(&e.house_load),
            client.state(&e.grid_import),
            client.state(&e.grid_export),
            client.state(&e.battery_power),
            client.state(&e.hardware_min_soc),
            client.state(&e.use_mode),
            client.state(&e.manual_mode),
            client.state(&self.cfg.pricing.spot_price_entity),
            self.read_pv(client),
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
        let max_age = Duration::seconds(self.cfg.control.max_data_age_s as i64);
        let integration: Vec<&EntityState> = [&pv, &load, &import, &export, &battery]
            .into_iter()
            .filter_map(|r| r.as_ref().ok())
            .collect();
        let soc_value = match &soc {
            Err(err) => Err(format!("state of charge unavailable: {err}")),
            Ok(s) => judge_soc(s, &integration, now, max_age),
        };
        let soc_value = soc_value.map(|(value, rule)| {
            tracing::debug!("freshness: {rule}");
            (value, rule)
        });
        let today = now.with_timezone(&tz).date_naive();
        let (points, price_error) = match spot {
            Ok(s) => {
                let parsed =
                    price::read_unit(&s.entity_id, &s.attributes, self.ha_currency.as_deref())
                        .and_then(|unit| {
                            let mut points =
                                price::parse_attributes(&s.entity_id, &s.attributes, tz, today)?;
                            price::scale(&mut points, unit.per_kwh);
                            Ok((points, unit.currency))
                        });
                match parsed {
                    Ok((p, currency)) => {
                        self.currency = Some(currency);
                        (p, None)
                    }
                    Err(err) => (Vec::new(), Some(err.to_string())),
                }
            }
            Err(err) => (Vec::new(), Some(err.to_string())),
        };
        if self.currency.is_none() {
            self.currency = self.ha_currency.as_deref().map(Currency::new);
        }
        let load_unit = match &load {
            Ok(s) => match s
                .attributes
                .get("unit_of_measurement")
                .and_then(serde_json::Value::as_str)
            {
                Some("W") => Ok(0.001),
                Some("kW") => Ok(1.0),
                other => Err(format!(
                    "{} is in {:?}, not W or kW",
                    e.house_load,
                    other.unwrap_or("no unit")
                )),
            },
            Err(err) => Err(format!("{} cannot be read: {err}", e.house_load)),
        };
        let prices = price::horizon(&points, &self.cfg.pricing, tz, now);
        let freshness = match &soc_value {
            Ok((_, rule)) => rule.clone(),
            Err(reason) => reason.clone(),
        };
        Readings {
            telemetry: Telemetry {
                at: now,
                soc: soc.as_ref().ok().and_then(EntityState::number),
                pv_power: number(&pv, "pv power"),
                house_load: number(&load, "house load"),
                grid_import: number(&import, "grid import"),
                grid_export: number(&export, "grid export"),
                battery_power: number(&battery, "battery power"),
                hardware_min_soc: number(&hw, "hardware min soc"),
                use_mode: text(use_mode),
                manual_mode: text(manual),
            },
            soc: soc_value.map(|(v, _)| v),
            freshness,
            prices,
            price_error,
            pv: pv_forecast,
            load_unit,
        }
    }

    /// The PV forecast from `forecast.pv_entities` (empty: the Solcast entities when they
    /// exist; `none`: no forecast), with a description of where it came from.
    async fn read_pv(&self, client: &HaClient) -> Result<(Vec<Interval>, String), String> {
        let configured = &self.cfg.forecast.pv_entities;
        if configured.iter().any(|e| e == "none") {
            return Ok((Vec::new(), "none (forecast.pv_entities: none)".into()));
        }
        let auto = configured.is_empty();
        let entities: Vec<&str> = if auto {
            forecast::SOLCAST_ENTITIES.to_vec()
        } else {
            configured.iter().map(String::as_str).collect()
        };
        let states = futures_util::future::join_all(entities.iter().map(|e| client.state(e))).await;
        let band = self.cfg.forecast.pv_estimate;
        let mut all = Vec::new();
        let mut used = Vec::new();
        for (entity, state) in entities.iter().zip(states) {
            match state {
                Ok(s) => {
                    all.extend(forecast::pv_intervals(entity, &s.attributes, band)?);
                    used.push(*entity);
                }
                // Auto-detection: Solcast's tomorrow sensor alone may be missing.
                Err(HaError::EntityNotFound { .. }) if auto && !used.is_empty() => {}
                Err(HaError::EntityNotFound { .. }) if auto => {
                    return Err(format!(
                        "no PV forecast: {entity} (Solcast) does not exist in Home Assistant; \
                         set forecast.pv_entities to your forecast sensors, or to none"
                    ))
                }
                Err(e) => return Err(format!("no PV forecast: {e}")),
            }
        }
        Ok((all, format!("{} ({})", used.join(", "), band.key())))
    }

    /// When the debounce lets the mode change again, if it does not now. A second of slack:
    /// ticks an interval apart start a few milliseconds early.
    fn debounce_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let min = Duration::seconds(self.cfg.control.min_mode_change_interval_s as i64);
        self.last_change
            .map(|l| l + min)
            .filter(|&u| now + Duration::seconds(1) < u)
    }

    /// The house load profile (kW per quarter hour of the local day) from the recorder, or why
    /// there is none. Reads the days not cached yet, newest first, for at most twice the
    /// client's timeout per tick (the rest on the next tick), each answer bounded by
    /// `HISTORY_MAX_BYTES`; a failure is retried after an hour.
    async fn load_forecast(
        &mut self,
        client: &HaClient,
        now: DateTime<Utc>,
        tz: Tz,
        unit: &Result<f64, String>,
    ) -> Result<[f64; 96], String> {
        let days = self.cfg.forecast.load_history_days;
        let entity = self.entities.house_load.clone();
        let wanted = forecast::history_days(now.with_timezone(&tz).date_naive(), days);
        self.load_days.retain(|d, _| wanted.contains(d));
        let kw_per_unit = unit.clone()?;
        let due = self.load_retry_at.is_none_or(|at| now >= at);
        if due {
            let mut history = client.clone();
            history.timeout = client.timeout * 2;
            history.max_body = HISTORY_MAX_BYTES;
            let budget = client.timeout * 2;
            let started = std::time::Instant::now();
            let missing: Vec<_> = wanted
                .iter()
                .filter(|d| !self.load_days.contains_key(d))
                .copied()
                .collect();
            for date in &missing {
                if started.elapsed() > budget || self.stopping() {
                    break;
                }
                let Some((start, end)) = forecast::local_day(*date, tz) else {
                    continue;
                };
                match history.history(&entity, start, end).await {
                    Ok(rows) => {
                        let day = forecast::day_load(&rows, start, end, tz, kw_per_unit);
                        self.load_days.insert(*date, day);
                        self.load_error = None;
                        self.load_retry_at = None;
                    }
                    Err(e) => {
                        tracing::warn!("reading the house load history for {date}: {e}");
                        self.load_error = Some(format!("history of {entity} for {date}: {e}"));
                        self.load_retry_at = Some(now + Duration::seconds(HISTORY_RETRY_S));
                        break;
                    }
                }
            }
        }
        let profile = forecast::load_profile(self.load_days.values());
        match (profile, &self.load_error) {
            (Some(p), None) => Ok(p),
            (Some(p), Some(e)) => {
                self.notes.push(format!(
                    "load forecast from {} of {days} days of history; {e}",
                    self.load_days.len()
                ));
                Ok(p)
            }
            (None, Some(e)) => Err(e.clone()),
            (None, None) => Err(format!(
                "{entity} has less than 12 hours of history in the last {days} days"
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn plan(
        &mut self,
        now: DateTime<Utc>,
        soc: f64,
        hardware_min: f64,
        prices: &[PriceSlot],
        pv: &Result<(Vec<Interval>, String), String>,
        load: &Result<[f64; 96], String>,
        current: Option<Mode>,
    ) -> PlanView {
        let b = &self.cfg.battery;
        let hours = price::SLOT_MINUTES as f64 / 60.0;
        let tz = self.tz.unwrap_or(chrono_tz::UTC);
        let min_soc = b.min_soc.max(hardware_min);
        let starts: Vec<DateTime<Utc>> = prices.iter().map(|p| p.start).collect();
        let (pv_kwh, pv_source): (Vec<f64>, String) = match pv {
            Ok((intervals, source)) => {
                let per = forecast::per_slot(intervals, &starts);
                let uncovered = per.iter().filter(|v| v.is_none()).count();
                if uncovered > 0 && !intervals.is_empty() {
                    self.notes.push(format!(
                        "the PV forecast ({source}) does not cover {uncovered} of {} slots; \
                         no PV is assumed there",
                        starts.len()
                    ));
                }
                (
                    per.into_iter().map(|v| v.unwrap_or(0.0)).collect(),
                    source.clone(),
                )
            }
            Err(e) => {
                self.notes.push(e.clone());
                (vec![0.0; starts.len()], "none".into())
            }
        };
        let fallback_kw = self.cfg.plan.expected_net_load_kw;
        let (load_kwh, load_source): (Vec<f64>, String) = match load {
            Ok(profile) => (
                starts
                    .iter()
                    .map(|&t| profile[forecast::bin(t, tz)] * hours)
                    .collect(),
                format!(
                    "{} history, {} days averaged per 15 minutes",
                    self.entities.house_load,
                    self.load_days.len()
                ),
            ),
            Err(e) => {
                self.notes.push(format!(
                    "no load forecast ({e}); planning with plan.expected_net_load_kw ({fallback_kw} kW)"
                ));
                (
                    vec![fallback_kw * hours; starts.len()],
                    format!("plan.expected_net_load_kw ({fallback_kw} kW)"),
                )
            }
        };
        let slots: Vec<SlotInput> = prices
            .iter()
            .enumerate()
            .map(|(i, p)| SlotInput {
                buy: p.buy,
                sell: p.sell,
                net_load_kwh: load_kwh[i] - pv_kwh[i],
            })
            .collect();
        let switching = self.switching(now, prices, current);
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
            slots,
            slot_hours: hours,
            start_soc: soc,
            soc_step_percent: self.cfg.plan.soc_step_percent,
            terminal_value_per_kwh: self.cfg.plan.terminal_value_per_kwh,
            switching,
        };
        let plan = plan::optimise(&problem);
        let self_use = plan::simulate(&problem, &vec![Mode::SelfUse; problem.slots.len()]);
        PlanView {
            generated_at: now,
            start_soc: soc,
            min_soc,
            max_soc: b.max_soc,
            currency: self.currency.clone(),
            cash: plan.cash,
            terminal_value: plan.terminal_value,
            terminal_value_per_kwh: plan.terminal_value_per_kwh,
            value: plan.value(),
            self_use_value: self_use.value(),
            savings: plan.value() - self_use.value(),
            hours: prices.len() as f64 * hours,
            switches: plan.switches,
            switch_cost: switching.cost,
            pv_source,
            load_source,
            slots: prices
                .iter()
                .zip(&plan.slots)
                .enumerate()
                .map(|(i, (p, s))| PlanSlotView {
                    start: p.start,
                    mode: s.mode,
                    spot: p.spot,
                    buy: p.buy,
                    sell: p.sell,
                    fixed_price: p.fixed,
                    pv_kwh: pv_kwh[i],
                    load_kwh: load_kwh[i],
                    net_load_kwh: problem.slots[i].net_load_kwh,
                    grid_kwh: s.grid_kwh,
                    soc_start: s.soc_start,
                    soc_end: s.soc_end,
                    cash: s.cash,
                })
                .collect(),
        }
    }

    /// The switching rules for the DP: the cost per switch (`plan.mode_switch_cost`, unset: the
    /// value of `DEFAULT_SWITCH_COST_KWH` at the mean absolute buy price), the debounce in
    /// slots (rounded up) and how many slots it still blocks from the current mode.
    fn switching(
        &self,
        now: DateTime<Utc>,
        prices: &[PriceSlot],
        current: Option<Mode>,
    ) -> Switching {
        let slot = price::SLOT_MINUTES * 60;
        let interval = self.cfg.control.min_mode_change_interval_s as i64;
        let cost = self.cfg.plan.mode_switch_cost.unwrap_or_else(|| {
            let n = prices.len().max(1) as f64;
            DEFAULT_SWITCH_COST_KWH * prices.iter().map(|p| p.buy.abs()).sum::<f64>() / n
        });
        let initial_wait = match (current, self.debounce_until(now), prices.first()) {
            (Some(_), Some(until), Some(first)) => {
                // Slot 0 is blocked (the change would be now); slot t from its start.
                let mut t = 1;
                while first.start + Duration::seconds(slot * t as i64) < until {
                    t += 1;
                }
                t
            }
            _ => 0,
        };
        Switching {
            cost,
            min_slots: (interval.max(1) as u64).div_ceil(slot as u64) as usize,
            initial: current,
            initial_wait,
        }
    }

    /// Missing or stale data: Self Use (the inverter's own safe behaviour) until the inverter
    /// reads back Self Use, retried with back-off; then only reads until the data is back.
    /// At start (no plan yet) this is also the recovery from a run that ended in Manual Mode.
    async fn fallback(
        &mut self,
        client: &HaClient,
        now: DateTime<Utc>,
        telemetry: Option<&Telemetry>,
        reason: String,
    ) -> Outcome {
        let selects = telemetry.map(Telemetry::selects).unwrap_or_default();
        if selects.use_mode.is_some() && selects.manual_mode.is_some() {
            self.last_selects = selects.clone();
        }
        let mut done_now = false;
        if selects.mode() == Some(Mode::SelfUse) {
            done_now = !self.fallback_done;
            self.fallback_done = true;
            self.backoff.succeeded();
            self.failure = None;
        } else if selects.forced() {
            // Something put it back into Manual Mode: not done any more.
            self.fallback_done = false;
        }
        if done_now {
            tracing::warn!("{reason}: inverter is in Self Use; retrying reads");
        } else if self.fallback_done {
            tracing::warn!("{reason}: still waiting for usable data");
        } else if !self.backoff.allows(now) {
            tracing::warn!(
                "{reason}: Self Use fallback failed {} times, next attempt at {}",
                self.backoff.failures,
                self.backoff.retry_at.expect("backing off")
            );
        } else if !self.stopping() {
            if !self.has_plan && selects.use_mode.as_deref() == Some(MANUAL_MODE) {
                tracing::warn!(
                    "inverter found in {selects} with no plan yet (the last run stopped without \
                     handing back, or crashed): {reason}; handing back to Self Use Mode until \
                     the first plan"
                );
            } else {
                tracing::warn!("{reason}: falling back to Self Use and retrying reads");
            }
            let tx = self
                .transact(client, now, Mode::SelfUse, &selects, false)
                .await;
            let ok = tx.result.is_ok();
            if ok && !self.cfg.control.debug_mode {
                tracing::info!("fallback done: the selects read back {}", tx.selects);
            }
            if !self.stopping() {
                self.settle(now, Mode::SelfUse, tx);
                self.fallback_done = ok;
            }
        }
        let shown = telemetry.map(|t| Telemetry {
            use_mode: self.last_selects.use_mode.clone(),
            manual_mode: self.last_selects.manual_mode.clone(),
            ..t.clone()
        });
        self.publish(
            now,
            shown.as_ref(),
            Some(Mode::SelfUse),
            Some(reason.clone()),
            None,
        );
        Outcome::Blocked(reason)
    }

    async fn read_selects(&self, client: &HaClient) -> Result<Selects, HaError> {
        let (u, m) = tokio::join!(
            client.state(&self.entities.use_mode),
            client.state(&self.entities.manual_mode)
        );
        Ok(Selects {
            use_mode: Some(u?.state),
            manual_mode: Some(m?.state),
        })
    }

    fn record(&mut self, cmd: Command) {
        if self.commands.len() == 50 {
            self.commands.pop_front();
        }
        self.commands.push_back(cmd);
    }

    /// One checked `select.select_option`, logged and kept in the recent commands.
    async fn write_select(
        &mut self,
        client: &HaClient,
        now: DateTime<Utc>,
        entity: &str,
        option: &str,
    ) -> Result<(), String> {
        let result = client.select_option(entity, option).await;
        match &result {
            Ok(()) => {
                tracing::info!("called select.select_option entity_id={entity} option={option:?}")
            }
            Err(e) => tracing::error!(
                "select.select_option entity_id={entity} option={option:?} failed: {e}"
            ),
        }
        let error = result.err().map(|e| e.to_string());
        self.record(Command {
            at: now,
            entity_id: entity.into(),
            option: option.into(),
            sent: error.is_none(),
            error: error.clone(),
        });
        error.map_or(Ok(()), Err)
    }

    /// Drives the selects to `mode` as one transaction: the writes in the safe order, each
    /// checked against HA's answer; `Manual Mode` only after the manual select reads back the
    /// wanted command; stop at the first failure; read both back; a failure that leaves Manual
    /// Mode with another command hands back to Self Use. Debug mode only logs. A stop in
    /// progress starts no write unless `at_stop`.
    async fn transact(
        &mut self,
        client: &HaClient,
        now: DateTime<Utc>,
        mode: Mode,
        known: &Selects,
        at_stop: bool,
    ) -> Transaction {
        let mut current = known.clone();
        if current.use_mode.is_none() || current.manual_mode.is_none() {
            match self.read_selects(client).await {
                Ok(s) => current = s,
                Err(e) => {
                    return Transaction {
                        selects: current,
                        wrote: false,
                        result: Err(format!("cannot read the mode selects: {e}")),
                    }
                }
            }
        }
        let writes: Vec<(String, &'static str, Which)> = self
            .entities
            .writes(mode)
            .into_iter()
            .map(|(e, o)| {
                let which = if e == self.entities.use_mode {
                    Which::Use
                } else {
                    Which::Manual
                };
                (e.to_string(), o, which)
            })
            .filter(|(_, o, which)| current.get(*which) != Some(*o))
            .collect();
        if self.cfg.control.debug_mode {
            for (entity, option, _) in writes {
                tracing::info!(
                    "debug mode: would call select.select_option entity_id={entity} option={option:?}"
                );
                self.record(Command {
                    at: now,
                    entity_id: entity,
                    option: option.into(),
                    sent: false,
                    error: None,
                });
            }
            return Transaction {
                selects: current,
                wrote: false,
                result: Ok(()),
            };
        }
        let wanted_manual = self.entities.writes(mode)[match mode {
            Mode::SelfUse => 1,
            _ => 0,
        }]
        .1;
        let mut wrote = false;
        let mut error = None;
        for (entity, option, which) in writes {
            if !wrote && !at_stop && self.stopping() {
                error = Some("stopping: no new writes".to_string());
                break;
            }
            if option == MANUAL_MODE {
                // Never Manual Mode on a command nobody checked: read the manual select now.
                match client.state(&self.entities.manual_mode).await {
                    Ok(s) if s.state == wanted_manual => {}
                    Ok(s) => {
                        error = Some(format!(
                            "not entering Manual Mode: {} reads {:?}, not {wanted_manual:?}",
                            self.entities.manual_mode, s.state
                        ));
                        break;
                    }
                    Err(e) => {
                        error = Some(format!(
                            "not entering Manual Mode: cannot read {}: {e}",
                            self.entities.manual_mode
                        ));
                        break;
                    }
                }
            }
            match self.write_select(client, now, &entity, option).await {
                Ok(()) => {
                    wrote = true;
                    current.set(which, option);
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let read_back = self.read_selects(client).await;
        let mut selects = match &read_back {
            Ok(s) => s.clone(),
            Err(_) => current,
        };
        let mut error = match (error, &read_back) {
            (Some(e), _) => Some(e),
            (None, Err(e)) => Some(format!(
                "the writes were answered, but reading them back failed: {e}"
            )),
            (None, Ok(s)) if s.mode() != Some(mode) => {
                Some(format!("the selects read back {s}, not {}", mode.label()))
            }
            (None, Ok(_)) => None,
        };
        if let Some(e) = &mut error {
            // Half done and unsafe (still forcing, but not what is wanted): hand back now.
            if mode != Mode::SelfUse && selects.unsafe_for(mode) {
                let entity = self.entities.use_mode.clone();
                match self.write_select(client, now, &entity, SELF_USE_MODE).await {
                    Ok(()) => {
                        tracing::warn!("handed back to {SELF_USE_MODE} after the failure");
                        wrote = true;
                        e.push_str("; handed back to Self Use Mode");
                    }
                    Err(e2) => {
                        e.push_str(&format!("; handing back to Self Use Mode failed too: {e2}"));
                    }
                }
                if let Ok(s) = self.read_selects(client).await {
                    selects = s;
                }
            }
        }
        Transaction {
            selects,
            wrote,
            result: error.map_or(Ok(()), Err),
        }
    }

    /// On stop: writes the hand-back mode (Self Use) when the inverter is in a mode FluxION
    /// sets, within `budget`, unless in debug mode or `control.stop_mode: keep`. Logs what it
    /// wrote and what the selects read back.
    pub async fn hand_back(&mut self, budget: std::time::Duration) -> HandBack {
        if self.cfg.control.debug_mode {
            tracing::info!("stop: debug mode, nothing is written to the inverter");
            return HandBack::Debug;
        }
        if self.cfg.control.stop_mode == StopMode::Keep {
            tracing::info!(
                "stop: control.stop_mode is keep, leaving the inverter in {}",
                self.last_selects
            );
            return HandBack::Kept;
        }
        let Some(mut client) = self.client.clone() else {
            return HandBack::NotConfigured;
        };
        // Short tries: the whole hand-back must fit in the budget.
        client.timeout = std::time::Duration::from_millis(1000);
        client.attempts = 2;
        client.backoff = std::time::Duration::from_millis(100);
        let last = self.last_selects.clone();
        let work = async {
            let selects = match self.read_selects(&client).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("stop: cannot read the mode selects ({e}); last read {last}");
                    last.clone()
                }
            };
            if selects.use_mode.is_none() {
                let e = "the mode selects could not be read; nothing written, the inverter keeps \
                         its mode"
                    .to_string();
                tracing::error!("stop: {e}");
                return HandBack::Failed(e);
            }
            if !selects.forced() {
                tracing::info!(
                    "stop: inverter is in {selects}, not a mode FluxION sets; leaving it"
                );
                return HandBack::NotNeeded(selects);
            }
            tracing::info!("stop: inverter is in {selects}, handing back to {SELF_USE_MODE}");
            let tx = self
                .transact(&client, Utc::now(), Mode::SelfUse, &selects, true)
                .await;
            match tx.result {
                Ok(()) => {
                    tracing::info!("stop: handed back, the selects read back {}", tx.selects);
                    HandBack::Done(tx.selects)
                }
                Err(e) => {
                    tracing::error!(
                        "stop: hand-back failed, the inverter stays in {}: {e}",
                        tx.selects
                    );
                    HandBack::Failed(e)
                }
            }
        };
        match tokio::time::timeout(budget, work).await {
            Ok(result) => result,
            Err(_) => {
                let e = format!(
                    "hand-back did not finish within {} s; the inverter may stay in {last}",
                    budget.as_secs()
                );
                tracing::error!("stop: {e}");
                HandBack::Failed(e)
            }
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
        let selects = t.map(Telemetry::selects);
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
        let mut notes = self.notes.clone();
        if let Some(e) = &self.publish_error {
            notes.push(e.clone());
        }
        let status = Status {
            updated_at: Some(now),
            debug_mode: self.cfg.control.debug_mode,
            soc: t.and_then(|t| t.soc),
            current_mode: selects.as_ref().and_then(Selects::mode),
            inverter: selects
                .as_ref()
                .filter(|s| s.use_mode.is_some() || s.manual_mode.is_some())
                .map(Selects::to_string),
            wanted_mode: wanted,
            blocked,
            failure: self.failure.clone(),
            freshness: self.freshness.clone(),
            next_changes,
            recent_commands: self.commands.iter().rev().take(10).cloned().collect(),
            plan_generated_at: plan.as_ref().map(|p| p.generated_at),
            time_zone: self.tz.map(|tz| tz.name().to_string()),
            core_version: self.core_version.clone(),
            currency: self.currency.clone(),
            value: plan.as_ref().map(ValueSummary::of),
            notes,
            plan,
        };
        self.shared.status.send_replace(status);
    }

    /// Writes `sensor.fluxion_mode`, `sensor.fluxion_next_change` and
    /// `sensor.fluxion_plan_savings` from the current status (also in debug mode: these are
    /// FluxION's own entities, not the inverter's), unless `publish.entities` is false. A
    /// failure is logged and shown as a note; it never affects control.
    async fn publish_entities(&mut self) {
        let Some(client) = self.client.clone().filter(|_| self.cfg.publish.entities) else {
            return;
        };
        let status = self.shared.status.borrow().clone();
        let states = published_states(&status);
        let results = futures_util::future::join_all(
            states
                .iter()
                .map(|(entity, state, attrs)| client.post_state(entity, state, attrs)),
        )
        .await;
        let errors: Vec<String> = results
            .into_iter()
            .filter_map(Result::err)
            .map(|e| e.to_string())
            .collect();
        let error = (!errors.is_empty())
            .then(|| format!("publishing sensor.fluxion_* failed: {}", errors.join("; ")));
        if error != self.publish_error {
            match &error {
                Some(e) => tracing::warn!("{e}"),
                None if self.publish_error.is_some() => {
                    tracing::info!("publishing sensor.fluxion_* works again")
                }
                None => {}
            }
        }
        self.publish_error = error;
    }

    /// Commands recorded so far (sent or, in debug mode, only logged).
    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        self.commands.iter()
    }
}

/// The states FluxION publishes for a status: (entity id, state, attributes). The plan goes
/// into `sensor.fluxion_plan_savings` as its runs of one mode, cut to stay under
/// `PUBLISHED_ATTRIBUTES_MAX` bytes (HA's recorder drops larger attributes).
pub fn published_states(status: &Status) -> Vec<(&'static str, String, serde_json::Value)> {
    use serde_json::json;
    let label = |m: Option<Mode>| m.map_or("unknown".to_string(), |m| m.label().to_string());
    let mode = (
        "sensor.fluxion_mode",
        label(status.wanted_mode),
        json!({
            "friendly_name": "FluxION mode",
            "icon": "mdi:home-battery",
            "inverter": status.inverter,
            "inverter_mode": status.current_mode.map(Mode::label),
            "debug_mode": status.debug_mode,
            "blocked": status.blocked,
            "failure": status.failure.as_ref().map(|f| &f.message),
        }),
    );
    let next = status.next_changes.first();
    let next_change = (
        "sensor.fluxion_next_change",
        next.map_or("unknown".to_string(), |c| c.at.to_rfc3339()),
        json!({
            "friendly_name": "FluxION next mode change",
            "device_class": "timestamp",
            "icon": "mdi:clock-outline",
            "mode": next.map(|c| c.mode.label()),
            "changes": status.next_changes.iter()
                .map(|c| json!({"at": c.at, "mode": c.mode.label()}))
                .collect::<Vec<_>>(),
        }),
    );
    let mut attrs = json!({
        "friendly_name": "FluxION plan savings",
        "icon": "mdi:piggy-bank-outline",
        "device_class": "monetary",
        "state_class": "measurement",
    });
    let mut state = "unknown".to_string();
    if let (Some(plan), Some(value)) = (&status.plan, &status.value) {
        state = format!("{:.2}", value.savings);
        if let Some(c) = &value.currency {
            attrs["unit_of_measurement"] = json!(c.code);
        }
        attrs["summary"] = json!(value.text);
        attrs["plan_value"] = json!(round2(value.plan));
        attrs["self_use_value"] = json!(round2(value.self_use));
        attrs["hours"] = json!(value.hours);
        let mut runs: Vec<serde_json::Value> = Vec::new();
        for w in plan.slots.chunk_by(|a, b| a.mode == b.mode) {
            runs.push(json!({
                "start": w[0].start,
                "mode": w[0].mode.label(),
                "slots": w.len(),
                "soc_end": (w[w.len() - 1].soc_end * 10.0).round() / 10.0,
            }));
        }
        let total = runs.len();
        attrs["plan"] = json!(runs);
        while serde_json::to_string(&attrs).map_or(0, |t| t.len()) > PUBLISHED_ATTRIBUTES_MAX {
            runs.truncate(runs.len() * 3 / 4);
            attrs["plan"] = json!(runs);
            attrs["plan_truncated"] = json!(format!("first {} of {total} runs", runs.len()));
        }
    }
    vec![
        mode,
        next_change,
        ("sensor.fluxion_plan_savings", state, attrs),
    ]
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
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
        assert_eq!(mode_of(MANUAL_MODE, STOP), Some(Mode::Hold));
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
            e.writes(Mode::Hold),
            [
                ("select.solax_manual_mode_select", STOP),
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

    fn selects(u: &str, m: &str) -> Selects {
        Selects {
            use_mode: Some(u.into()),
            manual_mode: Some(m.into()),
        }
    }

    #[test]
    fn what_the_stop_hands_back() {
        assert!(selects(MANUAL_MODE, FORCE_DISCHARGE).forced());
        assert!(selects(MANUAL_MODE, STOP).forced());
        assert!(selects(SELF_USE_MODE, FORCE_CHARGE).forced());
        assert!(!selects(SELF_USE_MODE, STOP).forced());
        assert!(!selects("Feedin Priority", FORCE_CHARGE).forced());
        assert!(!Selects::default().forced());
        assert_eq!(
            selects(MANUAL_MODE, STOP).to_string(),
            "Manual Mode / Stop Charge and Discharge"
        );
        assert!(selects(MANUAL_MODE, FORCE_CHARGE).unsafe_for(Mode::Hold));
        assert!(!selects(SELF_USE_MODE, FORCE_CHARGE).unsafe_for(Mode::Hold));
    }

    #[test]
    fn back_off_doubles_up_to_five_minutes() {
        let t = DateTime::parse_from_rfc3339("2025-01-15T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut b = Backoff::default();
        assert!(b.allows(t));
        let delays: Vec<i64> = (0..6)
            .map(|_| (b.failed(t, 60) - t).num_seconds())
            .collect();
        assert_eq!(delays, [60, 120, 240, 300, 300, 300]);
        assert!(!b.allows(t + Duration::seconds(298)));
        assert!(b.allows(t + Duration::milliseconds(299_500)));
        b.succeeded();
        assert!(b.allows(t));
        // A long update interval is never shortened by the cap.
        assert_eq!((b.failed(t, 600) - t).num_seconds(), 600);
    }

    fn state(id: &str, value: &str, updated: &str, reported: Option<&str>) -> EntityState {
        serde_json::from_value(serde_json::json!({
            "entity_id": id, "state": value,
            "last_changed": updated, "last_updated": updated,
            "last_reported": reported,
        }))
        .unwrap()
    }

    #[test]
    fn freshness_rules() {
        let now = DateTime::parse_from_rfc3339("2025-01-15T07:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let max = Duration::seconds(900);
        let old = "2025-01-15T05:00:00+00:00";
        let recent = "2025-01-15T06:59:20+00:00";
        // last_reported present: it alone decides.
        let soc = state("sensor.soc", "100", old, Some(recent));
        let (v, rule) = judge_soc(&soc, &[], now, max).unwrap();
        assert_eq!(v, 100.0);
        assert!(
            rule.starts_with("last_reported of sensor.soc: 40 s ago"),
            "{rule}"
        );
        let soc = state("sensor.soc", "100", old, Some(old));
        let load = state("sensor.load", "612", recent, None);
        let e = judge_soc(&soc, &[&load], now, max).unwrap_err();
        assert!(
            e.contains("last reported at 2025-01-15 05:00:00 UTC"),
            "{e}"
        );
        // Without last_reported a still SOC is fine while the integration updates others.
        let soc = state("sensor.soc", "100", old, None);
        let (_, rule) = judge_soc(&soc, &[&load], now, max).unwrap();
        assert!(rule.contains("updated sensor.load 40 s ago"), "{rule}");
        // ... but not when the integration has gone quiet, or only reports unavailable.
        let e = judge_soc(&soc, &[], now, max).unwrap_err();
        assert!(e.contains("newest update was sensor.soc"), "{e}");
        let gone = state("sensor.load", "unavailable", recent, None);
        assert!(judge_soc(&soc, &[&gone], now, max).is_err());
        let soc = state("sensor.soc", "unavailable", recent, None);
        assert_eq!(
            judge_soc(&soc, &[&load], now, max).unwrap_err(),
            "state of charge sensor.soc is \"unavailable\""
        );
        let soc = state("sensor.soc", "140", recent, None);
        assert!(judge_soc(&soc, &[], now, max)
            .unwrap_err()
            .contains("outside 0-100"));
    }
}
