//! Tariffs as households pay them: from a spot price to the buy and sell price of one slot.
//! buy = (spot + `grid_fee_buy` + the time-of-use fees of the windows the slot is in) x
//! (1 + `vat_percent` / 100); sell = spot - `grid_fee_sell` (a household selling to its
//! trader charges no VAT). Windows are in Home Assistant's local time.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use crate::config::{FeeWindow, PricingConfig};

/// One `pricing.grid_fee_schedule` entry, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Minutes after local midnight; `to` may be 1440 ("24:00"). `to <= from` wraps midnight.
    from: u32,
    to: u32,
    /// Monday first; for a window over midnight, the day it starts.
    days: [bool; 7],
    buy_fee: f64,
}

/// The parsed `pricing` tariff settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tariff {
    pub fee_buy: f64,
    pub fee_sell: f64,
    pub vat_percent: f64,
    pub windows: Vec<Window>,
}

impl Tariff {
    /// The tariff of `cfg`, or every problem with its schedule (each naming the entry).
    pub fn from_config(cfg: &PricingConfig) -> Result<Tariff, Vec<String>> {
        let mut windows = Vec::new();
        let mut problems = Vec::new();
        for (i, w) in cfg.grid_fee_schedule.iter().enumerate() {
            match parse_window(w) {
                Ok(w) => windows.push(w),
                Err(e) => problems.push(format!("pricing.grid_fee_schedule[{i}]: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(Tariff {
                fee_buy: cfg.grid_fee_buy,
                fee_sell: cfg.grid_fee_sell,
                vat_percent: cfg.vat_percent,
                windows,
            })
        } else {
            Err(problems)
        }
    }

    /// The time-of-use fee of the slot starting at `t`: the sum over the windows it is in.
    pub fn scheduled_fee(&self, t: DateTime<Utc>, tz: Tz) -> f64 {
        let local = t.with_timezone(&tz);
        let minute = local.hour() * 60 + local.minute();
        let today = local.weekday().num_days_from_monday() as usize;
        let yesterday = (local - Duration::days(1)).weekday().num_days_from_monday() as usize;
        self.windows
            .iter()
            .filter(|w| {
                if w.from < w.to {
                    w.days[today] && (w.from..w.to).contains(&minute)
                } else {
                    (w.days[today] && minute >= w.from) || (w.days[yesterday] && minute < w.to)
                }
            })
            .map(|w| w.buy_fee)
            .sum()
    }

    /// What a kWh bought in the slot starting at `t` costs.
    pub fn buy(&self, spot: f64, t: DateTime<Utc>, tz: Tz) -> f64 {
        (spot + self.fee_buy + self.scheduled_fee(t, tz)) * (1.0 + self.vat_percent / 100.0)
    }

    /// What a kWh sold earns.
    pub fn sell(&self, spot: f64) -> f64 {
        spot - self.fee_sell
    }
}

fn parse_window(w: &FeeWindow) -> Result<Window, String> {
    let from = clock(&w.from, false).map_err(|e| format!("from {e}"))?;
    let to = clock(&w.to, true).map_err(|e| format!("to {e}"))?;
    if from == to {
        return Err(format!(
            "from and to are both {:?}: a window for the whole day is 00:00 to 24:00",
            w.from
        ));
    }
    if !w.buy_fee.is_finite() {
        return Err(format!("buy_fee ({}) must be a finite number", w.buy_fee));
    }
    Ok(Window {
        from,
        to,
        days: days(w.days.as_deref().unwrap_or(""))?,
        buy_fee: w.buy_fee,
    })
}

/// "HH:MM" as minutes after midnight; "24:00" only as an end.
fn clock(text: &str, end: bool) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a time of day such as 06:00 or 22:30");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h == 24 && m == 0 && end {
        return Ok(1440);
    }
    if h > 23 || m > 59 || m % 15 != 0 {
        return Err(if m % 15 != 0 && h <= 23 && m <= 59 {
            format!("{text:?} is not on a quarter hour (prices and plans are per 15 minutes)")
        } else {
            bad()
        });
    }
    Ok(h * 60 + m)
}

/// "mon-fri", "sat,sun", "mon,wed-fri", "fri-mon"; empty or "daily": every day.
fn days(text: &str) -> Result<[bool; 7], String> {
    let text = text.trim().to_ascii_lowercase();
    if text.is_empty() || text == "daily" {
        return Ok([true; 7]);
    }
    let day = |name: &str| -> Result<usize, String> {
        name.trim()
            .parse::<Weekday>()
            .map(|d| d.num_days_from_monday() as usize)
            .map_err(|_| {
                format!("days {text:?}: {name:?} is not a day (mon, tue, wed, thu, fri, sat, sun)")
            })
    };
    let mut out = [false; 7];
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    out[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => out[day(part)?] = true,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TZ: Tz = chrono_tz::Europe::Prague;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn window(from: &str, to: &str, fee: f64, days: Option<&str>) -> FeeWindow {
        FeeWindow {
            from: from.into(),
            to: to.into(),
            buy_fee: fee,
            days: days.map(str::to_string),
        }
    }

    #[test]
    fn vat_applies_to_spot_and_every_fee_and_not_to_selling() {
        let cfg = PricingConfig {
            grid_fee_buy: 0.5,
            grid_fee_sell: 0.2,
            vat_percent: 21.0,
            grid_fee_schedule: vec![window("06:00", "22:00", 1.0, None)],
            ..Default::default()
        };
        let t = Tariff::from_config(&cfg).unwrap();
        // Wednesday 10:00 local: in the window.
        let day = at("2025-01-15T10:00:00+01:00");
        assert!((t.buy(2.0, day, TZ) - (2.0 + 0.5 + 1.0) * 1.21).abs() < 1e-12);
        let night = at("2025-01-15T23:00:00+01:00");
        assert!((t.buy(2.0, night, TZ) - 2.5 * 1.21).abs() < 1e-12);
        assert!((t.sell(2.0) - 1.8).abs() < 1e-12);
    }

    #[test]
    fn windows_over_midnight_belong_to_the_day_they_start() {
        let cfg = PricingConfig {
            grid_fee_schedule: vec![
                window("22:00", "06:00", 0.3, Some("mon-fri")),
                window("00:00", "24:00", 0.1, Some("sat,sun")),
            ],
            ..Default::default()
        };
        let t = Tariff::from_config(&cfg).unwrap();
        // Friday 23:00 and Saturday 02:00 are in Friday night's window; Saturday also in the
        // weekend one. Sunday 23:00 is not (Sunday is not in mon-fri), Monday 02:00 neither.
        assert_eq!(t.scheduled_fee(at("2025-01-17T23:00:00+01:00"), TZ), 0.3);
        assert!((t.scheduled_fee(at("2025-01-18T02:00:00+01:00"), TZ) - 0.4).abs() < 1e-12);
        assert_eq!(t.scheduled_fee(at("2025-01-19T23:00:00+01:00"), TZ), 0.1);
        assert_eq!(t.scheduled_fee(at("2025-01-20T02:00:00+01:00"), TZ), 0.0);
        assert_eq!(t.scheduled_fee(at("2025-01-20T05:45:00+01:00"), TZ), 0.0);
        assert_eq!(t.scheduled_fee(at("2025-01-20T22:00:00+01:00"), TZ), 0.3);
    }

    #[test]
    fn bad_windows_are_named() {
        let cfg = PricingConfig {
            grid_fee_schedule: vec![
                window("6:00", "25:00", 0.3, None),
                window("06:10", "08:00", 0.3, None),
                window("08:00", "08:00", 0.3, None),
                window("08:00", "09:00", 0.3, Some("mon-fry")),
            ],
            ..Default::default()
        };
        let e = Tariff::from_config(&cfg).unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(
            e[0].starts_with("pricing.grid_fee_schedule[0]: to \"25:00\""),
            "{e:?}"
        );
        assert!(e[1].contains("not on a quarter hour"), "{e:?}");
        assert!(e[2].contains("00:00 to 24:00"), "{e:?}");
        assert!(e[3].contains("\"fry\" is not a day"), "{e:?}");
        assert_eq!(
            days("fri-mon").unwrap(),
            [true, false, false, false, true, true, true]
        );
    }
}
