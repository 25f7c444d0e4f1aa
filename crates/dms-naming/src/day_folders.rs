//! Date folders that do not start with the year (`DatePartitionSequence` `MMYYYYDD` and
//! `DDMMYYYY`): their keys do not sort in time order (`01/10/2022/` before `30/09/2022/`), so
//! the loader names the folders of the days it needs instead of listing after a cursor.

use chrono::{Datelike, NaiveDate};

/// The order of a day folder's parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DaySequence {
    /// `MMYYYYDD`.
    MonthYearDay,
    /// `DDMMYYYY`.
    DayMonthYear,
}

/// The day folders of an endpoint with `DatePartitionSequence` `MMYYYYDD` or `DDMMYYYY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayFolders {
    pub sequence: DaySequence,
    /// `DatePartitionDelimiter`: `/` (`SLASH`, the default), `_`, `-`, or none (`NONE`).
    pub delimiter: Option<char>,
}

impl DayFolders {
    /// The layout of `DatePartitionSequence` and `DatePartitionDelimiter` (DMS's spelling, any
    /// case), if the sequence is one of these two.
    pub fn from_settings(sequence: &str, delimiter: Option<&str>) -> Option<Self> {
        let sequence = match sequence.to_ascii_uppercase().as_str() {
            "MMYYYYDD" => DaySequence::MonthYearDay,
            "DDMMYYYY" => DaySequence::DayMonthYear,
            _ => return None,
        };
        let delimiter = match delimiter.map(str::to_ascii_uppercase).as_deref() {
            None | Some("SLASH") => Some('/'),
            Some("UNDERSCORE") => Some('_'),
            Some("DASH") => Some('-'),
            Some("NONE") => None,
            Some(_) => return None,
        };
        Some(DayFolders {
            sequence,
            delimiter,
        })
    }

    /// The folders of `day`, ending in `/`: `22/09/2022/`, `09_2022_22/`, `22092022/`, ...
    pub fn folder(&self, day: NaiveDate) -> String {
        let (y, m, d) = (
            format!("{:04}", day.year()),
            format!("{:02}", day.month()),
            format!("{:02}", day.day()),
        );
        let parts = match self.sequence {
            DaySequence::MonthYearDay => [m, y, d],
            DaySequence::DayMonthYear => [d, m, y],
        };
        let sep = self.delimiter.map(String::from).unwrap_or_default();
        format!("{}/", parts.join(&sep))
    }

    /// The day of a folder path written by [`DayFolders::folder`] (`None` for anything else).
    pub fn day_of(&self, folders: &str) -> Option<NaiveDate> {
        let digits: String = folders.chars().filter(char::is_ascii_digit).collect();
        if digits.len() != 8
            || self.folder(NaiveDate::from_ymd_opt(2000, 1, 1)?).len() != folders.len()
        {
            return None;
        }
        let n = |r: std::ops::Range<usize>| digits[r].parse::<u32>().ok();
        let (y, m, d) = match self.sequence {
            DaySequence::MonthYearDay => (n(2..6)?, n(0..2)?, n(6..8)?),
            DaySequence::DayMonthYear => (n(4..8)?, n(2..4)?, n(0..2)?),
        };
        let day = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)?;
        (self.folder(day) == folders).then_some(day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_of_a_day_and_back_in_every_layout() {
        let day = NaiveDate::from_ymd_opt(2022, 9, 22).unwrap();
        for (sequence, delimiter, folder) in [
            ("MMYYYYDD", None, "09/2022/22/"),
            ("mmyyyydd", Some("UNDERSCORE"), "09_2022_22/"),
            ("DDMMYYYY", Some("SLASH"), "22/09/2022/"),
            ("DDMMYYYY", Some("DASH"), "22-09-2022/"),
            ("DDMMYYYY", Some("NONE"), "22092022/"),
        ] {
            let layout = DayFolders::from_settings(sequence, delimiter).unwrap();
            assert_eq!(layout.folder(day), folder);
            assert_eq!(layout.day_of(folder), Some(day), "{folder}");
            let key = format!("data/dbo/orders/{folder}20220922-095853123.csv.gz");
            assert!(crate::parse_object_key("data", &key).is_some(), "{key}");
        }
        let layout = DayFolders::from_settings("DDMMYYYY", None).unwrap();
        assert_eq!(layout.day_of("31/02/2022/"), None);
        assert_eq!(layout.day_of("2022/09/22/"), None);
        assert!(DayFolders::from_settings("YYYYMMDD", None).is_none());
    }
}
