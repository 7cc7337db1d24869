//! One entry of a batch order: how the backends, the gathers and the loss read the order buffer
//! the training loop hands them. Here, below both, so that the backends do not import the loop
//! that drives them.

/// One entry of a batch order over images: an image's index and an optional shift, packed in a
/// `u32` so that the order stays one flat index buffer on every backend: bits 0–23 the index,
/// bits 24–27 `dx` and 28–31 `dy` as 4-bit two's-complement numbers (−8..=7). A plain index
/// is an entry with no shift. Over samples that are not images (which are never shifted) an
/// entry is the index, whole ([`Sample::index_of`]): only images are limited to 2^24.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub index: u32,
    pub dx: i8,
    pub dy: i8,
}

impl Sample {
    /// Largest sample index an entry can hold.
    pub const MAX_INDEX: u32 = (1 << 24) - 1;
    /// Where `dx` and `dy` start, and their width.
    pub const DX_BIT: u32 = 24;
    pub const DY_BIT: u32 = 28;
    pub const SHIFT_BITS: u32 = 4;

    /// Packs the entry (`dx`, `dy` in −8..=7, `index` ≤ `MAX_INDEX`).
    pub fn encode(self) -> u32 {
        debug_assert!(self.index <= Self::MAX_INDEX);
        debug_assert!((-8..=7).contains(&self.dx) && (-8..=7).contains(&self.dy));
        self.index
            | ((self.dx as u32 & 0xF) << Self::DX_BIT)
            | ((self.dy as u32 & 0xF) << Self::DY_BIT)
    }

    /// The sample `entry` names in an order over images (`image`) or over other samples.
    pub fn index_of(entry: u32, image: bool) -> usize {
        if image {
            (entry & Self::MAX_INDEX) as usize
        } else {
            entry as usize
        }
    }

    /// Unpacks an entry of an order over images.
    pub fn decode(entry: u32) -> Sample {
        let nibble = |n: u32| (((n & 0xF) as i8) << 4) >> 4; // sign-extend 4 bits
        Sample {
            index: entry & Self::MAX_INDEX,
            dx: nibble(entry >> Self::DX_BIT),
            dy: nibble(entry >> Self::DY_BIT),
        }
    }
}
