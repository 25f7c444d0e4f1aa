//! The Bloom filter of a file's staged keys.

/// Words (64 bits each) in the key filter at most: 2^17, 1 MiB. 300,000 staged keys set about 9
/// of a word's 64 bits: a false positive (a new key staged for nothing) about once in 2,500 keys.
const FILTER_WORDS_LOG2: u32 = 17;

/// Words in the key filter at least: 2^6, 512 bytes.
const FILTER_MIN_WORDS_LOG2: u32 = 6;

/// A blocked Bloom filter of keys: "maybe seen" or "certainly not seen". The four bits of a key
/// are in one 64-bit word, so a lookup costs one cache miss.
pub(super) struct KeyFilter {
    words: Vec<u64>,
    mask: u64,
}

impl KeyFilter {
    /// A filter for a file of about `rows` rows at most: a word per two of them (the load of
    /// the largest filter at 300,000 staged keys), between 2^6 and 2^17 words.
    pub(super) fn for_rows(rows: usize) -> Self {
        let words = (rows / 2)
            .next_power_of_two()
            .clamp(1 << FILTER_MIN_WORDS_LOG2, 1 << FILTER_WORDS_LOG2);
        KeyFilter::new(words.trailing_zeros())
    }

    pub(super) fn new(words_log2: u32) -> Self {
        KeyFilter {
            words: vec![0; 1 << words_log2],
            mask: (1u64 << words_log2) - 1,
        }
    }

    fn locate(&self, hash: u64) -> (usize, u64) {
        let word = ((hash >> 32) & self.mask) as usize;
        let bits = (0..4).fold(0u64, |acc, i| acc | 1 << ((hash >> (6 * i)) & 63));
        (word, bits)
    }

    pub(super) fn insert(&mut self, hash: u64) {
        let (word, bits) = self.locate(hash);
        self.words[word] |= bits;
    }

    pub(super) fn contains(&self, hash: u64) -> bool {
        let (word, bits) = self.locate(hash);
        self.words[word] & bits == bits
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::splitmix;
    use super::*;

    #[test]
    fn the_filter_never_forgets_a_key() {
        let mut filter = KeyFilter::new(12);
        let hash = |k: u64| splitmix(k);
        for k in 0..2_000u64 {
            filter.insert(hash(k));
        }
        assert!((0..2_000u64).all(|k| filter.contains(hash(k))));
        let false_positives = (2_000..102_000u64)
            .filter(|&k| filter.contains(hash(k)))
            .count();
        // 2,000 keys in 4,096 words, 4 bits each: about 0.01% expected.
        assert!(false_positives < 100, "{false_positives}");
    }
}
