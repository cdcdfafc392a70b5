//! PV and house load forecasts per 15-minute slot: PV from the Solcast integration's
//! `detailedForecast` (or a generic `{start, end?, value}` list in W, kW, Wh or kWh), load from
//! the recorder's history of the house load sensor, averaged per quarter hour of the local day.
//! Pure functions: the controller does the reading.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::config::PvEstimate;
use crate::ha::HistoryRow;
use crate::price::{fill_ends, parse_time, slot_len, slot_start};

/// The Solcast integration's entities for today and tomorrow (English entity ids).
pub const SOLCAST_ENTITIES: [&str; 2] = [
    "sensor.solcast_pv_forecast_forecast_today",
    "sensor.solcast_pv_forecast_forecast_tomorrow",
];

/// Energy produced over `[start, end)`, spread evenly over it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub kwh: f64,
}

/// The PV forecast in the attributes of `entity`: Solcast's `detailedForecast` (30-minute
/// `{period_start, pv_estimate}` in kW; `band` picks `pv_estimate10`/`90`), or a `forecast`
/// list of `{start, end?, value}` whose unit (`unit_of_measurement`) is W or kW (mean power
/// over the interval) or Wh or kWh (energy in the interval). A missing end is the next start.
pub fn pv_intervals(
    entity: &str,
    attrs: &Value,
    band: PvEstimate,
) -> Result<Vec<Interval>, String> {
    let err = |what: String| format!("PV forecast entity {entity}: {what}");
    if let Some(list) = attrs.get("detailedForecast").and_then(Value::as_array) {
        let mut points = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let start = parse_time(item.get("period_start"))
                .map_err(|e| err(format!("detailedForecast[{i}]: {e}")))?
                .ok_or_else(|| err(format!("detailedForecast[{i}]: missing period_start")))?;
            let kw = item
                .get(band.key())
                .and_then(Value::as_f64)
                .ok_or_else(|| err(format!("detailedForecast[{i}]: no number {}", band.key())))?;
            points.push((start, None, kw));
        }
        return Ok(intervals(points, Duration::minutes(30), |kw, hours| {
            kw * hours
        }));
    }
    let Some(list) = attrs.get("forecast").and_then(Value::as_array) else {
        return Err(err(
            "no `detailedForecast` (Solcast) or `forecast` list of {start, end, value}".into(),
        ));
    };
    let unit = attrs
        .get("unit_of_measurement")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (power, factor) = match unit {
        "W" => (true, 0.001),
        "kW" => (true, 1.0),
        "Wh" => (false, 0.001),
        "kWh" => (false, 1.0),
        other => {
            return Err(err(format!(
                "unit {other:?}: a `forecast` list must be in W or kW (power) or Wh or kWh \
                 (energy per interval)"
            )))
        }
    };
    let mut points = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let start = parse_time(item.get("start"))
            .map_err(|e| err(format!("forecast[{i}]: {e}")))?
            .ok_or_else(|| err(format!("forecast[{i}]: missing start")))?;
        let end = parse_time(item.get("end")).map_err(|e| err(format!("forecast[{i}]: {e}")))?;
        let value = item
            .get("value")
            .and_then(Value::as_f64)
            .ok_or_else(|| err(format!("forecast[{i}]: no number value")))?;
        points.push((start, end, value * factor));
    }
    Ok(intervals(points, Duration::hours(1), |v, hours| {
        if power {
            v * hours
        } else {
            v
        }
    }))
}

/// Sorted intervals with ends filled from the next start (`price::fill_ends`; `single` for a
/// lone entry); `energy(value, hours)` turns a value into kWh.
fn intervals(
    mut points: Vec<(DateTime<Utc>, Option<DateTime<Utc>>, f64)>,
    single: Duration,
    energy: impl Fn(f64, f64) -> f64,
) -> Vec<Interval> {
    points.sort_by_key(|p| p.0);
    let times: Vec<_> = points.iter().map(|p| (p.0, p.1)).collect();
    let (_, ends) = fill_ends(&times, single);
    points
        .iter()
        .zip(ends)
        .filter(|(p, end)| *end > p.0)
        .map(|(&(start, _, v), end)| Interval {
            start,
            end,
            kwh: energy(v, hours(end - start)),
        })
        .collect()
}

fn hours(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 3_600_000.0
}

/// kWh of `intervals` falling into each 15-minute slot starting at `starts` (an interval's
/// energy spread evenly over it), and whether each slot was covered at all.
pub fn per_slot(intervals: &[Interval], starts: &[DateTime<Utc>]) -> Vec<Option<f64>> {
    starts
        .iter()
        .map(|&s| {
            let e = s + slot_len();
            let mut covered = false;
            let kwh = intervals
                .iter()
                .filter(|i| i.start < e && i.end > s)
                .map(|i| {
                    covered = true;
                    let overlap = hours(i.end.min(e) - i.start.max(s));
                    i.kwh * overlap / hours(i.end - i.start)
                })
                .sum();
            covered.then_some(kwh)
        })
        .collect()
}

/// Quarter hour of the local day (0..96) of the slot starting at `t`.
pub fn bin(t: DateTime<Utc>, tz: Tz) -> usize {
    let local = t.with_timezone(&tz);
    (local.hour() * 4 + local.minute() / 15) as usize
}

/// One day's house load by quarter hour of the local day: energy (kWh) and the hours it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct DayLoad {
    pub kwh: [f64; 96],
    pub hours: [f64; 96],
}

/// The local day `date` as a UTC range.
pub fn local_day(date: NaiveDate, tz: Tz) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let at = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    Some((at(date)?, at(date + Duration::days(1))?))
}

/// Time-weighted load of one local day from history rows, which are changes, not samples: each
/// value holds from its `last_changed` until the next row (or the day's end). Values that are
/// not numbers (`unavailable`, `unknown`) are gaps; `kw_per_unit` converts the sensor's unit
/// (W: 0.001). Negative readings count as 0.
pub fn day_load(
    rows: &[HistoryRow],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    tz: Tz,
    kw_per_unit: f64,
) -> DayLoad {
    let mut day = DayLoad {
        kwh: [0.0; 96],
        hours: [0.0; 96],
    };
    for (i, row) in rows.iter().enumerate() {
        let Some(v) = row
            .state
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
        else {
            continue;
        };
        let kw = (v * kw_per_unit).max(0.0);
        let from = row.last_changed.max(start);
        let to = rows
            .get(i + 1)
            .map_or(end, |next| next.last_changed)
            .min(end);
        let mut t = from;
        while t < to {
            let slot_end = (slot_start(t) + slot_len()).min(to);
            let h = hours(slot_end - t);
            let b = bin(t, tz);
            day.kwh[b] += kw * h;
            day.hours[b] += h;
            t = slot_end;
        }
    }
    day
}

/// The mean load (kW) per quarter hour of the day over `days`; quarter hours no day covers get
/// the mean of the covered ones. `None` when the days together cover less than 12 hours.
pub fn load_profile<'a>(days: impl IntoIterator<Item = &'a DayLoad>) -> Option<[f64; 96]> {
    let mut kwh = [0.0; 96];
    let mut h = [0.0; 96];
    for d in days {
        for b in 0..96 {
            kwh[b] += d.kwh[b];
            h[b] += d.hours[b];
        }
    }
    let total_h: f64 = h.iter().sum();
    if total_h < 12.0 {
        return None;
    }
    let mean = kwh.iter().sum::<f64>() / total_h;
    let mut out = [mean; 96];
    for b in 0..96 {
        if h[b] > 1e-9 {
            out[b] = kwh[b] / h[b];
        }
    }
    Some(out)
}

/// The days of history a profile is built from: the `count` full local days before `today`.
pub fn history_days(today: NaiveDate, count: u32) -> Vec<NaiveDate> {
    (1..=i64::from(count))
        .map(|d| today - Duration::days(d))
        .collect()
}

/// Profiles kept per day, so a past day is read from the recorder once.
pub type DayCache = BTreeMap<NaiveDate, DayLoad>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TZ: Tz = chrono_tz::Europe::Prague;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn row(state: &str, t: &str) -> HistoryRow {
        HistoryRow {
            state: state.into(),
            last_changed: at(t),
        }
    }

    #[test]
    fn solcast_half_hours_split_into_quarter_hours() {
        let attrs = json!({"detailedForecast": [
            {"period_start": "2025-04-10T12:00:00+02:00", "pv_estimate": 4.0, "pv_estimate10": 2.0, "pv_estimate90": 5.0},
            {"period_start": "2025-04-10T12:30:00+02:00", "pv_estimate": 3.0, "pv_estimate10": 1.0, "pv_estimate90": 4.0},
        ]});
        let iv = pv_intervals("sensor.s", &attrs, PvEstimate::PvEstimate).unwrap();
        assert_eq!(iv[0].kwh, 2.0);
        assert_eq!(iv[1].end, at("2025-04-10T13:00:00+02:00"));
        let starts: Vec<_> = (0..5)
            .map(|i| at("2025-04-10T12:00:00+02:00") + Duration::minutes(15 * i))
            .collect();
        let kwh = per_slot(&iv, &starts);
        assert_eq!(kwh, [Some(1.0), Some(1.0), Some(0.75), Some(0.75), None]);
        let low = pv_intervals("sensor.s", &attrs, PvEstimate::PvEstimate10).unwrap();
        assert_eq!(low[0].kwh, 1.0);
    }

    #[test]
    fn generic_lists_in_watts_or_kwh() {
        let w = json!({"unit_of_measurement": "W", "forecast": [
            {"start": "2025-04-10T12:00:00+02:00", "value": 2000},
            {"start": "2025-04-10T13:00:00+02:00", "end": "2025-04-10T13:30:00+02:00", "value": 1000},
        ]});
        let iv = pv_intervals("sensor.t", &w, PvEstimate::PvEstimate).unwrap();
        assert_eq!((iv[0].kwh, iv[1].kwh), (2.0, 0.5));
        let kwh = json!({"unit_of_measurement": "kWh", "forecast": [
            {"start": "2025-04-10T12:00:00+02:00", "end": "2025-04-10T13:00:00+02:00", "value": 2.4},
        ]});
        let iv = pv_intervals("sensor.t", &kwh, PvEstimate::PvEstimate).unwrap();
        assert_eq!(iv[0].kwh, 2.4);
        let bad = json!({"unit_of_measurement": "%", "forecast": []});
        assert!(pv_intervals("sensor.t", &bad, PvEstimate::PvEstimate)
            .unwrap_err()
            .contains("unit \"%\""));
        assert!(pv_intervals("sensor.t", &json!({}), PvEstimate::PvEstimate)
            .unwrap_err()
            .starts_with("PV forecast entity sensor.t: no `detailedForecast`"));
    }

    #[test]
    fn history_is_time_weighted_not_sample_averaged() {
        let (start, end) = local_day(NaiveDate::from_ymd_opt(2025, 1, 14).unwrap(), TZ).unwrap();
        // 00:00-00:05 at 600 W, then 3000 W (a kettle) for 1 minute, then 300 W; a gap of
        // unavailable from 00:20 to 00:30. Many rows in one minute weigh one minute.
        let rows = [
            row("600", "2025-01-13T22:00:00+00:00"),
            row("3000", "2025-01-13T23:05:00+00:00"),
            row("3000.5", "2025-01-13T23:05:30+00:00"),
            row("300", "2025-01-13T23:06:00+00:00"),
            row("unavailable", "2025-01-13T23:20:00+00:00"),
            row("400", "2025-01-13T23:30:00+00:00"),
        ];
        let d = day_load(&rows, start, end, TZ, 0.001);
        // Quarter 0: 5 min at 0.6 kW, 1 min at ~3 kW, 9 min at 0.3 kW.
        let q0 = 0.6 * 5.0 / 60.0 + (3.0 * 0.5 + 3.0005 * 0.5) / 60.0 + 0.3 * 9.0 / 60.0;
        assert!((d.kwh[0] - q0).abs() < 1e-9, "{}", d.kwh[0]);
        assert!((d.hours[0] - 0.25).abs() < 1e-9);
        // Quarter 1: 5 minutes of 0.3 kW, then the gap.
        assert!((d.hours[1] - 5.0 / 60.0).abs() < 1e-9);
        assert!((d.kwh[1] / d.hours[1] - 0.3).abs() < 1e-9);
        // 400 W holds to the end of the day.
        assert!((d.kwh[95] - 0.1).abs() < 1e-9);
        let profile = load_profile([&d]).unwrap();
        assert!((profile[1] - 0.3).abs() < 1e-9);
        assert!((profile[50] - 0.4).abs() < 1e-9);
    }

    #[test]
    fn days_average_by_coverage_and_too_little_is_nothing() {
        let (start, end) = local_day(NaiveDate::from_ymd_opt(2025, 1, 14).unwrap(), TZ).unwrap();
        let a = day_load(
            &[row("1000", "2025-01-13T23:00:00+00:00")],
            start,
            end,
            TZ,
            0.001,
        );
        let (s2, e2) = local_day(NaiveDate::from_ymd_opt(2025, 1, 13).unwrap(), TZ).unwrap();
        let b = day_load(&[row("2", "2025-01-12T23:00:00+00:00")], s2, e2, TZ, 1.0);
        let p = load_profile([&a, &b]).unwrap();
        assert!((p[10] - 1.5).abs() < 1e-9);
        // Six hours of data is not a profile.
        let short = day_load(
            &[row("500", "2025-01-14T17:00:00+00:00")],
            start,
            end,
            TZ,
            0.001,
        );
        assert_eq!(load_profile([&short]), None);
        assert_eq!(
            history_days(NaiveDate::from_ymd_opt(2025, 1, 15).unwrap(), 2),
            [
                NaiveDate::from_ymd_opt(2025, 1, 14).unwrap(),
                NaiveDate::from_ymd_opt(2025, 1, 13).unwrap()
            ]
        );
    }
}
