//! `ops::conv`'s unit tests: the reference by hand, its transposes, bad shapes.

use super::*;
use ndarray::{Array1, Array2, array};

fn shape(c: usize, h: usize, w: usize, co: usize, k: usize, p: Padding) -> ConvShape {
    ConvShape::new(Chw::new(c, h, w), co, k, p).unwrap()
}

#[test]
fn output_shapes() {
    let s = shape(3, 7, 5, 8, 3, Padding::Valid);
    assert_eq!(s.output(), Chw::new(8, 5, 3));
    assert_eq!(s.weight_dims(), (8, 27));
    assert_eq!(s.parameter_count(), 8 * 27 + 8);
    assert_eq!(s.macs_per_sample(), 8 * 5 * 3 * 27);
    let s = shape(3, 7, 5, 8, 5, Padding::Same);
    assert_eq!((s.output(), s.pad()), (Chw::new(8, 7, 5), 2));
    // The kernel may be as large as the input: one output per channel.
    assert_eq!(
        shape(1, 5, 5, 2, 5, Padding::Valid).output(),
        Chw::new(2, 1, 1)
    );
    assert_eq!(
        shape(1, 28, 28, 8, 5, Padding::Valid).to_string(),
        "conv2d 1×28×28 → 8×24×24, 5×5 valid"
    );
    assert_eq!("same".parse::<Padding>().unwrap(), Padding::Same);
    assert!("full".parse::<Padding>().is_err());
}

#[test]
fn bad_shapes_are_errors_that_name_the_conv_and_the_sizes() {
    let err = |c, h, w, co, k, p| {
        ConvShape::new(Chw::new(c, h, w), co, k, p)
            .unwrap_err()
            .to_string()
    };
    let e = err(1, 4, 6, 8, 5, Padding::Valid);
    assert!(
        e.contains("1×4×6") && e.contains("5×5") && e.contains("4×6"),
        "{e}"
    );
    let e = err(1, 6, 4, 8, 5, Padding::Same);
    assert!(e.contains("no larger than the 6×4 input"), "{e}");
    let e = err(3, 8, 8, 8, 4, Padding::Same);
    assert!(e.contains("odd kernel") && e.contains("4×4"), "{e}");
    assert!(ConvShape::new(Chw::new(3, 8, 8), 8, 4, Padding::Valid).is_ok());
    assert!(err(0, 8, 8, 8, 3, Padding::Valid).contains("0×8×8"));
    assert!(err(1, 8, 0, 8, 3, Padding::Valid).contains("1×8×0"));
    assert!(err(1, 8, 8, 0, 3, Padding::Valid).contains("output channel"));
    assert!(err(1, 8, 8, 4, 0, Padding::Same).contains("at least 1×1"));
    let e = err(1 << 20, 1 << 20, 1 << 20, 1, 1, Padding::Valid);
    assert!(e.contains("input values per sample"), "{e}");
    let e = err(1 << 16, 3, 3, 1 << 16, 3, Padding::Same);
    assert!(e.contains("weights"), "{e}");
}

#[test]
fn arrays_that_do_not_fit_are_errors_not_panics() {
    let s = shape(2, 4, 3, 3, 3, Padding::Valid); // output 3×2×1
    let (x, w, b) = (
        Array2::<f32>::zeros((2, 24)),
        Array2::<f32>::zeros((3, 18)),
        Array1::<f32>::zeros(3),
    );
    let mut out = Array2::<f32>::zeros((2, 6));
    assert!(conv2d(&s, x.view(), w.view(), b.view(), out.view_mut()).is_ok());
    // A channel mismatch: the previous layer gave 3 channels, not 2.
    let x3 = Array2::<f32>::zeros((2, 36));
    let e = conv2d(&s, x3.view(), w.view(), b.view(), out.view_mut()).unwrap_err();
    assert!(e.to_string().contains("2·4·3 = 24") && e.to_string().contains("2×36"));
    let wt = w.t().to_owned();
    assert!(conv2d(&s, x.view(), wt.view(), b.view(), out.view_mut()).is_err());
    let b4 = Array1::<f32>::zeros(4);
    assert!(conv2d(&s, x.view(), w.view(), b4.view(), out.view_mut()).is_err());
    let mut short = Array2::<f32>::zeros((1, 6));
    assert!(conv2d(&s, x.view(), w.view(), b.view(), short.view_mut()).is_err());
    let mut dx = Array2::<f32>::zeros((2, 24));
    assert!(conv2d_input_grad(&s, out.view(), w.view(), dx.view_mut()).is_ok());
    assert!(conv2d_input_grad(&s, x.view(), w.view(), dx.view_mut()).is_err());
    let mut dx1 = Array2::<f32>::zeros((1, 24));
    assert!(conv2d_input_grad(&s, out.view(), w.view(), dx1.view_mut()).is_err());
    let (mut dw, mut db) = (w.clone(), b.clone());
    assert!(conv2d_param_grads(&s, x.view(), out.view(), dw.view_mut(), db.view_mut()).is_ok());
    assert!(conv2d_param_grads(&s, x.view(), short.view(), dw.view_mut(), db.view_mut()).is_err());
    let mut db4 = b4.clone();
    assert!(conv2d_param_grads(&s, x.view(), out.view(), dw.view_mut(), db4.view_mut()).is_err());
}

/// One 3×3 image, one 2×2 kernel, by hand.
#[test]
fn valid_forward_and_gradients_by_hand() {
    let s = shape(1, 3, 3, 1, 2, Padding::Valid);
    let x = array![[1., 2., 3., 4., 5., 6., 7., 8., 9.]];
    let w = array![[1., 0., 0., -1.]]; // y = x[y][x] - x[y+1][x+1] + b
    let b = array![0.5];
    let mut y = Array2::zeros((1, 4));
    conv2d(&s, x.view(), w.view(), b.view(), y.view_mut()).unwrap();
    assert_eq!(
        y,
        array![[1. - 5. + 0.5, 2. - 6. + 0.5, 4. - 8. + 0.5, 5. - 9. + 0.5]]
    );

    // dy picks the top-right output: x[0][1] feeds it through w[0][0] = 1, x[1][2] through
    // w[1][1] = -1.
    let dy = array![[0., 1., 0., 0.]];
    let mut dx = Array2::zeros((1, 9));
    conv2d_input_grad(&s, dy.view(), w.view(), dx.view_mut()).unwrap();
    assert_eq!(dx, array![[0., 1., 0., 0., 0., -1., 0., 0., 0.]]);
    // dw[ky][kx] = x[ky][1 + kx]: the patch under that output.
    let (mut dw, mut db) = (Array2::zeros((1, 4)), Array1::zeros(1));
    conv2d_param_grads(&s, x.view(), dy.view(), dw.view_mut(), db.view_mut()).unwrap();
    assert_eq!(dw, array![[2., 3., 5., 6.]]);
    assert_eq!(db, array![1.]);
}

/// Same padding: a 3×3 box filter over two channels of 3×3 (the second ten times the
/// first), summing both; edges and corners see only the pixels inside the image.
#[test]
fn same_padding_by_hand() {
    let s = shape(2, 3, 3, 1, 3, Padding::Same);
    let grid: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let tens: Vec<f32> = grid.iter().map(|v| 10. * v).collect();
    let x = Array2::from_shape_vec((1, 18), [grid, tens].concat()).unwrap();
    let w = Array2::from_elem((1, 18), 1.0f32);
    let mut y = Array2::zeros((1, 9));
    conv2d(&s, x.view(), w.view(), array![0.].view(), y.view_mut()).unwrap();
    // 3×3 neighbourhood sums of 1..9 inside the grid, e.g. 1 + 2 + 4 + 5 = 12 at a corner,
    // times 11 for the two channels.
    let sums = [12., 21., 16., 27., 45., 33., 24., 39., 28.];
    assert_eq!(y.row(0).to_vec(), sums.map(|v| 11. * v));
    // With an all-ones kernel, the input gradient of dy = 1 counts the outputs that read
    // each pixel: 4 at corners, 6 at edges, 9 inside, in both channels.
    let mut dx = Array2::zeros((1, 18));
    let ones = Array2::from_elem((1, 9), 1.0f32);
    conv2d_input_grad(&s, ones.view(), w.view(), dx.view_mut()).unwrap();
    let count = [4., 6., 4., 6., 9., 6., 4., 6., 4.];
    assert_eq!(dx.row(0).to_vec(), [count, count].concat());
}

/// The input gradient is the forward map's transpose: ⟨conv(x), dy⟩ = ⟨x, conv_inputᵀ(dy)⟩
/// (bias 0), and the weight gradient is the other factor's: ⟨conv_w(x), dy⟩ = ⟨w, dw⟩. Both
/// sides are small integer sums here, so exact in f32.
#[test]
fn gradients_are_the_transposes_of_the_forward_map() {
    for (c, h, wd, co, k, p) in [
        (1, 5, 4, 2, 3, Padding::Valid),
        (3, 4, 5, 2, 3, Padding::Same),
        (2, 6, 5, 3, 5, Padding::Same),
        (2, 3, 3, 1, 1, Padding::Valid),
    ] {
        let s = shape(c, h, wd, co, k, p);
        let o = s.output();
        let ints = |r: usize, n: usize, seed: usize| {
            Array2::from_shape_fn((r, n), |(i, j)| ((i * 7 + j * 13 + seed) % 9) as f32 - 4.)
        };
        let (x, w, dy) = (
            ints(2, c * h * wd, 1),
            ints(co, c * k * k, 2),
            ints(2, o.len(), 3),
        );
        let mut y = Array2::zeros((2, o.len()));
        conv2d(
            &s,
            x.view(),
            w.view(),
            Array1::zeros(co).view(),
            y.view_mut(),
        )
        .unwrap();
        let mut dx = Array2::zeros(x.dim());
        conv2d_input_grad(&s, dy.view(), w.view(), dx.view_mut()).unwrap();
        let (mut dw, mut db) = (Array2::zeros(w.dim()), Array1::zeros(co));
        conv2d_param_grads(&s, x.view(), dy.view(), dw.view_mut(), db.view_mut()).unwrap();
        let dot = |a: &Array2<f32>, b: &Array2<f32>| (a * b).sum();
        assert_eq!(dot(&y, &dy), dot(&x, &dx), "{s}");
        assert_eq!(dot(&y, &dy), dot(&w, &dw), "{s}");
        let per_channel: Vec<f32> = (0..co)
            .map(|ch| {
                dy.columns()
                    .into_iter()
                    .skip(ch * o.h * o.w)
                    .take(o.h * o.w)
                    .map(|c| c.sum())
                    .sum()
            })
            .collect();
        assert_eq!(db.to_vec(), per_channel, "{s}");
    }
}
