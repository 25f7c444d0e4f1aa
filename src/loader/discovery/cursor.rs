//! A stream folder's listing cursors: where an incremental pass starts listing, and which keys
//! it may not have returned (see the module `discovery`).
use chrono::NaiveDate;

use crate::dms::{DayFolders, DmsObject};

/// The file name of a key (its last part): `YYYYMMDD-HHMMSSmmm...` for a change file.
fn file_name(key: &str) -> &str {
    &key[key.rfind('/').map_or(0, |i| i + 1)..]
}

/// Listing cursors of one stream folder.
#[derive(Clone, Debug, Default)]
pub(super) struct Cursor {
    pub(super) flat: Option<String>,
    pub(super) dated: Option<String>,
}

impl Cursor {
    /// Moves the cursor of the object's naming to it if it is later. With day folders
    /// (`days`), the dated cursor is the key with the latest file name (the keys' order is not
    /// time order).
    pub(super) fn advance(&mut self, object: &DmsObject, folder: &str, days: Option<&DayFolders>) {
        if object.kind.is_load() {
            return;
        }
        let dated = object.key[folder.len()..].contains('/');
        let slot = if dated {
            &mut self.dated
        } else {
            &mut self.flat
        };
        let later = match slot.as_deref() {
            None => true,
            Some(c) if dated && days.is_some() => file_name(c) < file_name(&object.key),
            Some(c) => c < object.key.as_str(),
        };
        if later {
            *slot = Some(object.key.clone());
        }
    }

    /// The listings of a stream folder whose change files are below day folders (`MMYYYYDD`,
    /// `DDMMYYYY`, which do not sort in time order): the full-load files (they sort after every
    /// day folder), the dated cursor's day folder after the cursor, and each later day's folder
    /// up to tomorrow (DMS's partition time zone may be ahead of UTC), at most a week of them
    /// (an older gap is left to the full listing). Without a dated cursor yet: the whole folder.
    pub(super) fn day_listings(
        &self,
        folder: &str,
        days: &DayFolders,
        today: NaiveDate,
    ) -> Vec<(String, Option<String>)> {
        let Some(dated) = &self.dated else {
            return vec![(folder.to_string(), None)];
        };
        let cursor_folder = &dated[folder.len()..dated.len() - file_name(dated).len()];
        let mut listings = vec![
            (folder.to_string(), Some(format!("{folder}LOAD"))),
            (format!("{folder}{cursor_folder}"), Some(dated.clone())),
        ];
        let tomorrow = today + chrono::Days::new(1);
        let from = days
            .day_of(cursor_folder)
            .unwrap_or(today)
            .max(today - chrono::Days::new(7));
        let mut day = from;
        while day < tomorrow {
            day = day + chrono::Days::new(1);
            let later = days.folder(day);
            if later != cursor_folder {
                listings.push((format!("{folder}{later}"), None));
            }
        }
        listings
    }

    /// The listings an incremental pass makes for this folder: `(prefix, start_after)`.
    ///
    /// One naming (the usual case: DMS's `DatePartitionEnabled` is either on or off): one
    /// listing after its cursor. Both namings: one listing after the flat cursor (new flat
    /// files, full-load files, date folders of later years) and one of the dated cursor's year
    /// folder after the dated cursor, so neither lists the other's history again.
    pub(super) fn listings(
        &self,
        folder: &str,
        watch_dated: bool,
    ) -> Vec<(String, Option<String>)> {
        match (&self.flat, &self.dated) {
            (Some(flat), Some(dated))
                if !dated[folder.len()..]
                    .split('/')
                    .next()
                    .is_some_and(|y| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit())) =>
            {
                // One date folder per period (`2022_09_22/`, `20220922/`, ...): no year folder
                // to list on its own, so one listing after the smaller cursor (it lists the
                // other naming's later keys again; both namings in one folder is a settings
                // change, rare).
                vec![(folder.to_string(), Some(flat.clone().min(dated.clone())))]
            }
            (Some(flat), Some(dated)) => {
                let year = dated[folder.len()..].split('/').next().unwrap_or_default();
                // The folder listing skips the dated cursor's year folder (listed on its own):
                // `<year>0` sorts after every `<year>/...` key and before `<year>MMDD-...`.
                let past_year_folder = format!("{folder}{year}0");
                vec![
                    (folder.to_string(), Some(flat.clone().max(past_year_folder))),
                    (format!("{folder}{year}/"), Some(dated.clone())),
                ]
            }
            // Flat names only: a first `YYYY/` date folder of the current year sorts before
            // them (`/` before the digits) and would be hidden behind the cursor, so that year's
            // folder is listed too (empty unless DMS starts partitioning by date), unless the
            // endpoint's settings say it never does.
            (Some(flat), None) if watch_dated => {
                let name = &flat[folder.len()..];
                let mut listings = vec![(folder.to_string(), Some(flat.clone()))];
                if name.len() >= 4 && name.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
                    listings.push((format!("{folder}{}/", &name[..4]), None));
                }
                listings
            }
            (flat, dated) => vec![(folder.to_string(), flat.clone().or(dated.clone()))],
        }
    }

    /// Whether `key` sorts at or behind a cursor, so an incremental listing may not have
    /// returned it: behind its own naming's cursor, or, while its naming has none yet, behind
    /// the other one's (a stream that starts using date folders after flat names: `2022/...`
    /// sorts before `20220922-...`). Such files are found by the full listing.
    /// With `watch_dated`, a date folder of the flat cursor's year is listed on its own (see
    /// [`Cursor::listings`]): its keys are not behind.
    pub(super) fn is_behind(
        &self,
        key: &str,
        folder: &str,
        watch_dated: bool,
        days: Option<&DayFolders>,
    ) -> bool {
        let name = &key[folder.len()..];
        let dated = name.contains('/');
        if dated && days.is_some() {
            // Day folders: by file name, against the dated cursor only.
            return self
                .dated
                .as_deref()
                .is_some_and(|c| file_name(key) <= file_name(c));
        }
        let (own, other) = if dated {
            (&self.dated, &self.flat)
        } else {
            (&self.flat, &self.dated)
        };
        match own {
            Some(c) => key <= c.as_str(),
            None if dated && watch_dated => {
                let year = |k: &str| k[folder.len()..].get(..4).map(str::to_string);
                let watched = self
                    .flat
                    .as_deref()
                    .and_then(year)
                    .is_some_and(|y| name.starts_with(&format!("{y}/")));
                !watched && other.as_deref().is_some_and(|c| key <= c)
            }
            None => other.as_deref().is_some_and(|c| key <= c),
        }
    }
}
