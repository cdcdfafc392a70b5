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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlanConfig {
    /// SOC grid of the optimiser, in percent of capacity.
    pub soc_step_percent: f64,
    /// Value of a kWh left in the battery at the end of the horizon; unset means the mean buy
    /// price of the horizon times the round-trip efficiency.
    pub terminal_value_per_kwh: Option<f64>,
    /// Expected house load minus PV, in kW, assumed for every future slot (no forecast yet).
    pub expected_net_load_kw: f64,
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
            spot_price_entity: "sensor.current_spot_electricity_price".into(),
            fixed_buy_prices: Vec::new(),
            fixed_sell_prices: Vec::new(),
            grid_fee_buy: 0.0,
            grid_fee_sell: 0.0,
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
        }
    }
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self {
            soc_step_percent: 0.5,
            terminal_value_per_kwh: None,
            expected_net_load_kw: 0.0,
        }
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

impl ConfigError {
    fn one(problem: String) -> Self {
        Self {
            problems: vec![problem],
        }
    }
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
    /// `env` (so tests need not touch the process environment).
    pub fn load<I>(sources: &Sources<'_>, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut merged = serde_json::to_value(Config::default()).expect("defaults serialise");
        if let Some(path) = sources.toml {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::one(format!("cannot read config file {}: {e}", path.display()))
            })?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| {
                ConfigError::one(format!(
                    "config file {} is not valid TOML: {e}",
                    path.display()
                ))
            })?;
            let value = serde_json::to_value(table).map_err(|e| {
                ConfigError::one(format!(
                    "config file {} cannot be used: {e}",
                    path.display()
                ))
            })?;
            merge(&mut merged, value);
        }
        if let Some(path) = sources.options_json {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let value: Value = serde_json::from_str(&text).map_err(|e| {
                        ConfigError::one(format!(
                            "{} is not valid JSON ({e}): fix or delete it",
                            path.display()
                        ))
                    })?;
                    if !value.is_object() {
                        return Err(ConfigError::one(format!(
                            "{} must hold a JSON object of options",
                            path.display()
                        )));
                    }
                    merge(&mut merged, value);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ConfigError::one(format!(
                        "cannot read {}: {e}",
                        path.display()
                    )))
                }
            }
        }
        let mut problems = Vec::new();
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
        let mut config: Config = match serde_json::from_value(merged.clone()) {
            Ok(config) => config,
            Err(_) => {
                // Deserialise section by section so each wrong type names its field.
                problems.extend(type_problems(&merged));
                return Err(ConfigError { problems });
            }
        };
        if let Some(token) = supervisor_token.filter(|t| !t.is_empty()) {
            config.ha.supervisor = true;
            if config.ha.url.is_none() {
                config.ha.token = Some(token);
            }
        }
        problems.extend(config.problems());
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
        for (name, v) in [
            ("pricing.grid_fee_buy", self.pricing.grid_fee_buy),
            ("pricing.grid_fee_sell", self.pricing.grid_fee_sell),
            ("battery.wear_cost_per_kwh", b.wear_cost_per_kwh),
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
        // `terminal_value_per_kwh` defaults to null; read it as a number.
        _ => serde_json::from_str(raw.trim()).map_err(|_| {
            format!(
                "{var} ({raw:?}) for {section}.{key} must be a number, true/false or a JSON list"
            )
        })?,
    };
    set_path(merged, &[section, key], value);
    Ok(())
}

/// Names every field whose value has the wrong type or is unknown.
fn type_problems(merged: &Value) -> Vec<String> {
    fn check<T: serde::de::DeserializeOwned>(section: &str, v: &Value, out: &mut Vec<String>) {
        if let Err(e) = serde_json::from_value::<T>(v.clone()) {
            // Report each key separately so several mistakes in one section all show up.
            let mut found = false;
            if let Value::Object(map) = v {
                for (k, fv) in map {
                    let mut one = Map::new();
                    one.insert(k.clone(), fv.clone());
                    if let Err(e) = serde_json::from_value::<T>(Value::Object(one)) {
                        found = true;
                        out.push(format!("{section}.{k}: {e}"));
                    }
                }
            }
            if !found {
                out.push(format!("{section}: {e}"));
            }
        }
    }
    let mut out = Vec::new();
    let Value::Object(map) = merged else {
        return vec!["configuration must be a table of sections".into()];
    };
    for (section, v) in map {
        match section.as_str() {
            "inverter" => check::<InverterConfig>(section, v, &mut out),
            "pricing" => check::<PricingConfig>(section, v, &mut out),
            "battery" => check::<BatteryConfig>(section, v, &mut out),
            "control" => check::<ControlConfig>(section, v, &mut out),
            "plan" => check::<PlanConfig>(section, v, &mut out),
            "web" => check::<WebConfig>(section, v, &mut out),
            "ha" => check::<HaConfig>(section, v, &mut out),
            other => out.push(format!(
                "unknown section {other:?}: expected inverter, pricing, battery, control, plan or web"
            )),
        }
    }
    out
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
        let dir = tempfile::tempdir().unwrap();
        let opts = write(
            &dir,
            "options.json",
            r#"{"battery": {"capacity_kwh": "big", "colour": 1}, "control": {"debug_mode": 3}}"#,
        );
        let e = Config::load(
            &Sources {
                toml: None,
                options_json: Some(&opts),
            },
            env(&[]),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("battery.capacity_kwh"), "{text}");
        assert!(text.contains("battery.colour"), "{text}");
        assert!(text.contains("control.debug_mode"), "{text}");
    }

    #[test]
    fn malformed_options_json_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let opts = write(&dir, "options.json", "{not json");
        let e = Config::load(
            &Sources {
                toml: None,
                options_json: Some(&opts),
            },
            env(&[]),
        )
        .unwrap_err();
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
    fn unknown_env_setting_is_rejected() {
        let e =
            Config::load(&Sources::default(), env(&[("FLUXION_BATTERY_SIZE", "3")])).unwrap_err();
        assert!(e
            .to_string()
            .contains("FLUXION_BATTERY_SIZE names no setting battery.size"));
    }
}
