//! Time as the engine sees it: a plain value handed in, never read from the wall.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ports::Clock;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus(self, duration: Duration) -> Self {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// `YYYY-MM-DDTHH:MM:SS` in UTC, whole seconds rounded up (Scheduler's `at()` form).
    pub fn utc_datetime_ceil(self) -> String {
        let secs = self.0.div_euclid(1000) + i64::from(self.0.rem_euclid(1000) > 0);
        let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        )
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS` (UTC), as written by [`Timestamp::utc_datetime_ceil`].
    pub fn parse_utc_datetime(text: &str) -> Option<Timestamp> {
        let (date, time) = text.split_once('T')?;
        let mut date = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
        let mut time = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
        let (y, m, d) = (date.next()??, date.next()??, date.next()??);
        let (hh, mm, ss) = (time.next()??, time.next()??, time.next()??);
        // Four-digit years, as RFC 3339 writes them: the arithmetic below cannot overflow.
        let in_range = (0..=9999).contains(&y)
            && (1..=12).contains(&m)
            && (1..=31).contains(&d)
            && (0..=23).contains(&hh)
            && (0..=59).contains(&mm)
            && (0..=59).contains(&ss);
        if !in_range {
            return None;
        }
        Some(Timestamp::from_secs(
            days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss,
        ))
    }

    /// RFC 3339 in UTC with milliseconds: `2026-12-01T21:30:05.123Z`.
    pub fn to_rfc3339(self) -> String {
        let whole = Timestamp(self.0.div_euclid(1000) * 1000).utc_datetime_ceil();
        format!("{whole}.{:03}Z", self.0.rem_euclid(1000))
    }

    /// Parses RFC 3339 (`2026-12-01T21:30:05Z`, `…05.5+01:00`); `None` if it is not that.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let text = text.trim();
        let (body, offset_minutes) = if let Some(body) = text.strip_suffix(['Z', 'z']) {
            (body, 0)
        } else {
            // `+hh:mm`, the last six bytes: `None` for text whose sixth byte from the end
            // is inside a character.
            let at = text.len().checked_sub(6)?;
            let (body, offset) = text.split_at_checked(at)?;
            let sign = match offset.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let (h, m) = offset[1..].split_once(':')?;
            let (h, m) = (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?);
            if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
                return None;
            }
            (body, sign * (h * 60 + m))
        };
        let (whole, fraction) = match body.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (body, ""),
        };
        if !fraction.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let millis: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
        let base = Timestamp::parse_utc_datetime(whole)?;
        Some(Timestamp(base.0 + millis - offset_minutes * 60_000))
    }

    /// Time from `self` until `later`, zero when `later` is not later.
    pub fn until(self, later: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(later.0 - self.0).unwrap_or(0))
    }
}

/// The wall clock, for production hosts.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to: tests drive time with it.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn starting_at(start: Timestamp) -> Self {
        ManualClock {
            now_ms: AtomicI64::new(start.0),
        }
    }

    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now_ms.load(Ordering::SeqCst))
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_datetimes_round_up_to_the_second_and_parse_back() {
        assert_eq!(Timestamp(0).utc_datetime_ceil(), "1970-01-01T00:00:00");
        assert_eq!(Timestamp(1).utc_datetime_ceil(), "1970-01-01T00:00:01");
        // 2024-02-29T23:59:59.500Z, a leap day
        let t = Timestamp(1_709_251_199_500);
        assert_eq!(t.utc_datetime_ceil(), "2024-03-01T00:00:00");
        assert_eq!(
            Timestamp::parse_utc_datetime("2024-03-01T00:00:00"),
            Some(Timestamp(1_709_251_200_000))
        );
        assert_eq!(
            Timestamp::parse_utc_datetime("2026-12-01T21:30:05"),
            Some(Timestamp(1_796_160_605_000))
        );
        assert_eq!(Timestamp::parse_utc_datetime("2026-13-01T00:00:00"), None);
        assert_eq!(Timestamp::parse_utc_datetime("yesterday"), None);
        let t = Timestamp(1_796_160_605_123);
        assert_eq!(t.to_rfc3339(), "2026-12-01T21:30:05.123Z");
        assert_eq!(
            Timestamp::parse_rfc3339("2026-12-01T21:30:05.123Z"),
            Some(t)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2026-12-01T22:30:05.123+01:00"),
            Some(t)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2026-12-01T21:30:05Z"),
            Some(Timestamp(1_796_160_605_000))
        );
        assert_eq!(Timestamp::parse_rfc3339("2026-12-01"), None);
    }

    #[test]
    fn times_out_of_range_or_cut_inside_a_character_are_refused() {
        for text in [
            "x€12345",
            "2026-12-01T00:00:00€:00",
            "99999999999999999-01-01T00:00:00Z",
            "10000-01-01T00:00:00Z",
            "-1-01-01T00:00:00Z",
            "2026-12-01T-1:00:00Z",
            "2026-12-01T00:00:00+99999999999999999:00",
            "2026-12-01T00:00:00+24:00",
            "2026-12-01T00:00:00+01:60",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(text), None, "{text}");
        }
        assert_eq!(
            Timestamp::parse_rfc3339("9999-12-31T23:59:59.999-23:59"),
            Some(Timestamp(253_402_300_799_999 + 86_340_000))
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_text_never_panics(text in "\\PC{0,40}") {
            let _ = Timestamp::parse_rfc3339(&text);
            let _ = Timestamp::parse_utc_datetime(&text);
        }

        #[test]
        fn near_misses_never_panic(
            y in proptest::num::i64::ANY, m in -20i64..20, d in -40i64..40,
            hh in -30i64..30, offset_h in proptest::num::i64::ANY, tail in "\\PC{0,3}",
        ) {
            let text = format!("{y}-{m}-{d}T{hh}:00:00+{offset_h}:00{tail}");
            let _ = Timestamp::parse_rfc3339(&text);
        }

        #[test]
        fn every_written_time_parses_back(ms in 0i64..253_402_300_800_000) {
            proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&Timestamp(ms).to_rfc3339()), Some(Timestamp(ms)));
        }
    }
}
