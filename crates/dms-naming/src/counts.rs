//! The net effect of one file, counted per distinct key: what the loader's target reports for a
//! delivery and what the sample generator records as its ground truth.

/// Net effect of a delivery, per distinct key of the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetCounts {
    pub creates: u64,
    pub amends: u64,
    pub removes: u64,
    pub unchanged: u64,
}

impl NetCounts {
    /// Number of distinct keys the file touched.
    pub fn keys(&self) -> u64 {
        self.creates + self.amends + self.removes + self.unchanged
    }

    /// Counts one key by its row before the file and after it.
    pub fn count<T: PartialEq>(&mut self, before: Option<&T>, after: Option<&T>) {
        match (before, after) {
            (None, Some(_)) => self.creates += 1,
            (Some(b), Some(a)) if b != a => self.amends += 1,
            (Some(_), None) => self.removes += 1,
            _ => self.unchanged += 1,
        }
    }

    /// Whether the file changed anything (a notification is due).
    pub fn changed(&self) -> bool {
        self.creates + self.amends + self.removes > 0
    }
}
