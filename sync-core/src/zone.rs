//! Local time. Stored times are UTC (RFC 3339); the dates and times people
//! read — in the register, on screens, in the deck — are in the campaign's
//! time zone, an IANA name kept in the campaign document (default
//! [`DEFAULT`]). Zones come from the tz database bundled into the build: no
//! file is read.

use std::sync::LazyLock;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// The zone of a campaign that names none: China Standard Time.
pub const DEFAULT: &str = "Asia/Shanghai";

/// A time zone dates are shown in.
#[derive(Clone, Debug)]
pub struct Zone(TimeZone);

impl Default for Zone {
    fn default() -> Self {
        static ZONE: LazyLock<TimeZone> =
            LazyLock::new(|| TimeZone::get(DEFAULT).expect("the bundled tz database holds Asia/Shanghai"));
        Zone(ZONE.clone())
    }
}

impl Zone {
    /// The zone of IANA name `name` (the default for an empty name);
    /// `None` for a name the tz database does not hold.
    pub fn named(name: &str) -> Option<Zone> {
        if name.is_empty() {
            return Some(Zone::default());
        }
        TimeZone::get(name).ok().map(Zone)
    }

    /// The zone a campaign names, or the default if it names none it knows
    /// (the validator refuses those at every door).
    pub fn of(campaign: &crate::model::Campaign) -> Zone {
        Zone::named(&campaign.time_zone).unwrap_or_default()
    }

    /// The day (YYYY-MM-DD) of an RFC 3339 time here; `None` if it is not
    /// one.
    pub fn day(&self, time: &str) -> Option<String> {
        let ts: Timestamp = time.parse().ok()?;
        Some(ts.to_zoned(self.0.clone()).date().to_string())
    }

    /// An RFC 3339 time as people here read it: `2026-12-07 09:04`; the
    /// stored text if it is not a time.
    pub fn minute(&self, time: &str) -> String {
        match time.parse::<Timestamp>() {
            Ok(ts) => ts.to_zoned(self.0.clone()).strftime("%Y-%m-%d %H:%M").to_string(),
            Err(_) => time.to_owned(),
        }
    }

    /// The first instant of `date` here.
    pub fn start_of(&self, date: Date) -> Option<Timestamp> {
        date.to_zoned(self.0.clone()).ok().map(|z| z.timestamp())
    }

    /// The IANA name.
    pub fn name(&self) -> &str {
        self.0.iana_name().unwrap_or(DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_people_read_are_in_the_zone() {
        let beijing = Zone::default();
        assert_eq!(beijing.name(), "Asia/Shanghai");
        // Found at 02:47 Beijing time on 12-07 is 12-07, not UTC's 12-06.
        assert_eq!(beijing.day("2026-12-06T18:47:00Z").as_deref(), Some("2026-12-07"));
        assert_eq!(beijing.minute("2026-12-06T18:47:59.5Z"), "2026-12-07 02:47");
        assert_eq!(beijing.minute("不是时间"), "不是时间");
        assert_eq!(beijing.day("2026-12-06"), None);
        let urumqi = Zone::named("Asia/Urumqi").unwrap();
        assert_eq!(urumqi.day("2026-12-06T18:47:00Z").as_deref(), Some("2026-12-07"));
        assert_eq!(urumqi.minute("2026-12-06T18:47:00Z"), "2026-12-07 00:47");
        let start = beijing.start_of("2026-12-07".parse().unwrap()).unwrap();
        assert_eq!(start.to_string(), "2026-12-06T16:00:00Z");
        assert!(Zone::named("Mars/Olympus").is_none());
        assert_eq!(Zone::named("").unwrap().name(), DEFAULT);
    }
}
