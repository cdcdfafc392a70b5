//! Spot prices: reads the attribute formats HA price integrations publish and the unit they
//! are in, expands hourly prices to 15-minute slots, applies the tariff (`tariff`) and the
//! fixed-price fallback.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;

use crate::config::PricingConfig;
use crate::tariff::Tariff;

pub const SLOT_MINUTES: i64 = 15;

pub fn slot_len() -> Duration {
    Duration::minutes(SLOT_MINUTES)
}

/// A price valid over `[start, end)`, per kWh, before fees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PricePoint {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub price: f64,
}

/// One 15-minute slot of the planning horizon, fees applied.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PriceSlot {
    pub start: DateTime<Utc>,
    pub buy: f64,
    pub sell: f64,
    /// The spot price before fees.
    pub spot: f64,
    /// True when the price came from the fixed fallback list.
    pub fixed: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PriceError {
    #[error(
        "spot price entity {entity} has no price attributes: expected `forecast`, `raw_today`/\
         `raw_tomorrow` (lists of start/end/price or value), `prices_today`/`prices_tomorrow`/\
         `prices` (lists of time/price), `today`/`tomorrow` (24 or 96 values) or ISO timestamp \
         keys"
    )]
    NoPrices { entity: String },
    #[error("spot price entity {entity}: {what}")]
    Malformed { entity: String, what: String },
    /// The unit cannot be read, or is in another currency than Home Assistant's.
    #[error("spot price entity {entity} is in {unit:?}: {what}")]
    Unit {
        entity: String,
        unit: String,
        what: String,
    },
}

/// A currency as FluxION shows money: the ISO code and the symbol people read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Currency {
    pub code: String,
    pub symbol: String,
}

impl Currency {
    pub fn new(code: &str) -> Currency {
        let code = code.trim().to_ascii_uppercase();
        let symbol = match code.as_str() {
            "CZK" => "Kč",
            "EUR" => "€",
            "GBP" => "£",
            "USD" => "$",
            "PLN" => "zł",
            "HUF" => "Ft",
            "RON" => "lei",
            "SEK" | "NOK" | "DKK" | "ISK" => "kr",
            other => other,
        }
        .to_string();
        Currency { code, symbol }
    }
}

/// How to read a price sensor's numbers: multiply by `per_kwh` to get a price per kWh in
/// `currency`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceUnit {
    /// `unit_of_measurement` as the sensor writes it, e.g. `Kč/kWh`.
    pub unit: String,
    pub currency: Currency,
    pub per_kwh: f64,
}

/// Reads `unit_of_measurement`: `<currency>/kWh` as is, `<currency>/MWh` / 1000, `/Wh` x 1000.
/// The currency is an ISO code (`CZK`, `EUR`) or a symbol (`Kč` is what the Czech spot price
/// integration writes for CZK, `€`, `£`, `$`, `zł`, `Ft`, `lei`, `kr`), or a hundredth of
/// `ha_currency` (`c`/`ct`/`cent`/`¢`, `öre`/`øre`, `gr`, `p`). It must be `ha_currency` (Home
/// Assistant's `/api/config` currency) when that is known. Anything else is an error: a price in
/// a unit FluxION cannot read is never planned as if it were per kWh.
pub fn read_unit(
    entity: &str,
    attrs: &Value,
    ha_currency: Option<&str>,
) -> Result<PriceUnit, PriceError> {
    let raw = attrs
        .get("unit_of_measurement")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let error = |what: String| PriceError::Unit {
        entity: entity.into(),
        unit: raw.clone(),
        what,
    };
    if raw.trim().is_empty() {
        return Err(error(
            "it has no unit_of_measurement; FluxION needs <currency>/kWh or <currency>/MWh \
             (e.g. Kč/kWh, EUR/MWh) to read its prices"
                .into(),
        ));
    }
    let Some((money, energy)) = raw.split_once('/') else {
        return Err(error(
            "not a price per energy: expected <currency>/kWh or <currency>/MWh".into(),
        ));
    };
    let per_energy = match energy.trim().to_ascii_lowercase().as_str() {
        "kwh" => 1.0,
        "mwh" => 0.001,
        "wh" => 1000.0,
        other => {
            return Err(error(format!(
                "{other:?} is not an energy unit FluxION reads: expected kWh or MWh"
            )))
        }
    };
    let ha = ha_currency.map(|c| c.trim().to_ascii_uppercase());
    let money = money.trim();
    let hundredth = |allowed: &[&str]| -> Result<(String, f64), PriceError> {
        match &ha {
            Some(code) if allowed.is_empty() || allowed.contains(&code.as_str()) => {
                Ok((code.clone(), 0.01))
            }
            Some(code) => Err(error(format!(
                "{money:?} is a hundredth of {}, but Home Assistant's currency is {code}",
                allowed.join("/")
            ))),
            None => Err(error(format!(
                "{money:?} is a hundredth of a currency, and Home Assistant did not say which"
            ))),
        }
    };
    let (code, scale) = match money {
        "Kč" | "kč" | "Kc" => ("CZK".to_string(), 1.0),
        "€" => ("EUR".to_string(), 1.0),
        "£" => ("GBP".to_string(), 1.0),
        "$" => ("USD".to_string(), 1.0),
        "zł" => ("PLN".to_string(), 1.0),
        "Ft" => ("HUF".to_string(), 1.0),
        "lei" => ("RON".to_string(), 1.0),
        "kr" => match &ha {
            Some(code) if ["SEK", "NOK", "DKK", "ISK"].contains(&code.as_str()) => {
                (code.clone(), 1.0)
            }
            _ => {
                return Err(error(format!(
                    "\"kr\" is SEK, NOK, DKK or ISK, and Home Assistant's currency ({}) is none \
                     of them",
                    ha.as_deref().unwrap_or("unknown")
                )))
            }
        },
        "c" | "ct" | "cent" | "cents" | "¢" => hundredth(&[])?,
        "öre" | "øre" | "ore" | "Öre" | "Øre" => hundredth(&["SEK", "NOK", "DKK"])?,
        "gr" => hundredth(&["PLN"])?,
        "p" => hundredth(&["GBP"])?,
        iso if iso.len() == 3 && iso.chars().all(|c| c.is_ascii_alphabetic()) => {
            (iso.to_ascii_uppercase(), 1.0)
        }
        other => {
            return Err(error(format!(
                "{other:?} is not a currency FluxION knows: use an ISO code such as CZK or EUR"
            )))
        }
    };
    if let Some(ha) = &ha {
        if &code != ha {
            return Err(error(format!(
                "prices in {code}, but Home Assistant's currency is {ha} (Settings > System > \
                 General): use a price sensor in {ha}, or change Home Assistant's currency"
            )));
        }
    }
    Ok(PriceUnit {
        unit: raw.clone(),
        currency: Currency::new(&code),
        per_kwh: per_energy * scale,
    })
}

/// Prices in the sensor's unit to prices per kWh.
pub fn scale(points: &mut [PricePoint], per_kwh: f64) {
    for p in points {
        p.price *= per_kwh;
    }
}

/// The slot containing `t`: quarter hours are aligned in every time zone HA supports.
pub fn slot_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let minute = t.minute() as i64 / SLOT_MINUTES * SLOT_MINUTES;
    t.with_minute(minute as u32)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .expect("valid time")
}

/// Parses the price attributes of `entity`; `today` is the local date for `today`/`tomorrow`.
pub fn parse_attributes(
    entity: &str,
    attrs: &Value,
    tz: Tz,
    today: NaiveDate,
) -> Result<Vec<PricePoint>, PriceError> {
    let malformed = |what: String| PriceError::Malformed {
        entity: entity.into(),
        what,
    };
    let Some(obj) = attrs.as_object() else {
        return Err(PriceError::NoPrices {
            entity: entity.into(),
        });
    };
    let mut points = Vec::new();
    // Lists of {start, end?, price|value}: `forecast` (e.g. Tibber-like and custom templates),
    // `raw_today`/`raw_tomorrow` (Nord Pool); of {time, price}: `prices_today`,
    // `prices_tomorrow`, `prices` (ENTSO-e). A missing end is the next item's start.
    let mut found_list = false;
    for key in [
        "forecast",
        "prices",
        "prices_today",
        "prices_tomorrow",
        "raw_today",
        "raw_tomorrow",
    ] {
        if let Some(list) = obj.get(key).and_then(Value::as_array) {
            found_list = true;
            let mut entries = Vec::new();
            for (i, item) in list.iter().enumerate() {
                if let Some(e) =
                    list_item(item).map_err(|e| malformed(format!("{key}[{i}]: {e}")))?
                {
                    entries.push(e);
                }
            }
            points.extend(with_ends(entries).map_err(|e| malformed(format!("{key}: {e}")))?);
        }
    }
    if !found_list {
        for (key, date) in [("today", today), ("tomorrow", today + Duration::days(1))] {
            match obj.get(key) {
                Some(Value::Array(values)) if !values.is_empty() => {
                    points.extend(
                        day_values(values, tz, date)
                            .map_err(|e| malformed(format!("{key}: {e}")))?,
                    );
                }
                _ => {}
            }
        }
    }
    if points.is_empty() && !found_list {
        points = timestamp_map(obj).map_err(malformed)?;
    }
    if points.is_empty() && !found_list {
        return Err(PriceError::NoPrices {
            entity: entity.into(),
        });
    }
    points.sort_by_key(|p| p.start);
    Ok(points)
}

/// An ISO 8601 time with an offset; `T` or a space between date and time (ENTSO-e writes
/// `2026-12-01 00:00:00+01:00`).
pub fn parse_time(v: Option<&Value>) -> Result<Option<DateTime<Utc>>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| format!("time {s:?} is not ISO 8601 with an offset ({e})")),
        Some(other) => Err(format!("time {other} is not a string")),
    }
}

/// One list entry: its start (`start` or ENTSO-e's `time`), its end if given, its price.
type Entry = (DateTime<Utc>, Option<DateTime<Utc>>, f64);

fn list_item(item: &Value) -> Result<Option<Entry>, String> {
    let start = match item.get("start") {
        Some(v) => parse_time(Some(v))?,
        None => parse_time(item.get("time"))?,
    }
    .ok_or("missing `start` (or `time`)")?;
    let end = parse_time(item.get("end"))?;
    let price = ["price", "value", "price_per_kwh"]
        .iter()
        .find_map(|k| item.get(*k));
    match price {
        // A null price is a hole the integration has not filled yet.
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let price = v
                .as_f64()
                .ok_or_else(|| format!("price {v} is not a number"))?;
            if end.is_some_and(|end| end <= start) {
                return Err(format!("end {} is not after start {start}", end.unwrap()));
            }
            Ok(Some((start, end, price)))
        }
    }
}

/// Gives every entry without an end the next entry's start, at most the shortest gap of the
/// list (15 or 60 minutes; an hour for a single entry), so a hole stays a hole.
fn with_ends(mut entries: Vec<Entry>) -> Result<Vec<PricePoint>, String> {
    entries.sort_by_key(|e| e.0);
    let times: Vec<_> = entries.iter().map(|e| (e.0, e.1)).collect();
    let (gap, ends) = fill_ends(&times, Duration::hours(1));
    let needs_gap = entries.iter().any(|e| e.1.is_none());
    if needs_gap && gap != Duration::minutes(15) && gap != Duration::hours(1) {
        return Err(format!(
            "times are {} minutes apart, expected 15 or 60",
            gap.num_minutes()
        ));
    }
    Ok(entries
        .iter()
        .zip(ends)
        .map(|(&(start, _, price), end)| PricePoint { start, end, price })
        .collect())
}

/// The end of each entry of a list sorted by start: its own end when given, else the next
/// start when that is at most the shortest gap away, else start + that gap (`single` for a
/// lone entry). Returns the gap too.
pub fn fill_ends(
    entries: &[(DateTime<Utc>, Option<DateTime<Utc>>)],
    single: Duration,
) -> (Duration, Vec<DateTime<Utc>>) {
    let gap = entries
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|d| *d > Duration::zero())
        .min()
        .unwrap_or(single);
    let ends = entries
        .iter()
        .enumerate()
        .map(|(i, &(start, end))| {
            end.unwrap_or_else(|| {
                entries
                    .get(i + 1)
                    .map(|e| e.0)
                    .filter(|&e| e > start && e - start <= gap)
                    .unwrap_or(start + gap)
            })
        })
        .collect();
    (gap, ends)
}

/// A local day as N equal intervals: 24 hours or 96 quarter hours (23/25 and 92/100 on DST days).
fn day_values(values: &[Value], tz: Tz, date: NaiveDate) -> Result<Vec<PricePoint>, String> {
    let start = local_midnight(tz, date)?;
    let end = local_midnight(tz, date + Duration::days(1))?;
    let minutes = (end - start).num_minutes();
    let n = values.len() as i64;
    let len = if minutes % n == 0 { minutes / n } else { 0 };
    if len != 60 && len != 15 {
        return Err(format!(
            "{n} values do not divide the {} hour local day into hours or quarter hours",
            minutes / 60
        ));
    }
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if v.is_null() {
            continue;
        }
        let price = v
            .as_f64()
            .ok_or_else(|| format!("value {i} ({v}) is not a number"))?;
        let s = start + Duration::minutes(len * i as i64);
        out.push(PricePoint {
            start: s,
            end: s + Duration::minutes(len),
            price,
        });
    }
    Ok(out)
}

fn local_midnight(tz: Tz, date: NaiveDate) -> Result<DateTime<Utc>, String> {
    let naive = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("midnight of {date} does not exist in {tz}"))
}

/// Attributes keyed by ISO timestamps (e.g. Czech spot price integrations): each price lasts
/// until the next timestamp; the last one as long as the shortest gap.
fn timestamp_map(obj: &serde_json::Map<String, Value>) -> Result<Vec<PricePoint>, String> {
    let mut entries = Vec::new();
    for (k, v) in obj {
        if let Ok(t) = DateTime::parse_from_rfc3339(k) {
            let price = v
                .as_f64()
                .ok_or_else(|| format!("price at {k} ({v}) is not a number"))?;
            entries.push((t.with_timezone(&Utc), None, price));
        }
    }
    with_ends(entries)
}

/// Expands prices to 15-minute slots; a later point wins where two overlap.
pub fn quarter_hours(points: &[PricePoint]) -> std::collections::BTreeMap<DateTime<Utc>, f64> {
    let mut out = std::collections::BTreeMap::new();
    for p in points {
        let mut t = slot_start(p.start);
        while t < p.end {
            out.insert(t, p.price);
            t += slot_len();
        }
    }
    out
}

/// Fixed fallback prices for `date` (24 or 96 values over the local day).
pub fn fixed_day(list: &[f64], tz: Tz, date: NaiveDate) -> Vec<PricePoint> {
    let start = match local_midnight(tz, date) {
        Ok(s) => s,
        Err(_) => return Vec::new(),
    };
    let len = Duration::minutes(if list.len() == 24 { 60 } else { 15 });
    // Local wall-clock index, so 17:00 always gets the 17:00 price, DST or not.
    let mut out = Vec::new();
    let end = local_midnight(tz, date + Duration::days(1)).unwrap_or(start + Duration::days(1));
    let mut t = start;
    while t < end {
        let local = t.with_timezone(&tz);
        let idx = if list.len() == 24 {
            local.hour() as usize
        } else {
            (local.hour() * 4 + local.minute() / 15) as usize
        };
        out.push(PricePoint {
            start: t,
            end: t + len,
            price: list[idx],
        });
        t += len;
    }
    out
}

/// The planning horizon from the slot containing `now`: spot prices first, fixed prices where
/// the spot entity has none (and up to the end of tomorrow when a fixed list is configured).
/// Stops at the first slot with no price, so the horizon is always contiguous; empty when the
/// current slot has no price.
pub fn horizon(
    spot: &[PricePoint],
    cfg: &PricingConfig,
    tz: Tz,
    now: DateTime<Utc>,
) -> Vec<PriceSlot> {
    // The configuration was validated when loaded; a schedule that cannot be read here
    // (a hand-built config) is left out rather than guessed.
    let tariff = Tariff::from_config(cfg).unwrap_or_else(|problems| {
        tracing::error!(
            "ignoring pricing.grid_fee_schedule: {}",
            problems.join("; ")
        );
        Tariff {
            fee_buy: cfg.grid_fee_buy,
            fee_sell: cfg.grid_fee_sell,
            vat_percent: cfg.vat_percent,
            windows: Vec::new(),
        }
    });
    let spot = quarter_hours(spot);
    let mut fixed_buy = std::collections::BTreeMap::new();
    let mut fixed_sell = std::collections::BTreeMap::new();
    if !cfg.fixed_buy_prices.is_empty() {
        let today = now.with_timezone(&tz).date_naive();
        let sell_list = if cfg.fixed_sell_prices.is_empty() {
            &cfg.fixed_buy_prices
        } else {
            &cfg.fixed_sell_prices
        };
        for d in 0..2 {
            let date = today + Duration::days(d);
            fixed_buy.extend(quarter_hours(&fixed_day(&cfg.fixed_buy_prices, tz, date)));
            fixed_sell.extend(quarter_hours(&fixed_day(sell_list, tz, date)));
        }
    }
    let mut out = Vec::new();
    let mut t = slot_start(now);
    loop {
        let (buy, sell, fixed) = if let Some(&p) = spot.get(&t) {
            (p, p, false)
        } else if let (Some(&b), Some(&s)) = (fixed_buy.get(&t), fixed_sell.get(&t)) {
            (b, s, true)
        } else {
            break;
        };
        out.push(PriceSlot {
            start: t,
            buy: tariff.buy(buy, t, tz),
            sell: tariff.sell(sell),
            spot: buy,
            fixed,
        });
        t += slot_len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TZ: Tz = chrono_tz::Europe::Prague;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 1, 15).unwrap()
    }

    #[test]
    fn forecast_list_hourly_expands_to_four_slots() {
        let attrs = json!({"forecast": [
            {"start": "2025-01-15T10:00:00+01:00", "end": "2025-01-15T11:00:00+01:00", "price": 2.0},
            {"start": "2025-01-15T11:00:00+01:00", "end": "2025-01-15T11:15:00+01:00", "price": 3.0},
        ]});
        let points = parse_attributes("sensor.p", &attrs, TZ, date()).unwrap();
        let q = quarter_hours(&points);
        assert_eq!(q.len(), 5);
        assert_eq!(q[&at("2025-01-15T10:45:00+01:00")], 2.0);
        assert_eq!(q[&at("2025-01-15T11:00:00+01:00")], 3.0);
    }

    #[test]
    fn today_tomorrow_arrays_in_local_time() {
        let today: Vec<f64> = (0..24).map(f64::from).collect();
        let tomorrow: Vec<f64> = (0..96).map(|i| 100.0 + f64::from(i)).collect();
        let attrs = json!({"today": today, "tomorrow": tomorrow});
        let q = quarter_hours(&parse_attributes("sensor.p", &attrs, TZ, date()).unwrap());
        assert_eq!(q.len(), 96 * 2);
        // 17:30 local (UTC+1) is hour 17 today.
        assert_eq!(q[&at("2025-01-15T17:30:00+01:00")], 17.0);
        assert_eq!(q[&at("2025-01-16T00:15:00+01:00")], 101.0);
    }

    #[test]
    fn dst_day_with_23_hours() {
        let d = NaiveDate::from_ymd_opt(2025, 3, 30).unwrap();
        let attrs = json!({"today": vec![1.0; 23]});
        let points = parse_attributes("sensor.p", &attrs, TZ, d).unwrap();
        assert_eq!(points.len(), 23);
        let bad = json!({"today": vec![1.0; 24]});
        assert!(parse_attributes("sensor.p", &bad, TZ, d).is_err());
    }

    #[test]
    fn timestamp_map_attributes() {
        let attrs = json!({
            "unit_of_measurement": "CZK/kWh",
            "2025-01-15T10:00:00+01:00": 1.5,
            "2025-01-15T11:00:00+01:00": 2.5,
        });
        let q = quarter_hours(&parse_attributes("sensor.p", &attrs, TZ, date()).unwrap());
        assert_eq!(q.len(), 8);
        assert_eq!(q[&at("2025-01-15T11:45:00+01:00")], 2.5);
    }

    #[test]
    fn errors_name_the_entity_and_the_problem() {
        let e =
            parse_attributes("sensor.p", &json!({"friendly_name": "x"}), TZ, date()).unwrap_err();
        assert!(e.to_string().contains("sensor.p has no price attributes"));
        let e =
            parse_attributes("sensor.p", &json!({"today": [1.0, "x"]}), TZ, date()).unwrap_err();
        assert!(e.to_string().contains("today"), "{e}");
        let e = parse_attributes("sensor.p", &json!({"forecast": [{"price": 1}]}), TZ, date())
            .unwrap_err();
        assert!(
            e.to_string().contains("forecast[0]: missing `start`"),
            "{e}"
        );
    }

    #[test]
    fn entso_e_lists_of_time_and_price() {
        // As the ENTSO-e integration writes them: a space between date and time, no end.
        let hour =
            |h: u32, p: f64| json!({"time": format!("2026-12-01 {h:02}:00:00+01:00"), "price": p});
        let quarter =
            |m: u32, p: f64| json!({"time": format!("2026-12-02 00:{m:02}:00+01:00"), "price": p});
        let attrs = json!({
            "unit_of_measurement": "EUR/kWh",
            "prices_today": [hour(0, 0.12), hour(1, 0.10), hour(2, 0.09)],
            "prices_tomorrow": [quarter(0, 0.20), quarter(15, 0.21), quarter(30, 0.22)],
        });
        let d = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let q = quarter_hours(&parse_attributes("sensor.entsoe", &attrs, TZ, d).unwrap());
        // Hourly today: four slots each; quarter-hourly tomorrow: one slot each.
        assert_eq!(q.len(), 12 + 3);
        assert_eq!(q[&at("2026-12-01T01:45:00+01:00")], 0.10);
        assert_eq!(q[&at("2026-12-01T02:45:00+01:00")], 0.09);
        assert_eq!(q[&at("2026-12-02T00:15:00+01:00")], 0.21);
        assert!(!q.contains_key(&at("2026-12-02T00:45:00+01:00")));
        // `prices` alone (today and tomorrow in one list) reads the same way.
        let attrs = json!({"prices": [hour(0, 0.12), hour(1, 0.10)]});
        assert_eq!(
            quarter_hours(&parse_attributes("s", &attrs, TZ, d).unwrap()).len(),
            8
        );
    }

    #[test]
    fn units_and_currencies() {
        let unit = |u: &str, ha: Option<&str>| {
            read_unit("sensor.p", &json!({"unit_of_measurement": u}), ha)
        };
        let ok = |u: &str, ha: Option<&str>| {
            let r = unit(u, ha).unwrap();
            (r.currency.code, r.currency.symbol, r.per_kwh)
        };
        assert_eq!(ok("Kč/kWh", Some("CZK")), ("CZK".into(), "Kč".into(), 1.0));
        assert_eq!(ok("CZK/kWh", Some("CZK")), ("CZK".into(), "Kč".into(), 1.0));
        assert_eq!(
            ok("EUR/MWh", Some("EUR")),
            ("EUR".into(), "€".into(), 0.001)
        );
        assert_eq!(ok("€/MWh", None), ("EUR".into(), "€".into(), 0.001));
        assert_eq!(ok("c/kWh", Some("EUR")).2, 0.01);
        assert_eq!(
            ok("öre/kWh", Some("SEK")),
            ("SEK".into(), "kr".into(), 0.01)
        );
        assert_eq!(ok("kr/kWh", Some("NOK")).0, "NOK");
        let e = unit("EUR/MWh", Some("CZK")).unwrap_err().to_string();
        assert_eq!(
            e,
            "spot price entity sensor.p is in \"EUR/MWh\": prices in EUR, but Home Assistant's \
             currency is CZK (Settings > System > General): use a price sensor in CZK, or change \
             Home Assistant's currency"
        );
        for (u, says) in [
            ("EUR/kW", "\"kw\" is not an energy unit"),
            ("points/kWh", "\"points\" is not a currency"),
            ("", "has no unit_of_measurement"),
            ("EUR", "not a price per energy"),
            ("kr/kWh", "\"kr\" is SEK, NOK, DKK or ISK"),
        ] {
            let e = unit(u, Some("CZK")).unwrap_err().to_string();
            assert!(e.contains(says), "{u}: {e}");
        }
        // A price in MWh becomes a price per kWh.
        let mut points = vec![PricePoint {
            start: at("2025-01-15T10:00:00Z"),
            end: at("2025-01-15T11:00:00Z"),
            price: 95.3,
        }];
        scale(&mut points, ok("EUR/MWh", Some("EUR")).2);
        assert!((points[0].price - 0.0953).abs() < 1e-12);
    }

    #[test]
    fn horizon_applies_vat_and_the_fee_schedule() {
        let points = vec![PricePoint {
            start: at("2025-01-15T05:00:00Z"),
            end: at("2025-01-15T07:00:00Z"),
            price: 2.0,
        }];
        let cfg = PricingConfig {
            grid_fee_buy: 0.5,
            grid_fee_sell: 0.3,
            vat_percent: 21.0,
            grid_fee_schedule: vec![crate::config::FeeWindow {
                from: "07:00".into(),
                to: "22:00".into(),
                buy_fee: 1.5,
                days: None,
            }],
            ..Default::default()
        };
        let h = horizon(&points, &cfg, TZ, at("2025-01-15T05:00:00Z"));
        assert_eq!(h.len(), 8);
        // 06:00 local: low tariff; 07:00 local: high tariff.
        assert!((h[0].buy - 2.5 * 1.21).abs() < 1e-12, "{:?}", h[0]);
        assert!((h[4].buy - 4.0 * 1.21).abs() < 1e-12, "{:?}", h[4]);
        assert!((h[4].sell - 1.7).abs() < 1e-12);
        assert_eq!(h[4].spot, 2.0);
    }

    #[test]
    fn horizon_applies_fees_and_stops_at_the_first_gap() {
        let points = vec![
            PricePoint {
                start: at("2025-01-15T10:00:00Z"),
                end: at("2025-01-15T11:00:00Z"),
                price: 1.0,
            },
            PricePoint {
                start: at("2025-01-15T12:00:00Z"),
                end: at("2025-01-15T13:00:00Z"),
                price: 1.0,
            },
        ];
        let cfg = PricingConfig {
            grid_fee_buy: 0.5,
            grid_fee_sell: 0.1,
            ..Default::default()
        };
        let h = horizon(&points, &cfg, TZ, at("2025-01-15T10:20:00Z"));
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].start, at("2025-01-15T10:15:00Z"));
        assert_eq!((h[0].buy, h[0].sell), (1.5, 0.9));
        assert!(horizon(&points, &cfg, TZ, at("2025-01-15T11:05:00Z")).is_empty());
    }

    #[test]
    fn fixed_prices_fill_missing_slots_to_the_end_of_tomorrow() {
        let buy: Vec<f64> = (0..24).map(|h| f64::from(h) / 10.0).collect();
        let cfg = PricingConfig {
            fixed_buy_prices: buy,
            ..Default::default()
        };
        let now = at("2025-01-15T22:50:00+01:00");
        let points = vec![PricePoint {
            start: at("2025-01-15T22:45:00+01:00"),
            end: at("2025-01-15T23:00:00+01:00"),
            price: 9.0,
        }];
        let h = horizon(&points, &cfg, TZ, now);
        assert_eq!(h.len(), 1 + 4 + 96);
        assert!(!h[0].fixed && h[0].buy == 9.0);
        assert!(h[1].fixed && (h[1].buy - 2.3).abs() < 1e-12);
        assert!((h.last().unwrap().buy - 2.3).abs() < 1e-12);
    }
}
