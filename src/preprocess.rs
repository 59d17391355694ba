//! Letterbox geometry and the fused colour-conversion + resize into the network's input tensor.
//!
//! The network input is planar RGB `f32` in `0..1` (NCHW). A frame is scaled so that its long side
//! becomes `input_size`, keeping its aspect ratio, and padded with grey (114/255) up to the next
//! multiple of 32 on each side: a 768x576 frame runs at 640x480, not 640x640.
//!
//! Other networks (the face detector) take other inputs: [`InputSpec`] says the channel order, the
//! value range and the padding, and [`Letterbox::with_scale`] scales a frame by a given factor
//! instead of to a given long side.

use crate::frame::{FrameRef, PixelFormat};

/// Grey used by Ultralytics for letterbox padding.
pub const PAD_VALUE: f32 = 114.0 / 255.0;

/// What one network wants in its input tensor: planar NCHW `f32`, channels in RGB or BGR order,
/// each 8-bit value multiplied by `scale`, padding set to `pad`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputSpec {
    /// Channel planes in B, G, R order instead of R, G, B.
    pub bgr: bool,
    /// Multiplier from `0..255` to the network's range.
    pub scale: f32,
    /// Value of the padding around the scaled frame (every channel).
    pub pad: f32,
}

/// The pose model's input: RGB in `0..1`, padding 114/255 (Ultralytics' letterbox).
pub const POSE_INPUT: InputSpec = InputSpec {
    bgr: false,
    scale: 1.0 / 255.0,
    pad: PAD_VALUE,
};

/// Maps between frame pixels and network-input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub src_w: usize,
    pub src_h: usize,
    pub net_w: usize,
    pub net_h: usize,
    /// Network pixels per frame pixel.
    pub scale: f32,
    /// Left and top padding in network pixels.
    pub pad_x: usize,
    pub pad_y: usize,
    /// Size of the scaled frame inside the network input.
    pub inner_w: usize,
    pub inner_h: usize,
}

fn round_up_32(v: usize) -> usize {
    v.div_ceil(32).max(1) * 32
}

impl Letterbox {
    /// Letterbox for a dynamic-size model: long side `input_size`, each side padded to a multiple
    /// of 32.
    pub fn new(src_w: usize, src_h: usize, input_size: usize) -> Self {
        let src_w = src_w.max(1);
        let src_h = src_h.max(1);
        let scale = input_size as f32 / src_w.max(src_h) as f32;
        let inner_w = ((src_w as f32 * scale).round() as usize).clamp(1, input_size);
        let inner_h = ((src_h as f32 * scale).round() as usize).clamp(1, input_size);
        Self::place(
            src_w,
            src_h,
            round_up_32(inner_w),
            round_up_32(inner_h),
            scale,
            inner_w,
            inner_h,
        )
    }

    /// Letterbox into a fixed network size (for models without dynamic height and width).
    pub fn fixed(src_w: usize, src_h: usize, net_w: usize, net_h: usize) -> Self {
        let src_w = src_w.max(1);
        let src_h = src_h.max(1);
        let scale = (net_w as f32 / src_w as f32).min(net_h as f32 / src_h as f32);
        let inner_w = ((src_w as f32 * scale).round() as usize).clamp(1, net_w);
        let inner_h = ((src_h as f32 * scale).round() as usize).clamp(1, net_h);
        Self::place(src_w, src_h, net_w, net_h, scale, inner_w, inner_h)
    }

    /// Letterbox that scales the frame by `scale` (network pixels per frame pixel; 1 = full
    /// resolution) and pads each side to the next multiple of 32.
    ///
    /// Panics unless `scale` is finite and positive (a property's range is checked before).
    pub fn with_scale(src_w: usize, src_h: usize, scale: f32) -> Self {
        assert!(
            scale.is_finite() && scale > 0.0,
            "letterbox scale {scale} is not a positive number"
        );
        let src_w = src_w.max(1);
        let src_h = src_h.max(1);
        let inner_w = ((src_w as f32 * scale).round() as usize).max(1);
        let inner_h = ((src_h as f32 * scale).round() as usize).max(1);
        Self::place(
            src_w,
            src_h,
            round_up_32(inner_w),
            round_up_32(inner_h),
            scale,
            inner_w,
            inner_h,
        )
    }

    fn place(
        src_w: usize,
        src_h: usize,
        net_w: usize,
        net_h: usize,
        scale: f32,
        inner_w: usize,
        inner_h: usize,
    ) -> Self {
        Self {
            src_w,
            src_h,
            net_w,
            net_h,
            scale,
            pad_x: (net_w - inner_w) / 2,
            pad_y: (net_h - inner_h) / 2,
            inner_w,
            inner_h,
        }
    }

    /// Number of `f32` values one frame occupies in the input tensor.
    pub fn tensor_len(&self) -> usize {
        3 * self.net_w * self.net_h
    }

    /// Network-input coordinates to frame coordinates.
    pub fn to_frame(&self, x: f32, y: f32) -> (f32, f32) {
        (
            (x - self.pad_x as f32) / self.scale,
            (y - self.pad_y as f32) / self.scale,
        )
    }

    /// Frame coordinates to network-input coordinates.
    pub fn to_network(&self, x: f32, y: f32) -> (f32, f32) {
        (
            x * self.scale + self.pad_x as f32,
            y * self.scale + self.pad_y as f32,
        )
    }
}

/// Bilinear tap: the two source indices and the weight of the second.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    w1: f32,
}

fn taps(dst: usize, src: usize, scale: f32, out: &mut Vec<Tap>) {
    out.clear();
    let max = src - 1;
    for d in 0..dst {
        let s = ((d as f32 + 0.5) / scale - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(max);
        let i1 = (i0 + 1).min(max);
        out.push(Tap {
            i0,
            i1,
            w1: s - i0 as f32,
        });
    }
}

/// BT.601 limited-range YUV to RGB in `0..255` (not clamped to integers: the network takes
/// floats).
#[inline]
fn yuv_to_rgb_f(y: f32, u: f32, v: f32) -> [f32; 3] {
    let c = 1.164_383 * (y - 16.0);
    let d = u - 128.0;
    let e = v - 128.0;
    [
        (c + 1.596_027 * e).clamp(0.0, 255.0),
        (c - 0.391_762 * d - 0.812_968 * e).clamp(0.0, 255.0),
        (c + 2.017_232 * d).clamp(0.0, 255.0),
    ]
}

/// The horizontal half of the bilinear resize: samples `offset`, `offset + step`, ... of the
/// 8-bit row `src` (one channel of a packed or interleaved row, or a plane's row), resampled at
/// the output columns of `taps`, into `out`.
#[inline(always)]
fn resize_row(src: &[u8], taps: &[Tap], step: usize, offset: usize, out: &mut [f32]) {
    for (o, t) in out.iter_mut().zip(taps) {
        let a = src[t.i0 * step + offset] as f32;
        let b = src[t.i1 * step + offset] as f32;
        *o = a + (b - a) * t.w1;
    }
}

/// The two horizontally resized source rows that the output row in hand blends: rows move down
/// the frame as the output rows do, so each source row is resized once per frame (twice for the
/// few a downscale skips back to, none).
#[derive(Debug, Default)]
struct RowPair {
    /// The source row each slot holds, if any.
    keys: [Option<usize>; 2],
    rows: [Vec<f32>; 2],
}

impl RowPair {
    /// Forgets the rows held (a new frame).
    fn clear(&mut self, len: usize) {
        self.keys = [None; 2];
        for r in &mut self.rows {
            r.resize(len, 0.0);
        }
    }

    /// Source rows `i0` and `i1`, resized by `fill(row, out)` where not already held.
    #[inline(always)]
    fn get(
        &mut self,
        i0: usize,
        i1: usize,
        mut fill: impl FnMut(usize, &mut [f32]),
    ) -> (&[f32], &[f32]) {
        for i in [i0, i1] {
            if !self.keys.contains(&Some(i)) {
                // The slot that holds neither row (the keys are distinct, so one does).
                let other = if i == i0 { i1 } else { i0 };
                let slot = usize::from(self.keys[0] == Some(other));
                fill(i, &mut self.rows[slot]);
                self.keys[slot] = Some(i);
            }
        }
        let slot = |i| usize::from(self.keys[0] != Some(i));
        (&self.rows[slot(i0)], &self.rows[slot(i1)])
    }
}

/// Reusable state for [`Preprocessor::fill_tensor`]: the resize taps of the last geometry and
/// the horizontally resized source rows of the output row in hand.
#[derive(Debug, Default)]
pub struct Preprocessor {
    key: Option<Letterbox>,
    xtaps: Vec<Tap>,
    ytaps: Vec<Tap>,
    /// Taps on the 2x2-subsampled chroma grid.
    cxtaps: Vec<Tap>,
    cytaps: Vec<Tap>,
    /// Resized luma rows (planar YUV) or R, G, B rows one after the other (packed formats).
    main: RowPair,
    /// Resized chroma rows, U then V (planar YUV).
    chroma: RowPair,
}

impl Preprocessor {
    /// Writes `frame`, letterboxed by `lb`, into `out` (one image: `3 * net_h * net_w` values,
    /// planar RGB in `0..1`: the pose model's [`POSE_INPUT`]). Sampling is bilinear and reads the
    /// frame's own planes: each source row is resized horizontally once (to the network's width,
    /// luma and chroma apart), then each network row blends its two rows and converts YUV to RGB
    /// in contiguous passes that the compiler vectorises, so the cost follows the network size. No
    /// intermediate image is allocated.
    pub fn fill_tensor(&mut self, frame: &FrameRef<'_>, lb: &Letterbox, out: &mut [f32]) {
        self.fill_tensor_as(frame, lb, &POSE_INPUT, out);
    }

    /// [`Preprocessor::fill_tensor`] for a network whose input is described by `spec`.
    pub fn fill_tensor_as(
        &mut self,
        frame: &FrameRef<'_>,
        lb: &Letterbox,
        spec: &InputSpec,
        out: &mut [f32],
    ) {
        assert_eq!(
            out.len(),
            lb.tensor_len(),
            "tensor slice does not match the letterbox"
        );
        assert_eq!(
            (frame.width, frame.height),
            (lb.src_w, lb.src_h),
            "frame does not match the letterbox"
        );
        if self.key != Some(*lb) {
            taps(lb.inner_w, lb.src_w, lb.scale, &mut self.xtaps);
            taps(lb.inner_h, lb.src_h, lb.scale, &mut self.ytaps);
            taps(
                lb.inner_w,
                lb.src_w.div_ceil(2),
                lb.scale * 2.0,
                &mut self.cxtaps,
            );
            taps(
                lb.inner_h,
                lb.src_h.div_ceil(2),
                lb.scale * 2.0,
                &mut self.cytaps,
            );
            self.key = Some(*lb);
        }
        let n = lb.inner_w;
        let packed = frame.format.packed_layout();
        self.main.clear(if packed.is_some() { 3 * n } else { n });
        self.chroma.clear(2 * n);
        let plane = lb.net_w * lb.net_h;
        let (first, rest) = out.split_at_mut(plane);
        let (g_out, third) = rest.split_at_mut(plane);
        let (r_out, b_out) = if spec.bgr {
            (third, first)
        } else {
            (first, third)
        };
        let (inv, pad) = (spec.scale, spec.pad);
        let s = &frame.strides;
        let planes = &frame.planes;
        let src_row = |p: usize, i: usize| &planes[p][i * s[p]..];
        let (xtaps, cxtaps) = (&self.xtaps[..], &self.cxtaps[..]);
        for ny in 0..lb.net_h {
            let row = ny * lb.net_w;
            let inside = ny >= lb.pad_y && ny < lb.pad_y + lb.inner_h;
            if !inside {
                for o in [&mut *r_out, &mut *g_out, &mut *b_out] {
                    o[row..row + lb.net_w].fill(pad);
                }
                continue;
            }
            let left = row + lb.pad_x;
            let right = left + n;
            for o in [&mut *r_out, &mut *g_out, &mut *b_out] {
                o[row..left].fill(pad);
                o[right..row + lb.net_w].fill(pad);
            }
            let (r_row, g_row, b_row) = (
                &mut r_out[left..right],
                &mut g_out[left..right],
                &mut b_out[left..right],
            );
            let t = self.ytaps[ny - lb.pad_y];
            let wy = t.w1;
            match packed {
                None => {
                    let (y0, y1) = self
                        .main
                        .get(t.i0, t.i1, |i, o| resize_row(src_row(0, i), xtaps, 1, 0, o));
                    let ct = self.cytaps[ny - lb.pad_y];
                    let nv12 = frame.format == PixelFormat::Nv12;
                    let (c0, c1) = self.chroma.get(ct.i0, ct.i1, |i, o| {
                        let (u, v) = o.split_at_mut(n);
                        if nv12 {
                            resize_row(src_row(1, i), cxtaps, 2, 0, u);
                            resize_row(src_row(1, i), cxtaps, 2, 1, v);
                        } else {
                            resize_row(src_row(1, i), cxtaps, 1, 0, u);
                            resize_row(src_row(2, i), cxtaps, 1, 0, v);
                        }
                    });
                    let wc = ct.w1;
                    let (y0, y1) = (&y0[..n], &y1[..n]);
                    let (u0, v0) = c0.split_at(n);
                    let (u1, v1) = c1.split_at(n);
                    for i in 0..n {
                        let y = y0[i] + (y1[i] - y0[i]) * wy;
                        let u = u0[i] + (u1[i] - u0[i]) * wc;
                        let v = v0[i] + (v1[i] - v0[i]) * wc;
                        let [r, g, b] = yuv_to_rgb_f(y, u, v);
                        r_row[i] = r * inv;
                        g_row[i] = g * inv;
                        b_row[i] = b * inv;
                    }
                }
                Some((bpp, ro, go, bo)) => {
                    let (a, b) = self.main.get(t.i0, t.i1, |i, o| {
                        let src = src_row(0, i);
                        for (c, off) in [ro, go, bo].into_iter().enumerate() {
                            resize_row(src, xtaps, bpp, off, &mut o[c * n..(c + 1) * n]);
                        }
                    });
                    for (c, o) in [r_row, g_row, b_row].into_iter().enumerate() {
                        let (a, b) = (&a[c * n..(c + 1) * n], &b[c * n..(c + 1) * n]);
                        for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                            *o = (a + (b - a) * wy) * inv;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Bilinear sample of one 8-bit channel: rows `a` and `b`, element index `i0`/`i1` (already
    /// multiplied by the channel stride), horizontal weight `wx`, vertical weight `wy`.
    #[inline(always)]
    fn bilerp(a: &[u8], b: &[u8], i0: usize, i1: usize, wx: f32, wy: f32) -> f32 {
        let top = a[i0] as f32 + (a[i1] as f32 - a[i0] as f32) * wx;
        let bot = b[i0] as f32 + (b[i1] as f32 - b[i0] as f32) * wx;
        top + (bot - top) * wy
    }

    /// The one-pass preprocessing this module had before the separable one (2026-12-02): each
    /// network pixel interpolates its four source samples. Kept as the reference the separable
    /// one is checked against.
    #[derive(Debug, Default)]
    struct OldPreprocessor {
        key: Option<Letterbox>,
        xtaps: Vec<Tap>,
        ytaps: Vec<Tap>,
        /// Taps on the 2x2-subsampled chroma grid.
        cxtaps: Vec<Tap>,
        cytaps: Vec<Tap>,
    }

    impl OldPreprocessor {
        /// The old `fill_tensor_as`.
        pub fn fill_tensor_as(
            &mut self,
            frame: &FrameRef<'_>,
            lb: &Letterbox,
            spec: &InputSpec,
            out: &mut [f32],
        ) {
            assert_eq!(
                out.len(),
                lb.tensor_len(),
                "tensor slice does not match the letterbox"
            );
            assert_eq!(
                (frame.width, frame.height),
                (lb.src_w, lb.src_h),
                "frame does not match the letterbox"
            );
            if self.key != Some(*lb) {
                taps(lb.inner_w, lb.src_w, lb.scale, &mut self.xtaps);
                taps(lb.inner_h, lb.src_h, lb.scale, &mut self.ytaps);
                taps(
                    lb.inner_w,
                    lb.src_w.div_ceil(2),
                    lb.scale * 2.0,
                    &mut self.cxtaps,
                );
                taps(
                    lb.inner_h,
                    lb.src_h.div_ceil(2),
                    lb.scale * 2.0,
                    &mut self.cytaps,
                );
                self.key = Some(*lb);
            }
            let plane = lb.net_w * lb.net_h;
            let (first, rest) = out.split_at_mut(plane);
            let (g_out, third) = rest.split_at_mut(plane);
            let (r_out, b_out) = if spec.bgr {
                (third, first)
            } else {
                (first, third)
            };
            let (inv, pad) = (spec.scale, spec.pad);
            for ny in 0..lb.net_h {
                let row = ny * lb.net_w;
                let inside = ny >= lb.pad_y && ny < lb.pad_y + lb.inner_h;
                if !inside {
                    for o in [&mut *r_out, &mut *g_out, &mut *b_out] {
                        o[row..row + lb.net_w].fill(pad);
                    }
                    continue;
                }
                let left = row + lb.pad_x;
                let right = left + lb.inner_w;
                for o in [&mut *r_out, &mut *g_out, &mut *b_out] {
                    o[row..left].fill(pad);
                    o[right..row + lb.net_w].fill(pad);
                }
                let (r_row, g_row, b_row) = (
                    &mut r_out[left..right],
                    &mut g_out[left..right],
                    &mut b_out[left..right],
                );
                let t = self.ytaps[ny - lb.pad_y];
                let s = &frame.strides;
                match frame.format {
                    PixelFormat::I420 | PixelFormat::Nv12 => {
                        let ya = &frame.planes[0][t.i0 * s[0]..];
                        let yb = &frame.planes[0][t.i1 * s[0]..];
                        let ct = self.cytaps[ny - lb.pad_y];
                        let nv12 = frame.format == PixelFormat::Nv12;
                        let (ua, ub, va, vb) = if nv12 {
                            let a = &frame.planes[1][ct.i0 * s[1]..];
                            let b = &frame.planes[1][ct.i1 * s[1]..];
                            (a, b, &a[1..], &b[1..])
                        } else {
                            (
                                &frame.planes[1][ct.i0 * s[1]..],
                                &frame.planes[1][ct.i1 * s[1]..],
                                &frame.planes[2][ct.i0 * s[2]..],
                                &frame.planes[2][ct.i1 * s[2]..],
                            )
                        };
                        let step = if nv12 { 2 } else { 1 };
                        for (i, (xt, cx)) in self.xtaps.iter().zip(&self.cxtaps).enumerate() {
                            let y = bilerp(ya, yb, xt.i0, xt.i1, xt.w1, t.w1);
                            let (c0, c1) = (cx.i0 * step, cx.i1 * step);
                            let u = bilerp(ua, ub, c0, c1, cx.w1, ct.w1);
                            let v = bilerp(va, vb, c0, c1, cx.w1, ct.w1);
                            let [r, g, b] = yuv_to_rgb_f(y, u, v);
                            r_row[i] = r * inv;
                            g_row[i] = g * inv;
                            b_row[i] = b * inv;
                        }
                    }
                    _ => {
                        let (bpp, ro, go, bo) =
                            frame.format.packed_layout().expect("packed format");
                        let a = &frame.planes[0][t.i0 * s[0]..];
                        let b = &frame.planes[0][t.i1 * s[0]..];
                        for (i, xt) in self.xtaps.iter().enumerate() {
                            let (p0, p1) = (xt.i0 * bpp, xt.i1 * bpp);
                            r_row[i] = bilerp(a, b, p0 + ro, p1 + ro, xt.w1, t.w1) * inv;
                            g_row[i] = bilerp(a, b, p0 + go, p1 + go, xt.w1, t.w1) * inv;
                            b_row[i] = bilerp(a, b, p0 + bo, p1 + bo, xt.w1, t.w1) * inv;
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn vtest_frame_runs_at_640x480() {
        let lb = Letterbox::new(768, 576, 640);
        assert_eq!((lb.net_w, lb.net_h), (640, 480));
        assert_eq!((lb.pad_x, lb.pad_y), (0, 0));
        let lb = Letterbox::new(1920, 1080, 640);
        assert_eq!((lb.net_w, lb.net_h), (640, 384));
        assert_eq!((lb.inner_w, lb.inner_h), (640, 360));
        assert_eq!(lb.pad_y, 12);
    }

    #[test]
    fn letterbox_round_trip() {
        for &(w, h, s) in &[
            (768, 576, 640),
            (1920, 1080, 640),
            (1080, 1920, 320),
            (64, 48, 640),
            (333, 101, 416),
        ] {
            let lb = Letterbox::new(w, h, s);
            assert_eq!(lb.net_w % 32, 0);
            assert_eq!(lb.net_h % 32, 0);
            assert!(lb.net_w.max(lb.net_h) <= s.div_ceil(32) * 32);
            for &(x, y) in &[
                (0.0, 0.0),
                (w as f32, h as f32),
                (w as f32 * 0.3, h as f32 * 0.7),
            ] {
                let (nx, ny) = lb.to_network(x, y);
                assert!(nx >= 0.0 && nx <= lb.net_w as f32 + 0.5);
                assert!(ny >= 0.0 && ny <= lb.net_h as f32 + 0.5);
                let (fx, fy) = lb.to_frame(nx, ny);
                assert!(
                    (fx - x).abs() < 1e-2 && (fy - y).abs() < 1e-2,
                    "{w}x{h}: {x},{y} -> {fx},{fy}"
                );
            }
        }
        let lb = Letterbox::fixed(1920, 1080, 640, 640);
        assert_eq!((lb.inner_w, lb.inner_h, lb.pad_y), (640, 360, 140));
        let (fx, fy) = lb.to_frame(320.0, 320.0);
        assert!((fx - 960.0).abs() < 1e-3 && (fy - 540.0).abs() < 1e-3);
    }

    /// A frame whose pixel (x, y) has colour `rgb(x, y)`, packed tightly, in `format` (its planes;
    /// [`strides`] gives their strides). Also used by the face module's tests.
    pub(crate) fn make_frame(
        format: PixelFormat,
        w: usize,
        h: usize,
        rgb: impl Fn(usize, usize) -> (u8, u8, u8),
    ) -> Vec<Vec<u8>> {
        let yuv = |x: usize, y: usize| {
            let (r, g, b) = rgb(x, y);
            let (r, g, b) = (r as f32, g as f32, b as f32);
            (
                (16.0 + 0.257 * r + 0.504 * g + 0.098 * b).round() as u8,
                (128.0 - 0.148 * r - 0.291 * g + 0.439 * b).round() as u8,
                (128.0 + 0.439 * r - 0.368 * g - 0.071 * b).round() as u8,
            )
        };
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        match format {
            PixelFormat::I420 | PixelFormat::Nv12 => {
                let luma: Vec<u8> = (0..h)
                    .flat_map(|y| (0..w).map(move |x| (x, y)))
                    .map(|(x, y)| yuv(x, y).0)
                    .collect();
                let chroma: Vec<(u8, u8)> = (0..ch)
                    .flat_map(|y| (0..cw).map(move |x| (x, y)))
                    .map(|(x, y)| {
                        let (_, u, v) = yuv(2 * x, 2 * y);
                        (u, v)
                    })
                    .collect();
                if format == PixelFormat::I420 {
                    vec![
                        luma,
                        chroma.iter().map(|c| c.0).collect(),
                        chroma.iter().map(|c| c.1).collect(),
                    ]
                } else {
                    vec![
                        luma,
                        chroma.iter().flat_map(|c| [c.0, c.1]).collect(),
                        vec![],
                    ]
                }
            }
            _ => {
                let (bpp, ro, go, bo) = format.packed_layout().unwrap();
                let mut data = vec![0u8; w * h * bpp];
                for y in 0..h {
                    for x in 0..w {
                        let (r, g, b) = rgb(x, y);
                        let o = (y * w + x) * bpp;
                        data[o + ro] = r;
                        data[o + go] = g;
                        data[o + bo] = b;
                    }
                }
                vec![data, vec![], vec![]]
            }
        }
    }

    pub(crate) fn strides(format: PixelFormat, w: usize) -> [usize; 3] {
        match format {
            PixelFormat::I420 => [w, w / 2, w / 2],
            PixelFormat::Nv12 => [w, w, 0],
            _ => [w * format.packed_layout().unwrap().0, 0, 0],
        }
    }

    #[test]
    fn patterns_land_where_they_are_in_every_format() {
        let (w, h) = (40, 30);
        let lb = Letterbox::new(w, h, 64); // 64x48 inside 64x64, pad_y 8
        let red = (220, 20, 20);
        let blue = (20, 20, 220);
        for format in PixelFormat::ALL {
            for vertical in [false, true] {
                let planes = make_frame(format, w, h, |x, y| {
                    let first = if vertical { y < h / 2 } else { x < w / 2 };
                    if first { red } else { blue }
                });
                let frame = FrameRef {
                    format,
                    width: w,
                    height: h,
                    planes: [&planes[0], &planes[1], &planes[2]],
                    strides: strides(format, w),
                };
                let mut out = vec![0f32; lb.tensor_len()];
                Preprocessor::default().fill_tensor(&frame, &lb, &mut out);
                let plane = lb.net_w * lb.net_h;
                let at = |x: usize, y: usize| {
                    (
                        out[y * lb.net_w + x] * 255.0,
                        out[2 * plane + y * lb.net_w + x] * 255.0,
                    )
                };
                let (first, second) = if vertical {
                    (at(32, 8 + 6), at(32, 8 + 42))
                } else {
                    (at(6, 32), at(58, 32))
                };
                assert!(
                    first.0 > 180.0 && first.1 < 60.0,
                    "{format:?} vertical={vertical}: first half {first:?}"
                );
                assert!(
                    second.0 < 60.0 && second.1 > 180.0,
                    "{format:?} vertical={vertical}: second half {second:?}"
                );
            }
        }
    }

    #[test]
    fn every_format_converts_to_the_same_rgb() {
        let (w, h) = (40, 30);
        let lb = Letterbox::new(w, h, 64);
        assert_eq!((lb.net_w, lb.net_h, lb.pad_y), (64, 64, 8));
        for format in PixelFormat::ALL {
            let planes = make_frame(format, w, h, |_, _| (200, 100, 30));
            let strides = strides(format, w);
            let frame = FrameRef {
                format,
                width: w,
                height: h,
                planes: [&planes[0], &planes[1], &planes[2]],
                strides,
            };
            let mut out = vec![0f32; lb.tensor_len()];
            let mut pre = Preprocessor::default();
            pre.fill_tensor(&frame, &lb, &mut out);
            let plane = lb.net_w * lb.net_h;
            // Padding rows are grey; the centre is the colour.
            assert_eq!(out[0], PAD_VALUE, "{format:?}");
            let centre = 32 * lb.net_w + 32;
            for (c, want) in [200.0f32, 100.0, 30.0].iter().enumerate() {
                let got = out[c * plane + centre] * 255.0;
                assert!(
                    (got - want).abs() < 3.0,
                    "{format:?} channel {c}: {got} vs {want}"
                );
            }
        }
    }

    /// The separable resize gives the one-pass resize's values (to float rounding) in every pixel
    /// format, for downscales, upscales, odd sizes, padded strides and both channel orders.
    #[test]
    fn separable_resize_matches_the_one_pass_resize() {
        let face = InputSpec {
            bgr: true,
            scale: 1.0,
            pad: 0.0,
        };
        // One preprocessor kept across frames, formats and sizes, as the element keeps it: what
        // it holds from one frame must not leak into the next.
        let mut kept = Preprocessor::default();
        for format in PixelFormat::ALL {
            for &(w, h, geometry) in &[
                (77, 45, 0), // to input size 64: downscale with padding
                (40, 30, 1), // x1.5 upscale
                (33, 19, 2), // x2.3 upscale, odd sizes
                (64, 48, 3), // x1
                (5, 2, 3), // x1, two rows: the first rows of a frame are the last of the one before
            ] {
                let planes = make_frame(format, w, h, |x, y| {
                    (
                        (x * 37 + y * 11) as u8,
                        (x * 5 + y * 53) as u8,
                        (x * y) as u8,
                    )
                });
                // Wider strides than the rows, with junk beyond the row ends.
                let tight = strides(format, w);
                let wide = tight.map(|s| if s == 0 { 0 } else { s + 7 });
                let rows = |p: usize| match (format, p) {
                    (PixelFormat::I420, 1 | 2) | (PixelFormat::Nv12, 1) => h.div_ceil(2),
                    (_, 0) => h,
                    _ => 0,
                };
                let padded: Vec<Vec<u8>> = (0..3)
                    .map(|p| {
                        let mut v = vec![0xAB; wide[p] * rows(p)];
                        for r in 0..rows(p) {
                            v[r * wide[p]..][..tight[p]]
                                .copy_from_slice(&planes[p][r * tight[p]..][..tight[p]]);
                        }
                        v
                    })
                    .collect();
                let frame = FrameRef {
                    format,
                    width: w,
                    height: h,
                    planes: [&padded[0], &padded[1], &padded[2]],
                    strides: wide,
                };
                let inverted: Vec<Vec<u8>> = padded
                    .iter()
                    .map(|p| p.iter().map(|v| 255 - v).collect())
                    .collect();
                let negative = FrameRef {
                    planes: [&inverted[0], &inverted[1], &inverted[2]],
                    ..frame
                };
                let lb = match geometry {
                    0 => Letterbox::new(w, h, 64),
                    1 => Letterbox::with_scale(w, h, 1.5),
                    2 => Letterbox::with_scale(w, h, 2.3),
                    _ => Letterbox::with_scale(w, h, 1.0),
                };
                for spec in [POSE_INPUT, face] {
                    let mut want = vec![0f32; lb.tensor_len()];
                    let mut got = vec![1e9f32; lb.tensor_len()];
                    OldPreprocessor::default().fill_tensor_as(&frame, &lb, &spec, &mut want);
                    Preprocessor::default().fill_tensor_as(&frame, &lb, &spec, &mut got);
                    // Another picture of the same size first, as in a stream: its last rows must
                    // not stand in for this frame's first.
                    let mut again = vec![-1f32; lb.tensor_len()];
                    kept.fill_tensor_as(&negative, &lb, &spec, &mut again);
                    kept.fill_tensor_as(&frame, &lb, &spec, &mut again);
                    assert_eq!(
                        got, again,
                        "{format:?} {w}x{h} geometry {geometry}: kept state"
                    );
                    let tol = 1e-3 * spec.scale * 255.0;
                    for (i, (a, b)) in want.iter().zip(&got).enumerate() {
                        assert!(
                            (a - b).abs() <= tol,
                            "{format:?} {w}x{h} geometry {geometry} bgr {}: value {i}: {b} vs {a}",
                            spec.bgr
                        );
                    }
                }
            }
        }
    }

    /// Times the separable resize against the one-pass one on a 768x576 I420 frame to the pose
    /// model's 640x480 and the face detector's x1.5 (a measurement, not a check: run with
    /// `cargo test --release --lib preprocess_speed -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn preprocess_speed() {
        let (w, h) = (768, 576);
        let planes = make_frame(PixelFormat::I420, w, h, |x, y| {
            (x as u8, y as u8, (x ^ y) as u8)
        });
        let frame = FrameRef {
            format: PixelFormat::I420,
            width: w,
            height: h,
            planes: [&planes[0], &planes[1], &planes[2]],
            strides: strides(PixelFormat::I420, w),
        };
        let face = InputSpec {
            bgr: true,
            scale: 1.0,
            pad: 0.0,
        };
        for (name, lb, spec) in [
            ("pose 640x480", Letterbox::new(w, h, 640), POSE_INPUT),
            ("face x1.5", Letterbox::with_scale(w, h, 1.5), face),
        ] {
            let mut out = vec![0f32; lb.tensor_len()];
            let (mut old, mut new) = (OldPreprocessor::default(), Preprocessor::default());
            let n = 200;
            let mut best = [f64::MAX; 2];
            for _ in 0..3 {
                let t = std::time::Instant::now();
                for _ in 0..n {
                    old.fill_tensor_as(&frame, &lb, &spec, &mut out);
                }
                best[0] = best[0].min(t.elapsed().as_secs_f64() * 1e3 / n as f64);
                let t = std::time::Instant::now();
                for _ in 0..n {
                    new.fill_tensor_as(&frame, &lb, &spec, &mut out);
                }
                best[1] = best[1].min(t.elapsed().as_secs_f64() * 1e3 / n as f64);
            }
            println!(
                "{name}: one-pass {:.3} ms, separable {:.3} ms a frame ({:.2}x)",
                best[0],
                best[1],
                best[0] / best[1]
            );
        }
    }
}
