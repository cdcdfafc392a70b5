//! The one typed configuration: layered from defaults, `config.toml`, `/data/options.json` and
//! the environment, then validated as a whole so every problem is reported at once.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where the Supervisor proxies the Home Assistant API for add-ons.
pub const SUPERVISOR_API: &str = "http://supervisor/core/api";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub inverter: InverterConfig,
    pub pricing: PricingConfig,
    pub battery: BatteryConfig,
    pub control: ControlConfig,
    pub plan: PlanConfig,
    pub forecast: ForecastConfig,
    pub publish: PublishConfig,
    pub web: WebConfig,
    pub ha: HaConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InverterConfig {
    /// Entity id prefix of the Solax integration, e.g. `solax` for `sensor.solax_battery_capacity`.
    pub entity_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PricingConfig {
    /// The HA entity whose attributes carry the spot price forecast.
    pub spot_price_entity: String,
    /// Spot-equivalent buy prices per hour (24) or quarter hour (96) of the local day, used when
    /// the spot entity has no price for a slot. Empty: no fallback.
    pub fixed_buy_prices: Vec<f64>,
    /// Like `fixed_buy_prices` for selling; empty means "same as the buy list".
    pub fixed_sell_prices: Vec<f64>,
    /// Added to every buy price (distribution fee, taxes), per kWh.
    pub grid_fee_buy: f64,
    /// Subtracted from every sell price (what the buyer keeps), per kWh.
    pub grid_fee_sell: f64,
    /// VAT on buying, in percent: buy = (spot + fees) x (1 + VAT / 100).
    pub vat_percent: f64,
    /// Time-of-use distribution fees added to `grid_fee_buy` where their window applies (e.g.
    /// the Czech low/high tariff), before VAT; windows that overlap add up.
    pub grid_fee_schedule: Vec<FeeWindow>,
}

/// One `pricing.grid_fee_schedule` entry: `buy_fee` per kWh from `from` to `to` (local
/// "HH:MM" on quarter hours, `to` may be "24:00", `to` before `from` runs over midnight), on
/// `days` ("mon-fri", "sat,sun"; unset: every day). Parsed and checked by `tariff`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeWindow {
    pub from: String,
    pub to: String,
    pub buy_fee: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatteryConfig {
    pub capacity_kwh: f64,
    pub max_charge_kw: f64,
    pub max_discharge_kw: f64,
    /// Round-trip efficiency (0, 1]: kWh delivered back per kWh put in.
    pub efficiency: f64,
    /// Lowest state of charge the plan may discharge to, in percent.
    pub min_soc: f64,
    /// Highest state of charge the plan may charge to, in percent.
    pub max_soc: f64,
    /// Inverter's own discharge floor in percent; the value read from HA wins when available.
    pub hardware_min_soc: f64,
    /// Battery wear per kWh discharged, in the price currency.
    pub wear_cost_per_kwh: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// Compute and show the plan, but never write to the inverter.
    pub debug_mode: bool,
    pub min_mode_change_interval_s: u64,
    pub update_interval_s: u64,
    /// What the inverter is left in when FluxION stops (SIGTERM/SIGINT).
    pub stop_mode: StopMode,
    /// How old the newest report from the Solax integration may be before the data counts as
    /// stale, in seconds (see `control::judge_soc`).
    pub max_data_age_s: u64,
}

/// `control.stop_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopMode {
    /// Hand the inverter back to `Self Use Mode` when it is in a mode FluxION set.
    #[default]
    SelfUse,
    /// Leave the inverter as it is (it keeps following the last command until restarted).
    Keep,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlanConfig {
    /// SOC grid of the optimiser, in percent of capacity.
    pub soc_step_percent: f64,
    /// Value of a kWh left in the battery at the end of the horizon; unset means the mean buy
    /// price of the horizon times the round-trip efficiency.
    pub terminal_value_per_kwh: Option<f64>,
    /// House load in kW assumed for every slot when there is no load history (the PV forecast,
    /// when there is one, is still subtracted).
    pub expected_net_load_kw: f64,
    /// Objective cost of one mode switch, in the price currency; unset means the value of
    /// 0.1 kWh at the horizon's mean absolute buy price (so it scales with the currency).
    pub mode_switch_cost: Option<f64>,
}

/// Which Solcast band the PV forecast uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PvEstimate {
    /// The median.
    #[default]
    PvEstimate,
    /// The 10th percentile (a cloudier day).
    PvEstimate10,
    /// The 90th percentile (a sunnier day).
    PvEstimate90,
}

impl PvEstimate {
    /// The Solcast attribute key.
    pub fn key(self) -> &'static str {
        match self {
            PvEstimate::PvEstimate => "pv_estimate",
            PvEstimate::PvEstimate10 => "pv_estimate10",
            PvEstimate::PvEstimate90 => "pv_estimate90",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForecastConfig {
    /// PV forecast entities. Empty: the Solcast integration's today/tomorrow sensors when they
    /// exist; `["none"]`: no PV forecast.
    pub pv_entities: Vec<String>,
    /// Solcast band: `pv_estimate`, `pv_estimate10` or `pv_estimate90`.
    pub pv_estimate: PvEstimate,
    /// Days of house load history (recorder) averaged per 15 minutes of the day.
    pub load_history_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// Write `sensor.fluxion_*` entities to Home Assistant every tick.
    pub entities: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    pub port: u16,
    /// Address to listen on; the add-on listens everywhere and filters by peer address.
    pub bind: String,
}

/// How to reach Home Assistant. Filled from the environment, never from options.json.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HaConfig {
    /// Base URL of the HA API, e.g. `http://homeassistant.local:8123` (`/api` is appended
    /// when missing). Unset inside the add-on, where the Supervisor proxy is used.
    pub url: Option<String>,
    #[serde(skip_serializing)]
    pub token: Option<String>,
    /// Set when running as an add-on (`SUPERVISOR_TOKEN` present).
    #[serde(skip)]
    pub supervisor: bool,
}

impl Default for InverterConfig {
    fn default() -> Self {
        Self {
            entity_prefix: "solax".into(),
        }
    }
}

impl Default for PricingConfig {
    fn default() -> Self {
        Self {
            spot_price_entity: "sensor.current_spot_electricity_price_15min".into(),
            fixed_buy_prices: Vec::new(),
            fixed_sell_prices: Vec::new(),
            grid_fee_buy: 0.0,
            grid_fee_sell: 0.0,
            vat_percent: 0.0,
            grid_fee_schedule: Vec::new(),
        }
    }
}

impl Default for BatteryConfig {
    fn default() -> Self {
        Self {
            capacity_kwh: 10.0,
            max_charge_kw: 5.0,
            max_discharge_kw: 5.0,
            efficiency: 0.9,
            min_soc: 10.0,
            max_soc: 100.0,
            hardware_min_soc: 10.0,
            wear_cost_per_kwh: 0.0,
        }
    }
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            debug_mode: true,
            min_mode_change_interval_s: 300,
            update_interval_s: 60,
            stop_mode: StopMode::SelfUse,
            max_data_age_s: 900,
        }
    }
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self {
            soc_step_percent: 0.5,
            terminal_value_per_kwh: None,
            expected_net_load_kw: 0.0,
            mode_switch_cost: None,
        }
    }
}

impl Default for ForecastConfig {
    fn default() -> Self {
        Self {
            pv_entities: Vec::new(),
            pv_estimate: PvEstimate::PvEstimate,
            load_history_days: 7,
        }
    }
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self { entities: true }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            port: 8099,
            bind: "0.0.0.0".into(),
        }
    }
}

/// Every reason the configuration was rejected, each naming its field and rule.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// The files the configuration may come from; either may be absent.
#[derive(Debug, Clone, Default)]
pub struct Sources<'a> {
    /// `config.toml` given with `--config`: must exist when given.
    pub toml: Option<&'a Path>,
    /// `/data/options.json`: read only when present.
    pub options_json: Option<&'a Path>,
}

impl Config {
    /// Loads and validates the configuration from all sources, the environment taken from
    /// `env` (so tests need not touch the process environment). Every problem is collected
    /// before failing: a file that cannot be read or parsed, a bad environment variable, a
    /// value of the wrong type and a value out of range are all reported together.
    pub fn load<I>(sources: &Sources<'_>, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut problems = Vec::new();
        let mut merged = serde_json::to_value(Config::default()).expect("defaults serialise");
        if let Some(path) = sources.toml {
            match read_toml(path) {
                Ok(value) => merge(&mut merged, value),
                Err(problem) => problems.push(problem),
            }
        }
        if let Some(path) = sources.options_json {
            match read_options_json(path) {
                Ok(Some(value)) => merge(&mut merged, value),
                Ok(None) => {}
                Err(problem) => problems.push(problem),
            }
        }
        let mut supervisor_token = None;
        for (key, raw) in env {
            match key.as_str() {
                "HA_URL" => set_path(&mut merged, &["ha", "url"], Value::String(raw)),
                "HA_TOKEN" => set_path(&mut merged, &["ha", "token"], Value::String(raw)),
                "SUPERVISOR_TOKEN" => supervisor_token = Some(raw),
                _ => {
                    if let Some(rest) = key.strip_prefix("FLUXION_") {
                        if let Err(problem) = apply_env(&mut merged, &key, rest, raw) {
                            problems.push(problem);
                        }
                    }
                }
            }
        }
        // Keys of the wrong type are reported and dropped, so the rest is still checked.
        let typed = drop_mistyped(merged);
        problems.extend(typed.problems);
        let mut config: Config = match serde_json::from_value(typed.clean) {
            Ok(config) => config,
            Err(e) => {
                problems.push(format!("configuration cannot be used: {e}"));
                return Err(ConfigError { problems });
            }
        };
        if let Some(token) = supervisor_token.filter(|t| !t.is_empty()) {
            config.ha.supervisor = true;
            if config.ha.url.is_none() {
                config.ha.token = Some(token);
            }
        }
        // A dropped key was checked at its default: a rule naming it would quote a value
        // nobody wrote, so only the type problem is reported for it.
        problems.extend(
            config
                .problems()
                .into_iter()
                .filter(|p| !typed.dropped.iter().any(|key| names_key(p, key))),
        );
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// The API base URL and token to use, or why Home Assistant cannot be reached.
    pub fn ha_endpoint(&self) -> Option<(String, String)> {
        let token = self.ha.token.clone()?;
        let url = match &self.ha.url {
            Some(url) => {
                let url = url.trim_end_matches('/');
                if url.ends_with("/api") {
                    url.to_string()
                } else {
                    format!("{url}/api")
                }
            }
            None if self.ha.supervisor => SUPERVISOR_API.to_string(),
            None => return None,
        };
        Some((url, token))
    }

    /// The validation rules; each message names the field, its value and the rule.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let b = &self.battery;
        if self.inverter.entity_prefix.trim().is_empty()
            || !self
                .inverter
                .entity_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            p.push(format!(
                "inverter.entity_prefix ({:?}) must be a non-empty entity id part (letters, digits, _)",
                self.inverter.entity_prefix
            ));
        }
        if !self.pricing.spot_price_entity.contains('.') {
            p.push(format!(
                "pricing.spot_price_entity ({:?}) must be an entity id such as sensor.spot_price",
                self.pricing.spot_price_entity
            ));
        }
        for (name, list) in [
            ("pricing.fixed_buy_prices", &self.pricing.fixed_buy_prices),
            ("pricing.fixed_sell_prices", &self.pricing.fixed_sell_prices),
        ] {
            if !matches!(list.len(), 0 | 24 | 96) {
                p.push(format!(
                    "{name} has {} values but must have 0, 24 (hourly) or 96 (quarter-hourly)",
                    list.len()
                ));
            }
            if list.iter().any(|v| !v.is_finite()) {
                p.push(format!("{name} must contain only finite numbers"));
            }
        }
        if !self.pricing.fixed_sell_prices.is_empty() && self.pricing.fixed_buy_prices.is_empty() {
            p.push(
                "pricing.fixed_sell_prices is set but pricing.fixed_buy_prices is empty: set both"
                    .into(),
            );
        }
        if !(0.0..=100.0).contains(&self.pricing.vat_percent) {
            p.push(format!(
                "pricing.vat_percent ({}) must be between 0 and 100",
                self.pricing.vat_percent
            ));
        }
        if let Err(schedule) = crate::tariff::Tariff::from_config(&self.pricing) {
            p.extend(schedule);
        }
        let f = &self.forecast;
        if !(1..=30).contains(&f.load_history_days) {
            p.push(format!(
                "forecast.load_history_days ({}) must be between 1 and 30",
                f.load_history_days
            ));
        }
        let none = f.pv_entities.iter().any(|e| e == "none");
        if none && f.pv_entities.len() > 1 {
            p.push("forecast.pv_entities: \"none\" turns the PV forecast off and must be the only entry".into());
        }
        for e in f.pv_entities.iter().filter(|e| *e != "none") {
            if !e.contains('.') {
                p.push(format!(
                    "forecast.pv_entities: {e:?} must be an entity id such as sensor.solcast_pv_forecast_forecast_today, or \"none\""
                ));
            }
        }
        for (name, v) in [
            ("pricing.grid_fee_buy", self.pricing.grid_fee_buy),
            ("pricing.grid_fee_sell", self.pricing.grid_fee_sell),
            ("battery.wear_cost_per_kwh", b.wear_cost_per_kwh),
            (
                "plan.mode_switch_cost",
                self.plan.mode_switch_cost.unwrap_or(0.0),
            ),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                p.push(format!("{name} ({v}) must be zero or positive"));
            }
        }
        for (name, v) in [
            ("battery.capacity_kwh", b.capacity_kwh),
            ("battery.max_charge_kw", b.max_charge_kw),
            ("battery.max_discharge_kw", b.max_discharge_kw),
        ] {
            if !(v.is_finite() && v > 0.0) {
                p.push(format!("{name} ({v}) must be above 0"));
            }
        }
        if !(b.efficiency > 0.0 && b.efficiency <= 1.0) {
            p.push(format!(
                "battery.efficiency ({}) must be above 0 and at most 1",
                b.efficiency
            ));
        }
        for (name, v) in [
            ("battery.min_soc", b.min_soc),
            ("battery.max_soc", b.max_soc),
            ("battery.hardware_min_soc", b.hardware_min_soc),
        ] {
            if !(0.0..=100.0).contains(&v) {
                p.push(format!("{name} ({v}) must be between 0 and 100 percent"));
            }
        }
        if b.min_soc >= b.max_soc {
            p.push(format!(
                "battery.min_soc ({}) must be below battery.max_soc ({})",
                b.min_soc, b.max_soc
            ));
        }
        if b.hardware_min_soc >= b.max_soc {
            p.push(format!(
                "battery.hardware_min_soc ({}) must be below battery.max_soc ({})",
                b.hardware_min_soc, b.max_soc
            ));
        }
        let c = &self.control;
        if c.update_interval_s < 5 || c.update_interval_s > 3600 {
            p.push(format!(
                "control.update_interval_s ({}) must be between 5 and 3600 seconds",
                c.update_interval_s
            ));
        }
        if !(30..=86_400).contains(&c.max_data_age_s) {
            p.push(format!(
                "control.max_data_age_s ({}) must be between 30 and 86400 seconds",
                c.max_data_age_s
            ));
        }
        if c.min_mode_change_interval_s > 86_400 {
            p.push(format!(
                "control.min_mode_change_interval_s ({}) must be at most 86400 seconds",
                c.min_mode_change_interval_s
            ));
        }
        let step = self.plan.soc_step_percent;
        if !(0.05..=10.0).contains(&step) {
            p.push(format!(
                "plan.soc_step_percent ({step}) must be between 0.05 and 10"
            ));
        }
        if let Some(v) = self.plan.terminal_value_per_kwh {
            if !v.is_finite() {
                p.push(format!(
                    "plan.terminal_value_per_kwh ({v}) must be a finite number"
                ));
            }
        }
        if !self.plan.expected_net_load_kw.is_finite() {
            p.push("plan.expected_net_load_kw must be a finite number".into());
        }
        if self.web.bind.parse::<std::net::IpAddr>().is_err() {
            p.push(format!(
                "web.bind ({:?}) must be an IP address such as 0.0.0.0 or 127.0.0.1",
                self.web.bind
            ));
        }
        if let Some(url) = &self.ha.url {
            if url.starts_with("https://") {
                p.push(format!(
                    "ha.url ({url}) uses https, but TLS is not built into fluxion-main: \
                     use an http:// URL or put a TLS-terminating proxy in front of Home Assistant"
                ));
            } else if !url.starts_with("http://") || url.parse::<hyper::Uri>().is_err() {
                p.push(format!(
                    "ha.url ({url}) must be an http:// URL such as http://homeassistant.local:8123"
                ));
            }
            if self.ha.token.as_deref().is_none_or(str::is_empty) {
                p.push("ha.token is missing: set HA_TOKEN to a long-lived access token".into());
            }
        }
        p
    }
}

/// Deep merge: objects merge key by key, everything else is replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (k, v) in over {
                match base.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

fn set_path(root: &mut Value, path: &[&str], value: Value) {
    let mut node = root;
    for part in &path[..path.len() - 1] {
        let obj = node.as_object_mut().expect("config sections are objects");
        node = obj
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(obj) = node.as_object_mut() {
        obj.insert(path[path.len() - 1].to_string(), value);
    }
}

/// `FLUXION_BATTERY_CAPACITY_KWH=12` sets `battery.capacity_kwh`: section names hold no `_`, so
/// the first `_` splits section from key. The default's type decides how the text is read, so
/// an entity prefix like `123` stays a string.
fn apply_env(merged: &mut Value, var: &str, rest: &str, raw: String) -> Result<(), String> {
    let lower = rest.to_ascii_lowercase();
    let (section, key) = lower
        .split_once('_')
        .ok_or_else(|| format!("{var} names no setting: use FLUXION_<SECTION>_<KEY>"))?;
    let defaults = serde_json::to_value(Config::default()).expect("defaults serialise");
    let Some(default) = defaults.get(section).and_then(|s| s.get(key)) else {
        return Err(format!(
            "{var} names no setting {section}.{key}: check the spelling against the documentation"
        ));
    };
    if section == "ha" {
        return Err(format!("{var}: set HA_URL and HA_TOKEN instead"));
    }
    let value = match default {
        Value::String(_) => Value::String(raw),
        // `terminal_value_per_kwh` and `mode_switch_cost` default to null; read them as numbers.
        _ => serde_json::from_str(raw.trim()).map_err(|_| {
            format!(
                "{var} ({raw:?}) for {section}.{key} must be a number, true/false or a JSON list"
            )
        })?,
    };
    set_path(merged, &[section, key], value);
    Ok(())
}

fn read_toml(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| format!("config file {} is not valid TOML: {e}", path.display()))?;
    serde_json::to_value(table)
        .map_err(|e| format!("config file {} cannot be used: {e}", path.display()))
}

/// `None` when the file does not exist (running outside the add-on).
fn read_options_json(path: &Path) -> Result<Option<Value>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not valid JSON ({e}): fix or delete it",
            path.display()
        )
    })?;
    if !value.is_object() {
        return Err(format!(
            "{} must hold a JSON object of options",
            path.display()
        ));
    }
    Ok(Some(value))
}

/// True when `problem` is about `key` (`battery.min_soc`, not `battery.min_soc_x`).
fn names_key(problem: &str, key: &str) -> bool {
    problem.match_indices(key).any(|(i, _)| {
        problem[i + key.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'))
    })
}

/// The merged settings without the keys that have the wrong type or are unknown.
struct Typed {
    clean: Value,
    /// Dotted names of the dropped keys (or whole sections).
    dropped: Vec<String>,
    problems: Vec<String>,
}

/// Checks every key on its own against its section's type, so several mistakes all show up
/// and one wrong type does not hide the range checks of the others.
fn drop_mistyped(merged: Value) -> Typed {
    fn fits<T: serde::de::DeserializeOwned>(v: &Value) -> Result<(), String> {
        serde_json::from_value::<T>(v.clone())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    let mut typed = Typed {
        clean: Value::Object(Map::new()),
        dropped: Vec::new(),
        problems: Vec::new(),
    };
    let Value::Object(sections) = merged else {
        typed
            .problems
            .push("configuration must be a table of sections".into());
        return typed;
    };
    let mut clean = Map::new();
    for (section, v) in sections {
        let check: fn(&Value) -> Result<(), String> = match section.as_str() {
            "inverter" => fits::<InverterConfig>,
            "pricing" => fits::<PricingConfig>,
            "battery" => fits::<BatteryConfig>,
            "control" => fits::<ControlConfig>,
            "plan" => fits::<PlanConfig>,
            "forecast" => fits::<ForecastConfig>,
            "publish" => fits::<PublishConfig>,
            "web" => fits::<WebConfig>,
            "ha" => fits::<HaConfig>,
            other => {
                typed.problems.push(format!(
                    "unknown section {other:?}: expected inverter, pricing, battery, control, plan, forecast, publish or web"
                ));
                continue;
            }
        };
        let Value::Object(fields) = v else {
            typed
                .problems
                .push(format!("{section} must be a table of settings, not {v}"));
            typed.dropped.push(section);
            continue;
        };
        let mut kept = Map::new();
        for (key, value) in fields {
            let mut one = Map::new();
            one.insert(key.clone(), value.clone());
            match check(&Value::Object(one)) {
                Ok(()) => {
                    kept.insert(key, value);
                }
                Err(e) => {
                    typed.problems.push(format!("{section}.{key}: {e}"));
                    typed.dropped.push(format!("{section}.{key}"));
                }
            }
        }
        clean.insert(section, Value::Object(kept));
    }
    typed.clean = Value::Object(clean);
    typed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Loads with `text` as options.json and no environment.
    fn load_options(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let opts = write(&dir, "options.json", text);
        Config::load(
            &Sources {
                toml: None,
                options_json: Some(&opts),
            },
            env(&[]),
        )
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_are_valid_and_debug_mode_is_on() {
        let c = Config::load(&Sources::default(), env(&[])).unwrap();
        assert!(c.control.debug_mode);
        assert_eq!(c.control.min_mode_change_interval_s, 300);
        assert_eq!(c.control.update_interval_s, 60);
        assert_eq!(c.web.port, 8099);
        assert_eq!(c.ha_endpoint(), None);
    }

    #[test]
    fn precedence_env_over_options_over_toml() {
        let dir = tempfile::tempdir().unwrap();
        let toml = write(
            &dir,
            "config.toml",
            "[battery]\ncapacity_kwh = 7.5\nmax_charge_kw = 3.0\n[web]\nport = 9000\n",
        );
        let opts = write(
            &dir,
            "options.json",
            r#"{"battery": {"max_charge_kw": 4.0}}"#,
        );
        let sources = Sources {
            toml: Some(&toml),
            options_json: Some(&opts),
        };
        let c = Config::load(
            &sources,
            env(&[
                ("FLUXION_WEB_PORT", "9100"),
                ("FLUXION_INVERTER_ENTITY_PREFIX", "123"),
            ]),
        )
        .unwrap();
        assert_eq!(c.battery.capacity_kwh, 7.5);
        assert_eq!(c.battery.max_charge_kw, 4.0);
        assert_eq!(c.web.port, 9100);
        assert_eq!(c.inverter.entity_prefix, "123");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = Config::load(
            &Sources::default(),
            env(&[
                ("FLUXION_BATTERY_MIN_SOC", "95"),
                ("FLUXION_BATTERY_MAX_SOC", "90"),
                ("FLUXION_BATTERY_EFFICIENCY", "1.5"),
                ("FLUXION_CONTROL_UPDATE_INTERVAL_S", "1"),
            ]),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("battery.min_soc (95) must be below battery.max_soc (90)"),
            "{text}"
        );
        assert!(text.contains("battery.efficiency (1.5)"), "{text}");
        assert!(text.contains("control.update_interval_s (1)"), "{text}");
        assert_eq!(e.problems.len(), 3, "{text}");
    }

    #[test]
    fn wrong_types_and_unknown_keys_name_their_field() {
        let e = load_options(
            r#"{"battery": {"capacity_kwh": "big", "colour": 1}, "control": {"debug_mode": 3}}"#,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("battery.capacity_kwh"), "{text}");
        assert!(text.contains("battery.colour"), "{text}");
        assert!(text.contains("control.debug_mode"), "{text}");
    }

    #[test]
    fn a_type_error_does_not_hide_range_errors_elsewhere() {
        let e = load_options(
            r#"{"battery": {"capacity_kwh": "ten", "min_soc": 95, "max_soc": 90},
                "control": {"stop_mode": "off", "max_data_age_s": 5}}"#,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("battery.capacity_kwh: invalid type"),
            "{text}"
        );
        assert!(
            text.contains("battery.min_soc (95) must be below battery.max_soc (90)"),
            "{text}"
        );
        assert!(
            text.contains(
                "control.stop_mode: unknown variant `off`, expected `self_use` or `keep`"
            ),
            "{text}"
        );
        assert!(text.contains("control.max_data_age_s (5)"), "{text}");
        // The mistyped capacity is not also reported at its default value.
        assert!(!text.contains("battery.capacity_kwh (10)"), "{text}");
        assert_eq!(e.problems.len(), 4, "{text}");
    }

    #[test]
    fn malformed_json_does_not_hide_environment_errors() {
        let dir = tempfile::tempdir().unwrap();
        let opts = write(&dir, "options.json", "{not json");
        let e = Config::load(
            &Sources {
                toml: None,
                options_json: Some(&opts),
            },
            env(&[
                ("FLUXION_BATTERY_SIZE", "3"),
                ("FLUXION_BATTERY_MIN_SOC", "120"),
            ]),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("is not valid JSON"), "{text}");
        assert!(
            text.contains("FLUXION_BATTERY_SIZE names no setting"),
            "{text}"
        );
        assert!(text.contains("battery.min_soc (120)"), "{text}");
    }

    #[test]
    fn stop_mode_and_data_age_are_read() {
        let c = Config::load(
            &Sources::default(),
            env(&[
                ("FLUXION_CONTROL_STOP_MODE", "keep"),
                ("FLUXION_CONTROL_MAX_DATA_AGE_S", "600"),
            ]),
        )
        .unwrap();
        assert_eq!(c.control.stop_mode, StopMode::Keep);
        assert_eq!(c.control.max_data_age_s, 600);
        let c = Config::load(&Sources::default(), env(&[])).unwrap();
        assert_eq!(c.control.stop_mode, StopMode::SelfUse);
        assert_eq!(c.control.max_data_age_s, 900);
    }

    #[test]
    fn malformed_options_json_is_a_clear_error() {
        let e = load_options("{not json").unwrap_err();
        assert!(e.to_string().contains("is not valid JSON"), "{e}");
    }

    #[test]
    fn missing_options_json_is_fine() {
        let path = Path::new("/nonexistent/options.json");
        Config::load(
            &Sources {
                toml: None,
                options_json: Some(path),
            },
            env(&[]),
        )
        .unwrap();
    }

    #[test]
    fn https_is_refused_with_a_way_out() {
        let e = Config::load(
            &Sources::default(),
            env(&[("HA_URL", "https://ha.example:8123"), ("HA_TOKEN", "t")]),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("TLS is not built into fluxion-main"),
            "{e}"
        );
    }

    #[test]
    fn endpoint_from_supervisor_or_ha_url() {
        let c = Config::load(&Sources::default(), env(&[("SUPERVISOR_TOKEN", "s")])).unwrap();
        assert_eq!(c.ha_endpoint(), Some((SUPERVISOR_API.into(), "s".into())));
        let c = Config::load(
            &Sources::default(),
            env(&[("HA_URL", "http://ha.local:8123/"), ("HA_TOKEN", "t")]),
        )
        .unwrap();
        assert_eq!(
            c.ha_endpoint(),
            Some(("http://ha.local:8123/api".into(), "t".into()))
        );
    }

    #[test]
    fn forecast_tariff_and_switch_settings_are_checked() {
        let e = load_options(
            r#"{"pricing": {"vat_percent": 121, "grid_fee_schedule": [
                    {"from": "22:00", "to": "06:00", "buy_fee": 0.3, "days": "mon-fri"},
                    {"from": "25:00", "to": "06:00", "buy_fee": 0.3}]},
                "plan": {"mode_switch_cost": -1},
                "forecast": {"pv_entities": ["none", "sensor.x"], "load_history_days": 0,
                             "pv_estimate": "pv_estimate50"},
                "publish": {"entities": "yes"}}"#,
        )
        .unwrap_err();
        let text = e.to_string();
        for says in [
            "pricing.vat_percent (121) must be between 0 and 100",
            "pricing.grid_fee_schedule[1]: from \"25:00\" is not a time of day",
            "plan.mode_switch_cost (-1) must be zero or positive",
            "forecast.pv_entities: \"none\" turns the PV forecast off and must be the only entry",
            "forecast.load_history_days (0) must be between 1 and 30",
            "forecast.pv_estimate: unknown variant `pv_estimate50`",
            "publish.entities: invalid type",
        ] {
            assert!(text.contains(says), "{says}\n{text}");
        }
        assert_eq!(e.problems.len(), 7, "{text}");
        let c = load_options(
            r#"{"pricing": {"vat_percent": 21, "grid_fee_schedule": [
                    {"from": "22:00", "to": "06:00", "buy_fee": 0.3, "days": "mon-fri"}]},
                "plan": {"mode_switch_cost": 0.5, "terminal_value_per_kwh": 1.2},
                "forecast": {"pv_entities": ["sensor.pv"], "pv_estimate": "pv_estimate10"}}"#,
        )
        .unwrap();
        assert_eq!(
            c.pricing.grid_fee_schedule[0].days.as_deref(),
            Some("mon-fri")
        );
        assert_eq!(c.plan.mode_switch_cost, Some(0.5));
        assert_eq!(c.plan.terminal_value_per_kwh, Some(1.2));
        assert_eq!(c.forecast.pv_estimate, PvEstimate::PvEstimate10);
        assert!(c.publish.entities);
        assert_eq!(
            Config::default().pricing.spot_price_entity,
            "sensor.current_spot_electricity_price_15min"
        );
    }

    #[test]
    fn unknown_env_setting_is_rejected() {
        let e =
            Config::load(&Sources::default(), env(&[("FLUXION_BATTERY_SIZE", "3")])).unwrap_err();
        assert!(e
            .to_string()
            .contains("FLUXION_BATTERY_SIZE names no setting battery.size"));
    }
}
