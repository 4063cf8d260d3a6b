//! CronJob schedules: the five-field cron syntax (`*`, lists, ranges, steps) and the `@hourly`
//! family, evaluated in UTC as upstream does without `timeZone`.

use jiff::Timestamp;
use jiff::tz::TimeZone;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    /// Both day fields restricted: upstream matches either (cron's OR rule).
    days_or: bool,
}

fn field(text: &str, min: u32, max: u32, names: &[&str]) -> Result<(Vec<bool>, bool), String> {
    let mut set = vec![false; (max + 1) as usize];
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + min);
        }
        s.parse::<u32>()
            .map_err(|_| format!("unparseable value {s:?}"))
    };
    let restricted = text != "*" && text != "?";
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| format!("bad step {s:?}"))?),
            None => (part, 1),
        };
        if step == 0 {
            return Err("step must be positive".into());
        }
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { max } else { v })
        };
        // Sunday may be written 7.
        let hi = if max == 6 && hi == 7 { 6 } else { hi };
        let lo = if max == 6 && lo == 7 { 0 } else { lo };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{part:?} is out of range {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            set[v as usize] = true;
            v += step;
        }
    }
    Ok((set, restricted))
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let expanded = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [m, h, dom, mon, dow] = fields.as_slice() else {
            return Err(format!(
                "expected exactly 5 fields, found {}: {text}",
                fields.len()
            ));
        };
        const MONTHS: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let (days, dom_restricted) = field(dom, 1, 31, &[])?;
        let (weekdays, dow_restricted) = field(dow, 0, 6, &DAYS)?;
        Ok(Schedule {
            minutes: field(m, 0, 59, &[])?.0,
            hours: field(h, 0, 23, &[])?.0,
            days,
            months: field(mon, 1, 12, &MONTHS)?.0,
            weekdays,
            days_or: dom_restricted && dow_restricted,
        })
    }

    fn matches(&self, t: Timestamp) -> bool {
        let dt = t.to_zoned(TimeZone::UTC).datetime();
        let dom = self.days[dt.day() as usize];
        let dow = self.weekdays[dt.weekday().to_sunday_zero_offset() as usize];
        let day = if self.days_or { dom || dow } else { dom && dow };
        self.minutes[dt.minute() as usize]
            && self.hours[dt.hour() as usize]
            && self.months[dt.month() as usize]
            && day
    }

    /// The latest scheduled time (epoch seconds, on a minute) in `(after, until]`, looking back
    /// at most a day, as upstream gives up on too many missed starts.
    pub fn latest_between(&self, after: i64, until: i64) -> Option<i64> {
        let mut t = until - until.rem_euclid(60);
        let floor = after.max(until - 86_400);
        while t > floor {
            if Timestamp::from_second(t).is_ok_and(|ts| self.matches(ts)) {
                return Some(t);
            }
            t -= 60;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second()
    }

    #[test]
    fn every_minute_and_steps() {
        let s = Schedule::parse("*/1 * * * *").unwrap();
        assert_eq!(
            s.latest_between(at("2026-11-23T10:00:30Z"), at("2026-11-23T10:01:10Z")),
            Some(at("2026-11-23T10:01:00Z"))
        );
        assert_eq!(
            s.latest_between(at("2026-11-23T10:01:00Z"), at("2026-11-23T10:01:59Z")),
            None
        );
        let q = Schedule::parse("*/15 9-17 * * mon-fri").unwrap();
        // 2026-11-23 is a Monday.
        assert_eq!(
            q.latest_between(at("2026-11-23T09:00:00Z"), at("2026-11-23T09:20:00Z")),
            Some(at("2026-11-23T09:15:00Z"))
        );
        assert_eq!(
            q.latest_between(at("2026-11-22T09:00:00Z"), at("2026-11-22T09:20:00Z")),
            None
        );
    }

    #[test]
    fn macros_and_errors() {
        let h = Schedule::parse("@hourly").unwrap();
        assert_eq!(
            h.latest_between(at("2026-11-23T10:00:00Z"), at("2026-11-23T11:30:00Z")),
            Some(at("2026-11-23T11:00:00Z"))
        );
        assert!(Schedule::parse("* * *").is_err());
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("*/0 * * * *").is_err());
        assert!(Schedule::parse("0 0 * * 7").is_ok());
    }
}
