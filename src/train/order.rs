//! The order in which an epoch visits the training set: a seeded permutation, and the image
//! shifts of augmentation packed into each entry ([`Sample`]).

use crate::data::Sample;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// Adds a random shift of at most `max_shift` pixels in each direction to every entry of
/// `order`, drawn from `(seed, epoch)` (augmentation by translation).
pub fn add_shifts(order: &mut [u32], max_shift: u8, seed: u64, epoch: u64) {
    let m = max_shift.min(7) as i8;
    let mut rng = Pcg64Mcg::seed_from_u64(!seed ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03));
    for entry in order.iter_mut() {
        let index = Sample::decode(*entry).index;
        let dx = rng.random_range(-m..=m);
        let dy = rng.random_range(-m..=m);
        *entry = Sample { index, dx, dy }.encode();
    }
}

/// The order in which an epoch visits the samples: a permutation of `0..len` drawn from
/// `(seed, epoch)`, so that any epoch can be reproduced (and resumed) on its own.
pub fn epoch_order(len: usize, seed: u64, epoch: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..len as u32).collect();
    let mut rng = Pcg64Mcg::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_image_entry_shares_its_bits_with_a_shift() {
        let shifted = Sample {
            index: 5,
            dx: -2,
            dy: 1,
        }
        .encode();
        assert_eq!(Sample::index_of(shifted, true), 5);
        let past = (1u32 << 24) + 7;
        assert_eq!(Sample::index_of(past, false), past as usize);
        assert_eq!(Sample::index_of(u32::MAX, false), u32::MAX as usize);
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(1000, 7, 3);
        assert_eq!(a, epoch_order(1000, 7, 3));
        assert_ne!(a, epoch_order(1000, 7, 4));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
    }

    #[test]
    fn sample_entries_round_trip() {
        for index in [0, 1, 59_999, Sample::MAX_INDEX] {
            for dx in -8..=7 {
                for dy in -8..=7 {
                    let s = Sample { index, dx, dy };
                    assert_eq!(Sample::decode(s.encode()), s);
                }
            }
        }
        assert_eq!(
            Sample::decode(1234),
            Sample {
                index: 1234,
                dx: 0,
                dy: 0
            }
        );
    }
}
