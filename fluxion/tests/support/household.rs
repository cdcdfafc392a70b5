//! A household for the fixture days (shared by the tests and the bench): a house load shaped
//! like the BDEW H0 standard household profile (night base, morning and evening peaks, 13 kWh
//! on a winter day), seven days of its recorder history with day-to-day variation, appliance
//! spikes and 1-minute changes, a 6 kWp PV system as Solcast's `detailedForecast`, and the
//! "actual" day that differs from both forecasts (other spikes, passing clouds). All
//! deterministic (a fixed-seed generator), so figures can be compared between runs.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

/// Mean house load in kW by hour of a winter weekday (13.0 kWh a day).
const WINTER_LOAD_KW: [f64; 24] = [
    0.35, 0.30, 0.27, 0.26, 0.26, 0.30, 0.45, 0.60, 0.55, 0.50, 0.50, 0.55, 0.65, 0.60, 0.50, 0.48,
    0.55, 0.75, 0.95, 1.00, 0.90, 0.75, 0.60, 0.45,
];

/// The seasons of the fixture days: load scale, PV (sunrise, sunset in local hours, peak
/// share of the 6 kWp on a clear day; none in winter: the array is under snow).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Season {
    pub load_scale: f64,
    pub pv: Option<(f64, f64, f64)>,
}

pub const PV_KWP: f64 = 6.0;

/// The season of a price fixture day.
pub fn season(day: &str) -> Season {
    match day {
        "winter" => Season {
            load_scale: 1.0,
            pv: None,
        },
        "spring_pv" | "flat" => Season {
            load_scale: 0.85,
            pv: Some((6.5, 19.75, 0.78)),
        },
        "summer_negative" => Season {
            load_scale: 0.75,
            pv: Some((5.0, 21.0, 0.85)),
        },
        // November in Prague.
        _ => Season {
            load_scale: 0.95,
            pv: Some((7.0, 16.25, 0.30)),
        },
    }
}

/// A small deterministic generator (64-bit LCG, top bits): uniform in [0, 1).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn local_hours(t: DateTime<Utc>, tz: Tz) -> f64 {
    use chrono::Timelike;
    let l = t.with_timezone(&tz);
    l.hour() as f64 + l.minute() as f64 / 60.0 + l.second() as f64 / 3600.0
}

/// The profile's load at `t` (hourly means interpolated linearly between hour centres).
pub fn mean_load_kw(t: DateTime<Utc>, tz: Tz, s: Season) -> f64 {
    let h = local_hours(t, tz) - 0.5;
    let i = h.floor().rem_euclid(24.0) as usize;
    let f = h - h.floor();
    (WINTER_LOAD_KW[i] * (1.0 - f) + WINTER_LOAD_KW[(i + 1) % 24] * f) * s.load_scale
}

/// One day's minute-by-minute load in W from `start` (a local midnight): the profile times a
/// day factor and a slow wobble, plus appliance spikes (kettle, oven, washing machine).
pub fn day_load_w(start: DateTime<Utc>, tz: Tz, s: Season, seed: u64) -> Vec<(DateTime<Utc>, f64)> {
    let mut rng = Rng::new(seed);
    let day_factor = 0.88 + 0.24 * rng.next();
    let mut spikes = Vec::new();
    for _ in 0..(3 + (rng.next() * 4.0) as usize) {
        // Mostly mornings and evenings.
        let hour = if rng.next() < 0.5 {
            6.5 + rng.next() * 3.0
        } else {
            17.0 + rng.next() * 4.0
        };
        let minutes = 4.0 + rng.next() * 40.0;
        let kw = 1.2 + rng.next() * 1.8;
        spikes.push((hour, hour + minutes / 60.0, kw));
    }
    let mut wobble = 1.0;
    (0..1440)
        .map(|m| {
            let t = start + Duration::minutes(m);
            wobble = (wobble + (rng.next() - 0.5) * 0.08).clamp(0.8, 1.2);
            let h = local_hours(t, tz);
            let spike: f64 = spikes
                .iter()
                .filter(|(a, b, _)| (*a..*b).contains(&h))
                .map(|s| s.2)
                .sum();
            (
                t,
                (mean_load_kw(t, tz, s) * day_factor * wobble + spike) * 1000.0,
            )
        })
        .collect()
}

/// Recorder rows (time, state) of `days` local days before `today` for a sensor in W,
/// rounded to whole watts as the Solax integration reports them.
pub fn load_history(
    today: NaiveDate,
    days: u32,
    tz: Tz,
    s: Season,
) -> Vec<(DateTime<Utc>, String)> {
    let mut rows = Vec::new();
    for d in (1..=i64::from(days)).rev() {
        let date = today - Duration::days(d);
        let start = fluxion::forecast::local_day(date, tz).unwrap().0;
        for (t, w) in day_load_w(start, tz, s, 1000 + d as u64) {
            rows.push((t, format!("{}", w.round())));
        }
    }
    rows
}

/// Clear-sky PV power (kW) at `t`.
pub fn pv_kw(t: DateTime<Utc>, tz: Tz, s: Season) -> f64 {
    let Some((rise, set, peak)) = s.pv else {
        return 0.0;
    };
    let h = local_hours(t, tz);
    if h <= rise || h >= set {
        return 0.0;
    }
    let x = std::f64::consts::PI * (h - rise) / (set - rise);
    PV_KWP * peak * x.sin().powf(1.3)
}

/// Solcast's `detailedForecast` attributes for the local day `date`: 48 half hours with the
/// median and the 10/90 % bands (kW, mean over the half hour).
pub fn solcast_attributes(date: NaiveDate, tz: Tz, s: Season) -> Value {
    let start = fluxion::forecast::local_day(date, tz).unwrap().0;
    let list: Vec<Value> = (0..48)
        .map(|i| {
            let t = start + Duration::minutes(30 * i);
            let kw: f64 = (0..6)
                .map(|k| pv_kw(t + Duration::minutes(5 * k + 2), tz, s))
                .sum::<f64>()
                / 6.0;
            let local = t.with_timezone(&tz).to_rfc3339();
            json!({
                "period_start": local,
                "pv_estimate": (kw * 10000.0).round() / 10000.0,
                "pv_estimate10": (kw * 0.6 * 10000.0).round() / 10000.0,
                "pv_estimate90": (kw * 1.1 * 10000.0).round() / 10000.0,
            })
        })
        .collect();
    let total: f64 = list
        .iter()
        .map(|v| v["pv_estimate"].as_f64().unwrap() * 0.5)
        .sum();
    json!({
        "unit_of_measurement": "kWh",
        "device_class": "energy",
        "friendly_name": "Solcast PV Forecast Forecast Today",
        "detailedForecast": list,
        "estimate": total,
    })
}

/// What really happens in each 15-minute slot from `start`: house load and PV in kWh. The
/// load is another draw of the same household (seed), the PV the clear-sky curve the forecast
/// is made from, with passing clouds.
pub fn actual_day(start: DateTime<Utc>, slots: usize, tz: Tz, s: Season) -> (Vec<f64>, Vec<f64>) {
    let mut load = Vec::new();
    let mut days = Vec::new();
    let mut pv = Vec::new();
    let mut clouds = Rng::new(77);
    let mut cloud = 1.0;
    for i in 0..slots {
        let t = start + Duration::minutes(15 * i as i64);
        if i % 96 == 0 {
            days = day_load_w(t, tz, s, 5 + (i / 96) as u64);
        }
        let m0 = (i % 96) * 15;
        load.push(
            days[m0..m0 + 15]
                .iter()
                .map(|(_, w)| w / 1000.0 / 60.0)
                .sum(),
        );
        // Mean-reverting around 0.95: the forecast is about right on average, off by up to
        // a third in a passing cloud.
        cloud = (0.95 + 0.8 * (cloud - 0.95) + (clouds.next() - 0.5) * 0.3).clamp(0.4, 1.1);
        let kwh: f64 = (0..3)
            .map(|k| pv_kw(t + Duration::minutes(5 * k + 2), tz, s))
            .sum::<f64>()
            / 3.0
            * 0.25;
        pv.push(kwh * cloud);
    }
    (load, pv)
}
