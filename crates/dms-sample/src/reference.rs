//! Reference data drawn once from the seed: the ISIN pool with currencies and prices.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::Rng;

use super::vocab::{EUR, GBP, USD};

pub(super) const ISIN_POOL: usize = 200;

pub(super) struct Isin {
    pub(super) code: [u8; 12],
    pub(super) currency: u8,
    /// Reference price in micro units.
    pub(super) price: i64,
}

/// ISIN check digit (letters to numbers, then Luhn from the right).
fn isin_check_digit(body: &[u8]) -> u8 {
    let mut digits = Vec::with_capacity(22);
    for &c in body {
        if c.is_ascii_digit() {
            digits.push(u32::from(c - b'0'));
        } else {
            let v = u32::from(c - b'A') + 10;
            digits.push(v / 10);
            digits.push(v % 10);
        }
    }
    let mut sum = 0;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut x = d;
        if i % 2 == 0 {
            x *= 2;
            if x > 9 {
                x -= 9;
            }
        }
        sum += x;
    }
    b'0' + ((10 - sum % 10) % 10) as u8
}

/// Immutable context: reference data drawn once from the seed.
pub(super) struct Ctx {
    pub(super) isins: Vec<Isin>,
    pub(super) salt: u64,
}

impl Ctx {
    pub(super) fn new(rng: &mut StdRng) -> Ctx {
        const ALNUM: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
        let mut seen = HashSet::new();
        let mut isins = Vec::with_capacity(ISIN_POOL);
        while isins.len() < ISIN_POOL {
            let r: f64 = rng.random();
            let (country, currency): (&[u8; 2], u8) = if r < 0.5 {
                (b"US", USD)
            } else if r < 0.62 {
                (b"GB", GBP)
            } else if r < 0.74 {
                (b"DE", EUR)
            } else if r < 0.86 {
                (b"FR", EUR)
            } else if r < 0.93 {
                (b"NL", EUR)
            } else {
                (b"IE", if rng.random_bool(0.5) { EUR } else { USD })
            };
            let mut code = [b'0'; 12];
            code[..2].copy_from_slice(country);
            for (i, c) in code[2..11].iter_mut().enumerate() {
                // mostly digits, with the odd letter as in real national numbers
                *c = if i >= 5 && rng.random_bool(0.15) {
                    ALNUM[rng.random_range(10..ALNUM.len())]
                } else {
                    b'0' + rng.random_range(0..10u8)
                };
            }
            code[11] = isin_check_digit(&code[..11]);
            if !seen.insert(code) {
                continue;
            }
            let price =
                (5.0f64 * (180.0f64).powf(rng.random::<f64>()) * 100.0).round() as i64 * 10_000;
            isins.push(Isin {
                code,
                currency,
                price,
            });
        }
        Ctx {
            isins,
            salt: rng.random(),
        }
    }
}

pub(super) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isin_check_digit_matches_known_isins() {
        assert_eq!(isin_check_digit(b"US037833100"), b'5');
        assert_eq!(isin_check_digit(b"DE000BAY001"), b'7');
        assert_eq!(isin_check_digit(b"GB000263494"), b'6');
    }
}
