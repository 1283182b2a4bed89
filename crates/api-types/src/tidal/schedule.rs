//! Tidal cron schedules: `CRON_TZ=<IANA zone> <fields>` parsed once, then asked for the firing just after
//! or at/before an instant. Pure: the zone data is jiff's bundled tz database, never the host's files, so
//! the webhook and the controller accept the same zones whatever image they run in.
//!
//! # Syntax
//! Five fields `minute hour day-of-month month day-of-week`, or six with a leading `second` field (an
//! extension of ours, for schedules finer than a minute). Each field is a comma list of `*`, `?`, `n`,
//! `a-b`, `*/s`, `a/s` or `a-b/s`; months take `JAN`..`DEC` and weekdays `SUN`..`SAT` (0 and 7 are both
//! Sunday). `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight` and `@hourly` stand for
//! their five-field forms. As in Vixie cron and robfig/cron (Kubernetes CronJob): when both day fields
//! are restricted (neither starts with `*` or `?`), a day matching either fires.
//!
//! # Time semantics
//! Fields are wall-clock times in the rule's zone; each matching wall time fires once:
//! - a wall time skipped by a DST jump (02:30 on a spring-forward night) fires at the jump, the first
//!   instant after the skipped time (like Vixie cron, which runs skipped jobs right after the change);
//! - a wall time that occurs twice (01:30 on a fall-back night) fires on its first occurrence only.
//!
//! With these rules the map from matching wall times to instants never goes backwards, which is what makes
//! [`CronSchedule::next_after`] and [`CronSchedule::last_at_or_before`] exact with a plain field-by-field
//! walk over wall times.

use std::fmt;
use std::sync::OnceLock;

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone, TimeZoneDatabase};
use jiff::{SignedDuration, Timestamp};

/// How far [`CronSchedule::next_after`] and [`CronSchedule::last_at_or_before`] search. A valid schedule
/// fires at least once in any 8 years (29 February skips at most 8 years, e.g. 2096 → 2104).
const SEARCH_YEARS: i16 = 9;

/// jiff's bundled IANA tz database (loaded once).
pub fn tz_database() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

/// A parsed `CRON_TZ=<zone> <fields>` schedule.
#[derive(Clone)]
pub struct CronSchedule {
    zone: String,
    tz: TimeZone,
    seconds: u64,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    dom_star: bool,
    dow_star: bool,
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CronSchedule")
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: FieldSpec = FieldSpec {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DOM: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &MONTHS,
};
// 7 is accepted as Sunday and folded onto 0 after parsing.
const DOW: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &WEEKDAYS,
};

impl FieldSpec {
    fn value(&self, s: &str) -> Result<u32, String> {
        if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            // Month names start at 1 (JAN), weekday names at 0 (SUN).
            return Ok(i as u32 + u32::from(self.names.len() == 12));
        }
        let v: u32 = s.parse().map_err(|_| {
            let names = if self.names.is_empty() {
                String::new()
            } else {
                format!(
                    " or a name ({}-{})",
                    self.names[0],
                    self.names[self.names.len() - 1]
                )
            };
            format!(
                "{} field: {s:?} is not a number {}-{}{names}",
                self.name, self.min, self.max
            )
        })?;
        if v < self.min || v > self.max {
            return Err(format!(
                "{} field: {v} is out of range {}-{}",
                self.name, self.min, self.max
            ));
        }
        Ok(v)
    }

    /// Parses one field into a bit set; the bool is whether it starts with `*` or `?`.
    fn parse(&self, field: &str) -> Result<(u64, bool), String> {
        let star = field.starts_with('*') || field.starts_with('?');
        let mut bits = 0u64;
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!(
                            "{} field: step {s:?} in {part:?} must be a positive number",
                            self.name
                        )
                    })?;
                    (r, Some(step))
                }
                None => (part, None),
            };
            let (lo, hi) = if range == "*" || range == "?" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(format!(
                        "{} field: range {range:?} runs backwards; write {b}-{a}",
                        self.name
                    ));
                }
                (a, b)
            } else if range.is_empty() {
                return Err(format!("{} field: empty item in {field:?}", self.name));
            } else {
                let a = self.value(range)?;
                // `a/s` means from a to the field's maximum in steps of s.
                (a, if step.is_some() { self.max } else { a })
            };
            let step = step.unwrap_or(1);
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                v += step;
            }
        }
        Ok((bits, star))
    }
}

fn has(bits: u64, v: i8) -> bool {
    bits & (1 << v) != 0
}

impl CronSchedule {
    /// Parses `CRON_TZ=<zone> <fields>`; the error says what is wrong and how to write it.
    pub fn parse(cron: &str) -> Result<Self, String> {
        let Some(rest) = cron.strip_prefix("CRON_TZ=") else {
            return Err(format!(
                "cron {cron:?} must start with CRON_TZ=<zone>, e.g. \"CRON_TZ=Asia/Shanghai 0 9 * * 1-5\""
            ));
        };
        let mut parts = rest.split_whitespace();
        let zone = parts.next().unwrap_or_default();
        if zone.is_empty() {
            return Err("CRON_TZ= needs an IANA zone name, e.g. CRON_TZ=UTC".into());
        }
        let tz = tz_database().get(zone).map_err(|_| {
            format!(
                "CRON_TZ={zone}: unknown time zone; use an IANA name such as UTC, Europe/Berlin or Asia/Shanghai"
            )
        })?;
        let fields: Vec<&str> = parts.collect();
        let expanded: Vec<&str>;
        let fields = match fields.as_slice() {
            [d] if d.starts_with('@') => {
                expanded = match d.to_ascii_lowercase().as_str() {
                    "@yearly" | "@annually" => vec!["0", "0", "1", "1", "*"],
                    "@monthly" => vec!["0", "0", "1", "*", "*"],
                    "@weekly" => vec!["0", "0", "*", "*", "0"],
                    "@daily" | "@midnight" => vec!["0", "0", "*", "*", "*"],
                    "@hourly" => vec!["0", "*", "*", "*", "*"],
                    _ => {
                        return Err(format!(
                            "cron {cron:?}: unknown descriptor {d}; use @yearly, @monthly, @weekly, @daily or @hourly, or 5 fields"
                        ));
                    }
                };
                expanded.as_slice()
            }
            f => f,
        };
        let (sec, rest): (&str, &[&str]) = match fields.len() {
            5 => ("0", fields),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(format!(
                    "cron {cron:?} has {n} schedule fields after the zone: give 5 (minute hour day-of-month month day-of-week), or 6 with a leading second field"
                ));
            }
        };
        let with = |e: String| format!("cron {cron:?}: {e}");
        let (seconds, _) = SECOND.parse(sec).map_err(with)?;
        let (minutes, _) = MINUTE.parse(rest[0]).map_err(with)?;
        let (hours, _) = HOUR.parse(rest[1]).map_err(with)?;
        let (days_of_month, dom_star) = DOM.parse(rest[2]).map_err(with)?;
        let (months, _) = MONTH.parse(rest[3]).map_err(with)?;
        let (mut days_of_week, dow_star) = DOW.parse(rest[4]).map_err(with)?;
        if has(days_of_week, 7) {
            days_of_week = (days_of_week | 1) & !(1 << 7);
        }
        let s = Self {
            zone: zone.to_string(),
            tz,
            seconds,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            dom_star,
            dow_star,
        };
        // Only the day-of-month × month combination can be impossible (e.g. 30 February); weekdays
        // occur in every month.
        if s.day_of_month_only() {
            let possible = (1..=12).any(|m| {
                let longest = Date::new(2024, m, 1).map_or(31, |d| d.days_in_month());
                has(s.months, m) && (1..=longest).any(|d| has(s.days_of_month, d))
            });
            if !possible {
                return Err(format!(
                    "cron {cron:?} never fires: no month in its month field has a day in its day-of-month field"
                ));
            }
        }
        Ok(s)
    }

    /// The rule's zone name, as written after `CRON_TZ=`.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    fn day_of_month_only(&self) -> bool {
        !self.dom_star && self.dow_star
    }

    fn day_matches(&self, d: Date) -> bool {
        let dom = has(self.days_of_month, d.day());
        let dow = has(self.days_of_week, d.weekday().to_sunday_zero_offset());
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The instant a matching wall time fires at (see the module docs for gaps and folds).
    fn instant(&self, dt: DateTime) -> Option<Timestamp> {
        match self.tz.to_ambiguous_timestamp(dt).offset() {
            AmbiguousOffset::Unambiguous { offset }
            | AmbiguousOffset::Fold { before: offset, .. } => offset.to_timestamp(dt).ok(),
            AmbiguousOffset::Gap { after, .. } => {
                // `dt` read with the later offset lies before the jump; the next transition is the jump.
                let early = after.to_timestamp(dt).ok()?;
                self.tz.following(early).next().map(|t| t.timestamp())
            }
        }
    }

    /// The first wall time at or after `dt` that matches every field.
    fn match_forward(&self, mut dt: DateTime, limit: i16) -> Option<DateTime> {
        let hour = SignedDuration::from_hours(1);
        let minute = SignedDuration::from_mins(1);
        while dt.year() <= limit {
            if !has(self.months, dt.month()) {
                dt = dt.date().last_of_month().tomorrow().ok()?.at(0, 0, 0, 0);
            } else if !self.day_matches(dt.date()) {
                dt = dt.date().tomorrow().ok()?.at(0, 0, 0, 0);
            } else if !has(self.hours, dt.hour()) {
                dt = dt.date().at(dt.hour(), 0, 0, 0).checked_add(hour).ok()?;
            } else if !has(self.minutes, dt.minute()) {
                dt = dt
                    .date()
                    .at(dt.hour(), dt.minute(), 0, 0)
                    .checked_add(minute)
                    .ok()?;
            } else if !has(self.seconds, dt.second()) {
                // Jump to the lowest matching second above, or to the next minute.
                let above = self.seconds & !((2u64 << dt.second()) - 1);
                dt = if above == 0 {
                    dt.date()
                        .at(dt.hour(), dt.minute(), 0, 0)
                        .checked_add(minute)
                        .ok()?
                } else {
                    dt.with()
                        .second(above.trailing_zeros() as i8)
                        .build()
                        .ok()?
                };
            } else {
                return Some(dt);
            }
        }
        None
    }

    /// The last wall time at or before `dt` that matches every field.
    fn match_backward(&self, mut dt: DateTime, limit: i16) -> Option<DateTime> {
        let second = SignedDuration::from_secs(1);
        while dt.year() >= limit {
            if !has(self.months, dt.month()) {
                dt = dt
                    .date()
                    .first_of_month()
                    .at(0, 0, 0, 0)
                    .checked_sub(second)
                    .ok()?;
            } else if !self.day_matches(dt.date()) {
                dt = dt.date().at(0, 0, 0, 0).checked_sub(second).ok()?;
            } else if !has(self.hours, dt.hour()) {
                dt = dt.date().at(dt.hour(), 0, 0, 0).checked_sub(second).ok()?;
            } else if !has(self.minutes, dt.minute()) {
                dt = dt
                    .date()
                    .at(dt.hour(), dt.minute(), 0, 0)
                    .checked_sub(second)
                    .ok()?;
            } else if !has(self.seconds, dt.second()) {
                // Jump to the highest matching second below, or to the previous minute.
                let below = self.seconds & ((1u64 << dt.second()) - 1);
                dt = if below == 0 {
                    dt.date()
                        .at(dt.hour(), dt.minute(), 0, 0)
                        .checked_sub(second)
                        .ok()?
                } else {
                    dt.with()
                        .second(63 - below.leading_zeros() as i8)
                        .build()
                        .ok()?
                };
            } else {
                return Some(dt);
            }
        }
        None
    }

    /// The first firing strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let start = self
            .tz
            .to_datetime(t)
            .with()
            .subsec_nanosecond(0)
            .build()
            .ok()?;
        let limit = start.year().saturating_add(SEARCH_YEARS);
        let mut dt = start.checked_add(SignedDuration::from_secs(1)).ok()?;
        loop {
            let m = self.match_forward(dt, limit)?;
            let at = self.instant(m)?;
            // In the second pass of a fold, the wall times ahead fired in the first pass: skip them.
            if at > t {
                return Some(at);
            }
            dt = m.checked_add(SignedDuration::from_secs(1)).ok()?;
        }
    }

    /// The last firing at or before `t`: the one in effect at `t`.
    pub fn last_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let t = Timestamp::from_second(t.as_second()).ok()?;
        let now_offset = self.tz.to_offset(t);
        let local = now_offset.to_datetime(t);
        // In the second pass of a fold, wall times up to the fold's end already fired (in the first
        // pass): start from `t` read with the larger, pre-fold offset.
        let start = match self.tz.to_ambiguous_timestamp(local).offset() {
            AmbiguousOffset::Fold { before, .. } if before > now_offset => before.to_datetime(t),
            _ => local,
        };
        let limit = start.year().saturating_sub(SEARCH_YEARS);
        let mut dt = start;
        loop {
            let m = self.match_backward(dt, limit)?;
            let at = self.instant(m)?;
            if at <= t {
                return Some(at);
            }
            dt = m.checked_sub(SignedDuration::from_secs(1)).ok()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(cron: &str, after: &str) -> String {
        CronSchedule::parse(cron)
            .unwrap()
            .next_after(ts(after))
            .unwrap()
            .to_string()
    }

    fn last(cron: &str, at: &str) -> String {
        CronSchedule::parse(cron)
            .unwrap()
            .last_at_or_before(ts(at))
            .unwrap()
            .to_string()
    }

    #[test]
    fn parses_fields_names_steps_and_descriptors() {
        let s = CronSchedule::parse("CRON_TZ=UTC */15 9-17/4 * jan,Jul mon-fri").unwrap();
        assert_eq!(s.minutes, 1 | 1 << 15 | 1 << 30 | 1 << 45);
        assert_eq!(s.hours, 1 << 9 | 1 << 13 | 1 << 17);
        assert_eq!(s.months, 1 << 1 | 1 << 7);
        assert_eq!(s.days_of_week, 0b0111110);
        let sun = CronSchedule::parse("CRON_TZ=UTC 0 0 * * 7").unwrap();
        assert_eq!(sun.days_of_week, 1);
        let daily = CronSchedule::parse("CRON_TZ=Europe/Berlin @daily").unwrap();
        assert_eq!((daily.minutes, daily.hours), (1, 1));
        assert_eq!(daily.zone(), "Europe/Berlin");
        let six = CronSchedule::parse("CRON_TZ=UTC 5/20 * * * * *").unwrap();
        assert_eq!(six.seconds, 1 << 5 | 1 << 25 | 1 << 45);
    }

    #[test]
    fn rejects_with_precise_messages() {
        let err = |c: &str| CronSchedule::parse(c).unwrap_err();
        assert!(err("0 9 * * *").contains("must start with CRON_TZ="));
        assert!(err("CRON_TZ=Mars/Olympus 0 9 * * *").contains("unknown time zone"));
        assert!(err("CRON_TZ=UTC 0 9 * *").contains("has 4 schedule fields"));
        assert!(err("CRON_TZ=UTC 60 9 * * *").contains("minute field: 60 is out of range 0-59"));
        assert!(err("CRON_TZ=UTC 0 25 * * *").contains("hour field"));
        assert!(
            err("CRON_TZ=UTC 0 9 * FOO *")
                .contains("month field: \"FOO\" is not a number 1-12 or a name (JAN-DEC)")
        );
        assert!(
            err("CRON_TZ=UTC 0 9 * * 1-8").contains("day-of-week field: 8 is out of range 0-7")
        );
        assert!(err("CRON_TZ=UTC 0 9 5-1 * *").contains("runs backwards"));
        assert!(err("CRON_TZ=UTC */0 9 * * *").contains("step"));
        assert!(err("CRON_TZ=UTC 0 9 30 2 *").contains("never fires"));
        assert!(err("CRON_TZ=UTC @every").contains("unknown descriptor"));
        assert!(err("CRON_TZ=UTC 0 9 ,1 * *").contains("empty item"));
        // 31 February or any Monday: weekdays make it possible.
        assert!(CronSchedule::parse("CRON_TZ=UTC 0 9 30 2 1").is_ok());
        assert!(CronSchedule::parse("CRON_TZ=UTC 0 0 29 2 *").is_ok());
    }

    #[test]
    fn next_and_last_in_plain_times() {
        let c = "CRON_TZ=Asia/Shanghai 0 9 * * 1-5"; // 01:00Z on weekdays
        assert_eq!(next(c, "2026-11-20T00:00:00Z"), "2026-11-20T01:00:00Z"); // Friday
        assert_eq!(next(c, "2026-11-20T01:00:00Z"), "2026-11-23T01:00:00Z"); // strictly after → Monday
        assert_eq!(last(c, "2026-11-20T01:00:00Z"), "2026-11-20T01:00:00Z"); // at counts
        assert_eq!(last(c, "2026-11-22T12:00:00Z"), "2026-11-20T01:00:00Z"); // Sunday → Friday's
        // Vixie OR of restricted day fields: the 1st or any Sunday.
        let c = "CRON_TZ=UTC 0 0 1 * 0";
        assert_eq!(next(c, "2026-11-01T00:00:00Z"), "2026-11-08T00:00:00Z");
        assert_eq!(next(c, "2026-11-29T00:00:00Z"), "2026-12-01T00:00:00Z");
        // Leap day: from 2097 the next 29 February is 2104.
        assert_eq!(
            next("CRON_TZ=UTC 0 0 29 2 *", "2097-01-01T00:00:00Z"),
            "2104-02-29T00:00:00Z"
        );
        assert_eq!(
            last("CRON_TZ=UTC 0 0 29 2 *", "2103-01-01T00:00:00Z"),
            "2096-02-29T00:00:00Z"
        );
        // Seconds field and sub-second instants.
        assert_eq!(
            next("CRON_TZ=UTC */20 * * * * *", "2026-01-01T00:00:19.9Z"),
            "2026-01-01T00:00:20Z"
        );
        assert_eq!(
            last("CRON_TZ=UTC */20 * * * * *", "2026-01-01T00:00:39.9Z"),
            "2026-01-01T00:00:20Z"
        );
        // Year rollover.
        assert_eq!(
            next("CRON_TZ=UTC 0 0 1 1 *", "2026-12-31T23:59:59Z"),
            "2027-01-01T00:00:00Z"
        );
    }

    #[test]
    fn dst_in_new_york() {
        // 2026-03-08: 02:00 EST → 03:00 EDT (07:00Z). 2026-11-01: 02:00 EDT → 01:00 EST (06:00Z).
        let skipped = "CRON_TZ=America/New_York 30 2 * * *";
        assert_eq!(
            next(skipped, "2026-03-07T08:00:00Z"),
            "2026-03-08T07:00:00Z"
        ); // at the jump
        assert_eq!(
            next(skipped, "2026-03-08T07:00:00Z"),
            "2026-03-09T06:30:00Z"
        ); // then 02:30 EDT
        assert_eq!(
            last(skipped, "2026-03-08T07:10:00Z"),
            "2026-03-08T07:00:00Z"
        );
        let hourly = "CRON_TZ=America/New_York 0 * * * *";
        // Spring forward: 01:00 EST (06:00Z), then 03:00 EDT (07:00Z); 02:00 falls in the gap and
        // coincides with the jump, so it is one firing.
        assert_eq!(next(hourly, "2026-03-08T06:00:00Z"), "2026-03-08T07:00:00Z");
        assert_eq!(next(hourly, "2026-03-08T07:00:00Z"), "2026-03-08T08:00:00Z");
        // Fall back: 01:00 EDT (05:00Z) fires; 01:00 EST (06:00Z) does not; 02:00 EST (07:00Z) does.
        let twice = "CRON_TZ=America/New_York 30 1 * * *";
        assert_eq!(next(twice, "2026-11-01T04:00:00Z"), "2026-11-01T05:30:00Z");
        assert_eq!(next(twice, "2026-11-01T05:30:00Z"), "2026-11-02T06:30:00Z");
        assert_eq!(next(hourly, "2026-11-01T05:00:00Z"), "2026-11-01T07:00:00Z");
        // In the second pass (01:10 EST = 06:10Z) the last firing is 01:30 EDT (05:30Z), though 01:30
        // is still ahead on the wall clock.
        assert_eq!(last(twice, "2026-11-01T06:10:00Z"), "2026-11-01T05:30:00Z");
        assert_eq!(last(hourly, "2026-11-01T06:59:59Z"), "2026-11-01T05:00:00Z");
    }

    #[test]
    fn dst_in_berlin_and_a_half_hour_zone() {
        // Europe/Berlin 2026-03-29: 02:00 CET → 03:00 CEST at 01:00Z; 2026-10-25: 03:00 CEST → 02:00 CET
        // at 01:00Z.
        let c = "CRON_TZ=Europe/Berlin 15 2 * * *";
        assert_eq!(next(c, "2026-03-28T12:00:00Z"), "2026-03-29T01:00:00Z");
        assert_eq!(next(c, "2026-10-24T12:00:00Z"), "2026-10-25T00:15:00Z"); // first 02:15 (CEST)
        assert_eq!(next(c, "2026-10-25T00:15:00Z"), "2026-10-26T01:15:00Z"); // not the CET repeat
        // Australia/Lord_Howe shifts by 30 minutes: 2026-10-04 02:00 → 02:30 (+10:30 → +11) at 15:30Z.
        let c = "CRON_TZ=Australia/Lord_Howe 10 2 * * *";
        assert_eq!(next(c, "2026-10-03T12:00:00Z"), "2026-10-03T15:30:00Z");
        // Two rules in two zones at the "same" 09:00 are 7 hours apart in winter.
        assert_eq!(
            next("CRON_TZ=Europe/Berlin 0 9 * * *", "2026-01-05T00:00:00Z"),
            "2026-01-05T08:00:00Z"
        );
        assert_eq!(
            next("CRON_TZ=Asia/Shanghai 0 9 * * *", "2026-01-05T00:00:00Z"),
            "2026-01-05T01:00:00Z"
        );
    }

    #[test]
    fn next_and_last_agree_on_every_firing_across_a_dst_year() {
        // Walk a year of `*/20 * * * *` in New York forwards with next_after, then check last_at_or_before
        // of each firing is itself and of the instant before is the previous firing.
        let s = CronSchedule::parse("CRON_TZ=America/New_York */20 0-3 * * *").unwrap();
        let mut t = ts("2026-01-01T00:00:00Z");
        let mut prev = s.last_at_or_before(t).unwrap();
        let end = ts("2027-01-01T00:00:00Z");
        let mut n = 0;
        loop {
            let f = s.next_after(t).unwrap();
            assert!(f > t);
            if f >= end {
                break;
            }
            assert_eq!(s.last_at_or_before(f), Some(f));
            assert_eq!(
                s.last_at_or_before(f - SignedDuration::from_secs(1)),
                Some(prev),
                "before {f}"
            );
            prev = f;
            t = f;
            n += 1;
        }
        // 365 days × 4 hours × 3, less 3: in the spring gap 02:00, 02:20 and 02:40 fire at the jump,
        // which is 03:00 too (4 wall times, one firing); in the fold, 01:00–01:40 fire once each.
        assert_eq!(n, 365 * 12 - 3);
    }
}
