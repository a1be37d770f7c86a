//! A length of time as people type it on the command line: `24h`, `7d`, `30d`, `90d`.

use std::fmt;
use std::str::FromStr;

/// Whole hours, from one hour to ten years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period {
    hours: i64,
}

const MAX_HOURS: i64 = 24 * 3653;

impl Period {
    pub const fn days(days: i64) -> Self {
        Self { hours: days * 24 }
    }

    pub fn duration(self) -> chrono::Duration {
        chrono::Duration::hours(self.hours)
    }
}

impl FromStr for Period {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("{text:?} is not a period; write a number and h or d, such as 24h, 7d or 90d")
        };
        let text = text.trim();
        let unit = text.chars().last().ok_or_else(bad)?;
        let number: i64 = text[..text.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
        let hours = match unit {
            'h' => number,
            'd' => number.checked_mul(24).ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        if !(1..=MAX_HOURS).contains(&hours) {
            return Err(format!("{text:?} is out of range; give between 1h and 3653d"));
        }
        Ok(Self { hours })
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.hours % 24 == 0 {
            write!(f, "{}d", self.hours / 24)
        } else {
            write!(f, "{}h", self.hours)
        }
    }
}

/// As it is typed (`7d`): a query value of the admin API.
impl serde::Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::Period;

    #[test]
    fn periods_read_hours_and_days_and_refuse_the_rest() {
        assert_eq!("30d".parse::<Period>(), Ok(Period::days(30)));
        assert_eq!("36h".parse::<Period>().map(|p| p.to_string()), Ok("36h".to_owned()));
        assert_eq!("48h".parse::<Period>().map(|p| p.to_string()), Ok("2d".to_owned()));
        for bad in ["", "d", "30", "-1d", "0h", "5y", "99999d", "3.5d"] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
    }
}
