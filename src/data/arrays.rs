//! NumPy arrays as training data: what a sample's shape is (`[n, d]` vectors, `[n, h, w]`
//! grey images, `[n, h, w, c]` NumPy's image layout, `[n, c, h, w]` PyTorch's), channel-last
//! samples brought to soma's channel-major layout, and class labels from integer, whole-float
//! or one-hot label arrays. Shared by the `train` and `predict` examples (and the page), so
//! that prediction prepares an array exactly as training did.

use std::path::Path;

use super::Inputs;
use super::npy::{Array, Values};
use crate::error::{Error, Result};
use crate::shape::Chw;

/// The layout of 4-D inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Samples × height × width × channels (NumPy's and Keras' image layout).
    Nhwc,
    /// Samples × channels × height × width (PyTorch's).
    Nchw,
}

/// What one sample of an input array is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleShape {
    /// The image, channel-major; `None` for vectors.
    pub image: Option<Chw>,
    /// Values per sample.
    pub width: usize,
    /// Whether the stored samples are channel-last (and so are reordered).
    pub channel_last: bool,
}

/// The sample shape of inputs of `shape` (`[n, …]`). A 4-D array is channel-last when its
/// last axis has 1 to 4 values, else channel-first when its second has; `layout` decides
/// where neither or both would.
pub fn sample_shape(path: &Path, shape: &[usize], layout: Option<Layout>) -> Result<SampleShape> {
    let expected = "inputs of shape [n, d], [n, h, w], [n, h, w, c] or [n, c, h, w]";
    let (image, channel_last) = match *shape {
        [_, _] => (None, false),
        [_, h, w] => (Some(Chw::new(1, h, w)), false),
        [_, a, b, c] => {
            let nhwc = match layout {
                Some(l) => l == Layout::Nhwc,
                None if c <= 4 => true,
                None if a <= 4 => false,
                None => {
                    return Err(Error::format(
                        path,
                        "input shape",
                        "a channel axis of 1-4 values last or second (or --layout nhwc|nchw)",
                        format!("{shape:?}"),
                    ));
                }
            };
            if nhwc {
                (Some(Chw::new(c, a, b)), true)
            } else {
                (Some(Chw::new(a, b, c)), false)
            }
        }
        _ => {
            return Err(Error::format(
                path,
                "input shape",
                expected,
                format!("{shape:?}"),
            ));
        }
    };
    let width = shape[1..].iter().product();
    if width == 0 {
        return Err(Error::format(
            path,
            "input shape",
            "samples of at least one value",
            format!("{shape:?}"),
        ));
    }
    Ok(SampleShape {
        image,
        width,
        channel_last,
    })
}

/// Channel-last samples (`chw.len()` values each) to channel-major.
pub fn to_planar<T: Copy + Default>(values: &[T], chw: Chw) -> Vec<T> {
    let (plane, len) = (chw.plane(), chw.len());
    let mut out = vec![T::default(); values.len()];
    for (src, dst) in values.chunks_exact(len).zip(out.chunks_exact_mut(len)) {
        for p in 0..plane {
            for c in 0..chw.c {
                dst[c * plane + p] = src[p * chw.c + c];
            }
        }
    }
    out
}

/// An input array's values as stored inputs, channel-major: bytes stay bytes (compact, and
/// gathered as pixels), integers and floats become f32.
pub fn inputs(x: Array, shape: &SampleShape) -> Inputs {
    let planar = shape.image.filter(|_| shape.channel_last);
    let reorder = |v: Vec<f32>| match planar {
        Some(chw) => to_planar(&v, chw),
        None => v,
    };
    match x.values {
        Values::U8(v) => Inputs::U8(match planar {
            Some(chw) => to_planar(&v, chw),
            None => v,
        }),
        Values::Int(v) => Inputs::F32(reorder(v.iter().map(|&x| x as f32).collect())),
        Values::F32(v) => Inputs::F32(reorder(v)),
    }
}

/// `values` as integers, if every one is a whole number within i64's exact range in f64.
pub fn integral(values: &[f64]) -> Option<Vec<i64>> {
    values
        .iter()
        .map(|&v| (v.fract() == 0.0 && v.abs() < 9.0e15).then_some(v as i64))
        .collect()
}

/// Class labels of a label array for `n` samples: integers `[n]` (any width, NumPy's int64
/// default included), whole floats `[n]`, or one-hot rows `[n, k]` (each one 1 and k-1 zeros).
pub fn labels(path: &Path, y: &Array, n: usize) -> Result<Vec<i64>> {
    if y.shape.first() != Some(&n) {
        return Err(Error::format(
            path,
            "labels",
            format!("{n} labels, one per input sample"),
            format!("an array of shape {:?}", y.shape),
        ));
    }
    let as_f64 = |range: std::ops::Range<usize>| -> Vec<f64> {
        match &y.values {
            Values::Int(v) => v[range].iter().map(|&x| x as f64).collect(),
            Values::U8(v) => v[range].iter().map(|&x| x as f64).collect(),
            Values::F32(v) => v[range].iter().map(|&x| x as f64).collect(),
        }
    };
    match (y.shape.len(), &y.values) {
        (1, Values::Int(v)) => Ok(v.clone()),
        (1, Values::U8(v)) => Ok(v.iter().map(|&b| b as i64).collect()),
        (1, Values::F32(_)) => integral(&as_f64(0..n)).ok_or_else(|| {
            Error::format(
                path,
                "labels",
                "class labels (whole numbers), or --task regression for real-valued targets",
                "real values",
            )
        }),
        (2, _) => {
            let k = y.shape[1];
            (0..n)
                .map(|i| {
                    let row = as_f64(i * k..(i + 1) * k);
                    let ones = row.iter().filter(|&&x| x == 1.0).count();
                    let zeros = row.iter().filter(|&&x| x == 0.0).count();
                    if ones != 1 || zeros + 1 != k {
                        return Err(Error::format(
                            path,
                            "labels",
                            format!("one-hot rows (one 1 and {} zeros)", k.saturating_sub(1)),
                            format!("row {i}: {row:?}"),
                        ));
                    }
                    Ok(row.iter().position(|&x| x == 1.0).expect("one 1") as i64)
                })
                .collect()
        }
        _ => Err(Error::format(
            path,
            "labels",
            "integers of shape [n] or one-hot rows [n, k]",
            format!("shape {:?}", y.shape),
        )),
    }
}

/// Real-valued regression targets of a target array for `n` samples: `[n]` (one target) or
/// `[n, k]` (k targets per sample), of any numeric type; returns the values, sample-major, and
/// k. Infinite and NaN values are the caller's to refuse, with the sample's origin.
pub fn targets(path: &Path, y: &Array, n: usize) -> Result<(Vec<f32>, usize)> {
    let k = match y.shape[..] {
        [m] if m == n => 1,
        [m, k] if m == n && k > 0 => k,
        _ => {
            return Err(Error::format(
                path,
                "targets",
                format!("regression targets of shape [{n}] or [{n}, k], one row per input sample"),
                format!("an array of shape {:?}", y.shape),
            ));
        }
    };
    let values = match &y.values {
        Values::Int(v) => v.iter().map(|&x| x as f32).collect(),
        Values::U8(v) => v.iter().map(|&x| x as f32).collect(),
        Values::F32(v) => v.clone(),
    };
    Ok((values, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(shape: &[usize], values: Values) -> Array {
        Array {
            shape: shape.to_vec(),
            values,
            dtype: String::new(),
        }
    }

    #[test]
    fn shapes_are_told_apart_and_channel_last_samples_reordered() {
        let p = Path::new("x.npy");
        let s = sample_shape(p, &[5, 4, 6, 3], None).unwrap();
        assert_eq!((s.image, s.channel_last), (Some(Chw::new(3, 4, 6)), true));
        let s = sample_shape(p, &[5, 3, 8, 8], None).unwrap();
        assert_eq!((s.image, s.channel_last), (Some(Chw::new(3, 8, 8)), false));
        assert!(
            sample_shape(p, &[5, 8, 8, 8], None).is_err(),
            "no channel axis"
        );
        let s = sample_shape(p, &[5, 8, 8, 8], Some(Layout::Nchw)).unwrap();
        assert_eq!(s.image, Some(Chw::new(8, 8, 8)));
        assert_eq!(sample_shape(p, &[5, 7], None).unwrap().width, 7);
        assert!(sample_shape(p, &[5], None).is_err());
        // One 1×2 sample of three channels: [r0 g0 b0 r1 g1 b1] → [r0 r1 g0 g1 b0 b1].
        assert_eq!(
            to_planar(&[1, 2, 3, 4, 5, 6], Chw::new(3, 1, 2)),
            vec![1, 4, 2, 5, 3, 6]
        );
    }

    #[test]
    fn labels_come_from_integers_whole_floats_and_one_hot_rows() {
        let p = Path::new("y.npy");
        assert_eq!(
            labels(p, &array(&[2], Values::Int(vec![7, -1])), 2).unwrap(),
            vec![7, -1]
        );
        assert_eq!(
            labels(p, &array(&[2], Values::F32(vec![1.0, 0.0])), 2).unwrap(),
            vec![1, 0]
        );
        assert!(labels(p, &array(&[2], Values::F32(vec![1.5, 0.0])), 2).is_err());
        let onehot = array(&[2, 3], Values::F32(vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]));
        assert_eq!(labels(p, &onehot, 2).unwrap(), vec![2, 0]);
        let soft = array(&[1, 2], Values::F32(vec![0.5, 0.5]));
        assert!(
            labels(p, &soft, 1)
                .unwrap_err()
                .to_string()
                .contains("row 0")
        );
        assert!(
            labels(p, &array(&[3], Values::Int(vec![1, 2, 3])), 2).is_err(),
            "count"
        );
    }

    #[test]
    fn targets_are_one_or_several_real_values_per_sample() {
        let p = Path::new("y.npy");
        let one = targets(p, &array(&[3], Values::Int(vec![7, -1, 2])), 3).unwrap();
        assert_eq!(one, (vec![7.0, -1.0, 2.0], 1));
        let two = array(&[2, 2], Values::F32(vec![0.5, 1.5, -2.0, 3.25]));
        assert_eq!(
            targets(p, &two, 2).unwrap(),
            (vec![0.5, 1.5, -2.0, 3.25], 2)
        );
        let err = targets(p, &two, 3).unwrap_err().to_string();
        assert!(err.contains("y.npy") && err.contains("[3]"), "{err}");
        assert!(targets(p, &array(&[2, 2, 1], Values::U8(vec![0; 4])), 2).is_err());
    }
}
