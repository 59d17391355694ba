//! Letterbox geometry and the fused colour-conversion + resize into the network's input tensor.
//!
//! The network input is planar RGB `f32` in `0..1` (NCHW). A frame is scaled so that its long side
//! becomes `input_size`, keeping its aspect ratio, and padded with grey (114/255) up to the next
//! multiple of 32 on each side: a 768x576 frame runs at 640x480, not 640x640.

use crate::frame::{FrameRef, PixelFormat};

/// Grey used by Ultralytics for letterbox padding.
pub const PAD_VALUE: f32 = 114.0 / 255.0;

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

/// Converts one frame row to packed RGB bytes.
fn row_to_rgb(frame: &FrameRef<'_>, y: usize, out: &mut [u8]) {
    let w = frame.width;
    match frame.format {
        PixelFormat::I420 | PixelFormat::Nv12 => {
            let yrow = &frame.planes[0][y * frame.strides[0]..][..w];
            let cy = y / 2;
            for (x, px) in out.chunks_exact_mut(3).take(w).enumerate() {
                let cx = x / 2;
                let (u, v) = if frame.format == PixelFormat::I420 {
                    (
                        frame.planes[1][cy * frame.strides[1] + cx],
                        frame.planes[2][cy * frame.strides[2] + cx],
                    )
                } else {
                    let o = cy * frame.strides[1] + 2 * cx;
                    (frame.planes[1][o], frame.planes[1][o + 1])
                };
                let (r, g, b) = yuv_to_rgb(yrow[x], u, v);
                px[0] = r;
                px[1] = g;
                px[2] = b;
            }
        }
        _ => {
            let (bpp, ro, go, bo) = frame.format.packed_layout().expect("packed format");
            let row = &frame.planes[0][y * frame.strides[0]..][..w * bpp];
            for (src, px) in row.chunks_exact(bpp).zip(out.chunks_exact_mut(3)) {
                px[0] = src[ro];
                px[1] = src[go];
                px[2] = src[bo];
            }
        }
    }
}

/// BT.601 limited-range YUV to RGB, integer arithmetic.
#[inline]
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> (u8, u8, u8) {
    let c = (y as i32 - 16).max(0) * 298;
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    (
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    )
}

/// Reusable state for [`fill_tensor`]: row buffers and resize taps.
#[derive(Debug, Default)]
pub struct Preprocessor {
    key: Option<(Letterbox, usize)>,
    xtaps: Vec<Tap>,
    ytaps: Vec<Tap>,
    row_a: Vec<u8>,
    row_b: Vec<u8>,
    rows: [Option<usize>; 2],
}

impl Preprocessor {
    /// Writes `frame`, letterboxed by `lb`, into `out` (one image: `3 * net_h * net_w` values,
    /// planar RGB in `0..1`). Colour conversion and bilinear resize run in one pass; no
    /// intermediate image is allocated.
    pub fn fill_tensor(&mut self, frame: &FrameRef<'_>, lb: &Letterbox, out: &mut [f32]) {
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
        if self.key != Some((*lb, frame.width)) {
            taps(lb.inner_w, lb.src_w, lb.scale, &mut self.xtaps);
            taps(lb.inner_h, lb.src_h, lb.scale, &mut self.ytaps);
            self.row_a.resize(3 * frame.width, 0);
            self.row_b.resize(3 * frame.width, 0);
            self.key = Some((*lb, frame.width));
        }
        self.rows = [None, None];
        let plane = lb.net_w * lb.net_h;
        let (r_out, rest) = out.split_at_mut(plane);
        let (g_out, b_out) = rest.split_at_mut(plane);
        const INV: f32 = 1.0 / 255.0;
        for ny in 0..lb.net_h {
            let row = ny * lb.net_w;
            let inside = ny >= lb.pad_y && ny < lb.pad_y + lb.inner_h;
            if !inside {
                r_out[row..row + lb.net_w].fill(PAD_VALUE);
                g_out[row..row + lb.net_w].fill(PAD_VALUE);
                b_out[row..row + lb.net_w].fill(PAD_VALUE);
                continue;
            }
            let t = self.ytaps[ny - lb.pad_y];
            // Keep the two source rows this output row needs, converting only new ones.
            if self.rows[0] != Some(t.i0) {
                if self.rows[1] == Some(t.i0) {
                    std::mem::swap(&mut self.row_a, &mut self.row_b);
                    self.rows.swap(0, 1);
                } else {
                    row_to_rgb(frame, t.i0, &mut self.row_a);
                    self.rows[0] = Some(t.i0);
                }
            }
            if self.rows[1] != Some(t.i1) {
                row_to_rgb(frame, t.i1, &mut self.row_b);
                self.rows[1] = Some(t.i1);
            }
            let (a, b) = (&self.row_a, &self.row_b);
            let wy = t.w1;
            let left = row + lb.pad_x;
            let right = left + lb.inner_w;
            for o in [&mut *r_out, &mut *g_out, &mut *b_out] {
                o[row..left].fill(PAD_VALUE);
                o[right..row + lb.net_w].fill(PAD_VALUE);
            }
            for (i, xt) in self.xtaps.iter().enumerate() {
                let (p0, p1) = (3 * xt.i0, 3 * xt.i1);
                let wx = xt.w1;
                let mut px = [0f32; 3];
                for (c, v) in px.iter_mut().enumerate() {
                    let top = a[p0 + c] as f32 + (a[p1 + c] as f32 - a[p0 + c] as f32) * wx;
                    let bot = b[p0 + c] as f32 + (b[p1 + c] as f32 - b[p0 + c] as f32) * wx;
                    *v = (top + (bot - top) * wy) * INV;
                }
                r_out[left + i] = px[0];
                g_out[left + i] = px[1];
                b_out[left + i] = px[2];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn make_frame(format: PixelFormat, w: usize, h: usize, rgb: (u8, u8, u8)) -> Vec<Vec<u8>> {
        match format {
            PixelFormat::I420 | PixelFormat::Nv12 => {
                let (r, g, b) = (rgb.0 as f32, rgb.1 as f32, rgb.2 as f32);
                let y = (16.0 + 0.257 * r + 0.504 * g + 0.098 * b).round() as u8;
                let u = (128.0 - 0.148 * r - 0.291 * g + 0.439 * b).round() as u8;
                let v = (128.0 + 0.439 * r - 0.368 * g - 0.071 * b).round() as u8;
                let cw = w.div_ceil(2);
                let ch = h.div_ceil(2);
                if format == PixelFormat::I420 {
                    vec![vec![y; w * h], vec![u; cw * ch], vec![v; cw * ch]]
                } else {
                    let uv: Vec<u8> = (0..cw * ch).flat_map(|_| [u, v]).collect();
                    vec![vec![y; w * h], uv, vec![]]
                }
            }
            _ => {
                let (bpp, ro, go, bo) = format.packed_layout().unwrap();
                let mut px = vec![0u8; bpp];
                px[ro] = rgb.0;
                px[go] = rgb.1;
                px[bo] = rgb.2;
                vec![px.repeat(w * h), vec![], vec![]]
            }
        }
    }

    #[test]
    fn every_format_converts_to_the_same_rgb() {
        let (w, h) = (40, 30);
        let lb = Letterbox::new(w, h, 64);
        assert_eq!((lb.net_w, lb.net_h, lb.pad_y), (64, 64, 8));
        for format in PixelFormat::ALL {
            let planes = make_frame(format, w, h, (200, 100, 30));
            let strides = match format {
                PixelFormat::I420 => [w, w / 2, w / 2],
                PixelFormat::Nv12 => [w, w, 0],
                _ => [w * format.packed_layout().unwrap().0, 0, 0],
            };
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
}
