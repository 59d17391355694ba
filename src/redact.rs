//! In-place redaction of rectangular regions of a raw video frame: blur, pixelate or solid fill.
//!
//! Everything here works on [`FrameMut`] plane views and never sees GStreamer. Each format is
//! handled on its own planes, as three independent 8-bit channels:
//!
//! * I420: Y (plane 0), U (plane 1), V (plane 2); U and V at half resolution (rounded up).
//! * NV12: Y (plane 0), and the U and V bytes of the interleaved plane 1 as two separate channels.
//! * Packed RGB formats: the R, G and B bytes of plane 0. The fourth byte of 4-byte formats (alpha
//!   or padding) is never written.
//!
//! For the subsampled formats a region is first snapped outward to even coordinates
//! ([`PixelRect::snap_even`]) so that every chroma sample is wholly inside or wholly outside it;
//! the chroma planes are then processed on the halved rectangle.
//!
//! Only bytes that belong to a pixel inside the (clipped, snapped) region are ever read or written:
//! neighbouring pixels and the padding bytes at the end of each row are left bit-identical. No
//! whole-image buffers are allocated; temporaries are single rows or narrow column strips kept in a
//! reusable [`Scratch`].

use crate::frame::{FrameMut, PixelFormat, PixelRect};

/// How a region is made unrecognisable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Strong blur: three passes of a separable box blur (close to a Gaussian) whose radius grows
    /// with the region, `max(2, max(w, h) / 4)` pixels of the plane being blurred.
    Blur,
    /// Mosaic: every block of the region is replaced by its mean, see [`pixelate_block`].
    Pixelate,
    /// Solid colour `fill_rgb` (converted to BT.601 limited-range YUV for the YUV formats).
    Fill,
}

/// Parameters of one redaction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedactParams {
    /// Which operation to apply.
    pub method: Method,
    /// Block size in frame pixels for [`Method::Pixelate`]; 0 picks one scaled to the region
    /// (see [`pixelate_block`]).
    pub pixel_size: u32,
    /// Colour for [`Method::Fill`], as R, G, B.
    pub fill_rgb: [u8; 3],
}

/// Reusable temporaries for redaction: one row, one narrow strip of columns and per-block sums.
///
/// Buffers grow on demand to the largest region seen and are then reused, so steady-state
/// redaction does not allocate. Never holds a whole image.
#[derive(Debug, Default)]
pub struct Scratch {
    /// One row or column of samples being blurred.
    line: Vec<u8>,
    /// Ping-pong partner of `line`.
    tmp: Vec<u8>,
    /// A line with its edge samples replicated `radius` times on each side.
    pad: Vec<u8>,
    /// A strip of up to [`COL_STRIP`] columns, each stored contiguously.
    cols: Vec<u8>,
    /// Per-block sums (then means) of one band of pixelate blocks.
    sums: Vec<u64>,
}

/// Number of columns gathered at once for the vertical blur pass (keeps row reads cache-friendly).
const COL_STRIP: usize = 32;

/// Redacts `rect` (frame pixels) in place.
///
/// The rect is clipped to the frame; an empty (zero-size, inverted or wholly outside) rect does
/// nothing. For I420/NV12 the clipped rect is snapped outward to even coordinates
/// ([`PixelRect::snap_even`]) so chroma samples are wholly inside or outside, and chroma planes are
/// processed on the halved rect. Only pixels inside the rect are read or written; the alpha / x
/// byte of 4-byte RGB formats and row padding are never touched.
///
/// * [`Method::Blur`]: per plane, radius `max(2, max(w, h) / 4)` of that plane's rect, clamped to
///   the rect (`w - 1` horizontally, `h - 1` vertically); three running-sum box passes
///   horizontally then three vertically, edges replicated within the rect.
/// * [`Method::Pixelate`]: block size from [`pixelate_block`] on the (clipped, snapped) rect, grid
///   anchored at the rect's top-left corner; partial blocks at the right/bottom edge are averaged
///   over what they contain. For I420/NV12 the block is rounded up to an even size and chroma
///   uses half of it, so luma and chroma blocks coincide.
/// * [`Method::Fill`]: RGB formats get `fill_rgb`; YUV formats get its BT.601 limited-range
///   Y/U/V.
///
/// A frame whose planes are shorter than its geometry implies is processed only where the plane
/// holds the bytes; this never panics.
pub fn redact_region(
    frame: &mut FrameMut<'_>,
    rect: PixelRect,
    params: &RedactParams,
    scratch: &mut Scratch,
) {
    let (w, h) = (frame.width, frame.height);
    let mut r = PixelRect::new(
        rect.x0.min(w),
        rect.y0.min(h),
        rect.x1.min(w),
        rect.y1.min(h),
    );
    if r.is_empty() {
        return;
    }
    let subsampled = frame.format.is_subsampled();
    if subsampled {
        r = r.snap_even(w, h);
    }
    match params.method {
        Method::Fill => {
            let values = if frame.format.packed_layout().is_some() {
                params.fill_rgb
            } else {
                rgb_to_yuv601(params.fill_rgb)
            };
            for_each_channel(frame, r, |i, _, view, area| fill(view, area, values[i]));
        }
        Method::Pixelate => {
            let mut block = pixelate_block(r.width(), r.height(), params.pixel_size);
            // A block never needs to exceed the rect (one mean over everything it contains).
            block = block.clamp(1, r.width().max(r.height()).max(1));
            if subsampled {
                block = block.max(2).next_multiple_of(2);
            }
            for_each_channel(frame, r, |_, ch, view, area| {
                let b = if ch.subsampled { block / 2 } else { block };
                pixelate(view, area, b, &mut scratch.sums);
            });
        }
        Method::Blur => {
            for_each_channel(frame, r, |_, _, view, area| blur(view, area, scratch));
        }
    }
}

/// Fail-closed redaction of a whole frame: coarse pixelation of every plane.
///
/// The block is `max(16, max(w, h) / 24)` frame pixels (rounded up to even for I420/NV12, whose
/// chroma planes use half of it), with the grid anchored at the top-left corner. Every colour
/// channel of every plane is pixelated; the alpha / x byte of 4-byte RGB formats and row padding
/// are left untouched.
pub fn redact_whole_frame(frame: &mut FrameMut<'_>, scratch: &mut Scratch) {
    let (w, h) = (frame.width, frame.height);
    if w == 0 || h == 0 {
        return;
    }
    let mut block = (w.max(h) / 24).max(16);
    if frame.format.is_subsampled() {
        block = block.next_multiple_of(2);
    }
    for_each_channel(frame, PixelRect::new(0, 0, w, h), |_, ch, view, area| {
        let b = if ch.subsampled { block / 2 } else { block };
        pixelate(view, area, b, &mut scratch.sums);
    });
}

/// The block size (frame pixels) used by [`Method::Pixelate`] on a region of `rect_w` x `rect_h`.
///
/// `pixel_size` if it is greater than 0; otherwise automatic, `max(4, ceil(max(w, h) / 6))`, so a
/// region is about six blocks across its larger side whatever its size (a face stays coarse
/// enough to be unrecognisable). [`redact_region`] additionally clamps the block to the region
/// and, for I420/NV12, rounds it up to an even size.
pub fn pixelate_block(rect_w: usize, rect_h: usize, pixel_size: u32) -> usize {
    if pixel_size > 0 {
        usize::try_from(pixel_size).unwrap_or(usize::MAX)
    } else {
        rect_w.max(rect_h).div_ceil(6).max(4)
    }
}

/// BT.601 limited-range Y, U (Cb), V (Cr) of an RGB colour, rounded.
fn rgb_to_yuv601(rgb: [u8; 3]) -> [u8; 3] {
    let [r, g, b] = rgb.map(f64::from);
    let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
    let u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
    let v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
    // The clamp keeps the cast exact; `as` on an in-range float is a plain conversion.
    [y, u, v].map(|c| c.round().clamp(0.0, 255.0) as u8)
}

/// One 8-bit channel of a format: where its samples live.
#[derive(Debug, Clone, Copy)]
struct Channel {
    /// Plane index.
    plane: usize,
    /// Byte offset of the sample inside its pixel (or UV pair).
    offset: usize,
    /// Bytes from one sample to the next in a row.
    step: usize,
    /// True for chroma of the 2x2-subsampled formats.
    subsampled: bool,
}

/// The three channels of a format: Y, U, V for YUV; R, G, B for packed RGB.
fn channels(format: PixelFormat) -> [Channel; 3] {
    let ch = |plane, offset, step, subsampled| Channel {
        plane,
        offset,
        step,
        subsampled,
    };
    if let Some((bpp, r, g, b)) = format.packed_layout() {
        return [
            ch(0, r, bpp, false),
            ch(0, g, bpp, false),
            ch(0, b, bpp, false),
        ];
    }
    if format == PixelFormat::Nv12 {
        [ch(0, 0, 1, false), ch(1, 0, 2, true), ch(1, 1, 2, true)]
    } else {
        [ch(0, 0, 1, false), ch(1, 0, 1, true), ch(2, 0, 1, true)]
    }
}

/// A non-empty rectangle in one channel's own sample coordinates.
#[derive(Debug, Clone, Copy)]
struct Area {
    x: usize,
    y: usize,
    w: usize,
    h: usize,
}

/// The part of `rect` (frame pixels, already clipped / snapped) that lies in channel `ch`.
fn channel_area(ch: Channel, rect: PixelRect, width: usize, height: usize) -> Option<Area> {
    let (x0, y0, x1, y1, pw, ph) = if ch.subsampled {
        (
            rect.x0 / 2,
            rect.y0 / 2,
            rect.x1.div_ceil(2),
            rect.y1.div_ceil(2),
            width.div_ceil(2),
            height.div_ceil(2),
        )
    } else {
        (rect.x0, rect.y0, rect.x1, rect.y1, width, height)
    };
    let (x1, y1) = (x1.min(pw), y1.min(ph));
    (x0 < x1 && y0 < y1).then_some(Area {
        x: x0,
        y: y0,
        w: x1 - x0,
        h: y1 - y0,
    })
}

/// One channel of one plane, addressed as `data[y * stride + offset + x * step]`.
struct ChannelView<'p> {
    data: &'p mut [u8],
    stride: usize,
    offset: usize,
    step: usize,
}

impl ChannelView<'_> {
    /// Shrinks `a` to the rows the plane actually holds (all of them for a well-formed frame), so
    /// that every later [`ChannelView::row`] is in bounds. `None` if no row fits.
    fn fit(&self, a: Area) -> Option<Area> {
        // Byte index of the last sample of the area's first row.
        let last = (a.x.checked_add(a.w - 1)?)
            .checked_mul(self.step)?
            .checked_add(self.offset)?
            .checked_add(a.y.checked_mul(self.stride)?)?;
        let len = self.data.len();
        if last >= len {
            return None;
        }
        let rows = (len - 1 - last)
            .checked_div(self.stride)
            .map_or(a.h, |r| r + 1);
        Some(Area {
            h: a.h.min(rows),
            ..a
        })
    }

    /// Bytes spanning row `y` of area `a` (relative row index): sample `i` is at `i * step`.
    fn row(&mut self, a: Area, y: usize) -> &mut [u8] {
        let start = (a.y + y) * self.stride + self.offset + a.x * self.step;
        &mut self.data[start..start + (a.w - 1) * self.step + 1]
    }
}

/// Runs `f(index, channel, view, area)` on every channel's part of `rect`.
fn for_each_channel(
    frame: &mut FrameMut<'_>,
    rect: PixelRect,
    mut f: impl FnMut(usize, Channel, &mut ChannelView<'_>, Area),
) {
    let (width, height) = (frame.width, frame.height);
    for (i, ch) in channels(frame.format).into_iter().enumerate() {
        let Some(area) = channel_area(ch, rect, width, height) else {
            continue;
        };
        let mut view = ChannelView {
            data: &mut *frame.planes[ch.plane],
            stride: frame.strides[ch.plane],
            offset: ch.offset,
            step: ch.step,
        };
        if let Some(area) = view.fit(area) {
            f(i, ch, &mut view, area);
        }
    }
}

/// Sets every sample of the area to `value`.
fn fill(view: &mut ChannelView<'_>, a: Area, value: u8) {
    let step = view.step;
    for y in 0..a.h {
        let row = view.row(a, y);
        if step == 1 {
            row.fill(value);
        } else {
            row.iter_mut().step_by(step).for_each(|v| *v = value);
        }
    }
}

/// Replaces each `block` x `block` tile of the area (grid anchored at its top-left) by its
/// rounded mean; partial tiles at the right/bottom edges average what they contain.
fn pixelate(view: &mut ChannelView<'_>, a: Area, block: usize, sums: &mut Vec<u64>) {
    let block = block.clamp(1, a.w.max(a.h));
    let step = view.step;
    let chunk = block * step;
    let nbx = a.w.div_ceil(block);
    sums.clear();
    sums.resize(nbx, 0);
    let mut by = 0;
    while by < a.h {
        let bh = block.min(a.h - by);
        sums.fill(0);
        for y in by..by + bh {
            let row = view.row(a, y);
            for (s, c) in sums.iter_mut().zip(row.chunks(chunk)) {
                *s += if step == 1 {
                    c.iter().map(|&v| u64::from(v)).sum::<u64>()
                } else {
                    c.iter().step_by(step).map(|&v| u64::from(v)).sum::<u64>()
                };
            }
        }
        for (bx, s) in sums.iter_mut().enumerate() {
            let bw = block.min(a.w - bx * block);
            let n = (bw * bh) as u64;
            *s = (*s + n / 2) / n;
        }
        for y in by..by + bh {
            let row = view.row(a, y);
            for (&s, c) in sums.iter().zip(row.chunks_mut(chunk)) {
                // A mean of u8 samples fits in u8.
                let m = s as u8;
                if step == 1 {
                    c.fill(m);
                } else {
                    c.iter_mut().step_by(step).for_each(|v| *v = m);
                }
            }
        }
        by += bh;
    }
}

/// Three-pass box blur of the area, horizontally then vertically, edges replicated.
fn blur(view: &mut ChannelView<'_>, a: Area, scratch: &mut Scratch) {
    let radius = (a.w.max(a.h) / 4).max(2);
    let (rh, rv) = (radius.min(a.w - 1), radius.min(a.h - 1));
    let step = view.step;
    let Scratch {
        line,
        tmp,
        pad,
        cols,
        ..
    } = scratch;

    if rh > 0 {
        for y in 0..a.h {
            let row = view.row(a, y);
            line.clear();
            if step == 1 {
                line.extend_from_slice(row);
            } else {
                line.extend(row.iter().step_by(step));
            }
            blur3(line, tmp, pad, rh);
            if step == 1 {
                row.copy_from_slice(line);
            } else {
                for (d, &s) in row.iter_mut().step_by(step).zip(line.iter()) {
                    *d = s;
                }
            }
        }
    }

    if rv > 0 {
        let h = a.h;
        let mut x = 0;
        while x < a.w {
            let kc = COL_STRIP.min(a.w - x);
            cols.clear();
            cols.resize(kc * h, 0);
            for y in 0..h {
                let row = view.row(a, y);
                for (k, &v) in row[x * step..].iter().step_by(step).take(kc).enumerate() {
                    cols[k * h + y] = v;
                }
            }
            for col in cols.chunks_mut(h) {
                blur3(col, tmp, pad, rv);
            }
            for y in 0..h {
                let row = view.row(a, y);
                for (k, d) in row[x * step..]
                    .iter_mut()
                    .step_by(step)
                    .take(kc)
                    .enumerate()
                {
                    *d = cols[k * h + y];
                }
            }
            x += kc;
        }
    }
}

/// Three box passes of radius `r` over `buf` in place (approximately a Gaussian of sigma ~ r).
fn blur3(buf: &mut [u8], tmp: &mut Vec<u8>, pad: &mut Vec<u8>, r: usize) {
    if buf.len() < 2 || r == 0 {
        return;
    }
    tmp.clear();
    tmp.resize(buf.len(), 0);
    box_pass(buf, tmp, pad, r);
    box_pass(tmp, buf, pad, r);
    box_pass(buf, tmp, pad, r);
    buf.copy_from_slice(tmp);
}

/// One running-sum box filter of radius `r` from `src` to `dst` (same length, non-empty), with
/// the edge samples replicated; the cost per sample does not depend on `r`.
fn box_pass(src: &[u8], dst: &mut [u8], pad: &mut Vec<u8>, r: usize) {
    let n = src.len();
    let (Some(&first), Some(&last)) = (src.first(), src.last()) else {
        return;
    };
    pad.clear();
    pad.resize(r, first);
    pad.extend_from_slice(src);
    pad.resize(n + 2 * r, last);

    let win = 2 * r + 1;
    // Fixed-point reciprocal: (sum * inv) >> 32 is sum / win, rounded, for any sum <= 255 * win.
    let inv = ((1u64 << 32) + win as u64 / 2) / win as u64;
    let avg = |sum: u64| ((sum * inv + (1 << 31)) >> 32).min(255) as u8;

    let mut sum: u64 = pad[..win].iter().map(|&v| u64::from(v)).sum();
    let Some((d0, rest)) = dst.split_first_mut() else {
        return;
    };
    *d0 = avg(sum);
    for ((d, &add), &sub) in rest.iter_mut().zip(&pad[win..]).zip(&pad[..n - 1]) {
        sum = sum + u64::from(add) - u64::from(sub);
        *d = avg(sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTINEL: u8 = 0xA5;
    const ALL_METHODS: [Method; 3] = [Method::Blur, Method::Pixelate, Method::Fill];
    const FILL: [u8; 3] = [10, 200, 30];

    /// Tiny LCG for reproducible textured frames.
    struct Lcg(u32);
    impl Lcg {
        fn next(&mut self) -> u8 {
            self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (self.0 >> 24) as u8
        }
    }

    /// Geometry of plane `p`: (samples per row, rows, bytes per sample group).
    fn plane_geom(format: PixelFormat, w: usize, h: usize, p: usize) -> (usize, usize, usize) {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        match (format, p) {
            (PixelFormat::I420 | PixelFormat::Nv12, 0) => (w, h, 1),
            (PixelFormat::I420, _) => (cw, ch, 1),
            (PixelFormat::Nv12, _) => (cw, ch, 2),
            (f, _) => (w, h, f.packed_layout().unwrap().0),
        }
    }

    /// An owned frame with padded rows; padding bytes hold `SENTINEL`.
    #[derive(Clone, PartialEq, Debug)]
    struct TestFrame {
        format: PixelFormat,
        w: usize,
        h: usize,
        bufs: [Vec<u8>; 3],
        strides: [usize; 3],
    }

    impl TestFrame {
        fn new(format: PixelFormat, w: usize, h: usize, pad: usize, seed: u32) -> Self {
            let mut rng = Lcg(seed);
            let mut bufs: [Vec<u8>; 3] = Default::default();
            let mut strides = [0; 3];
            for p in 0..format.n_planes() {
                let (pw, ph, bpp) = plane_geom(format, w, h, p);
                let stride = pw * bpp + pad + p;
                let mut buf = vec![SENTINEL; stride * ph];
                for row in buf.chunks_mut(stride) {
                    for b in &mut row[..pw * bpp] {
                        *b = rng.next();
                    }
                }
                bufs[p] = buf;
                strides[p] = stride;
            }
            Self {
                format,
                w,
                h,
                bufs,
                strides,
            }
        }

        fn frame(&mut self) -> FrameMut<'_> {
            let [a, b, c] = &mut self.bufs;
            FrameMut {
                format: self.format,
                width: self.w,
                height: self.h,
                planes: [a.as_mut_slice(), b.as_mut_slice(), c.as_mut_slice()],
                strides: self.strides,
            }
        }

        /// The channel (0..3: Y/U/V or R/G/B) of byte `idx` of plane `p`, with the sample's
        /// coordinates in that plane; `None` for padding and alpha / x bytes.
        fn channel_of(&self, p: usize, idx: usize) -> Option<(usize, usize, usize)> {
            let (pw, ph, bpp) = plane_geom(self.format, self.w, self.h, p);
            let stride = self.strides[p];
            let (y, xb) = (idx / stride, idx % stride);
            if y >= ph || xb >= pw * bpp {
                return None;
            }
            let (x, c) = (xb / bpp, xb % bpp);
            let ch = match self.format {
                PixelFormat::I420 => p,
                PixelFormat::Nv12 => p + c,
                f => {
                    let (_, r, g, b) = f.packed_layout().unwrap();
                    [r, g, b].iter().position(|&o| o == c)?
                }
            };
            Some((ch, x, y))
        }

        /// Whether a sample of channel `ch` at (x, y) of its plane lies in `eff` (frame pixels).
        fn inside(&self, ch: usize, x: usize, y: usize, eff: Option<PixelRect>) -> bool {
            let Some(r) = eff else { return false };
            if self.format.is_subsampled() && ch > 0 {
                PixelRect::new(r.x0 / 2, r.y0 / 2, r.x1.div_ceil(2), r.y1.div_ceil(2))
                    .contains(x, y)
            } else {
                r.contains(x, y)
            }
        }

        /// Value of channel `ch` at (x, y) of its plane.
        fn sample(&self, ch: usize, x: usize, y: usize) -> u8 {
            match self.format {
                PixelFormat::I420 => self.bufs[ch][y * self.strides[ch] + x],
                PixelFormat::Nv12 if ch == 0 => self.bufs[0][y * self.strides[0] + x],
                PixelFormat::Nv12 => self.bufs[1][y * self.strides[1] + 2 * x + ch - 1],
                f => {
                    let (bpp, r, g, b) = f.packed_layout().unwrap();
                    self.bufs[0][y * self.strides[0] + x * bpp + [r, g, b][ch]]
                }
            }
        }

        fn set_sample(&mut self, ch: usize, x: usize, y: usize, v: u8) {
            let (p, i) = match self.format {
                PixelFormat::I420 => (ch, y * self.strides[ch] + x),
                PixelFormat::Nv12 if ch == 0 => (0, y * self.strides[0] + x),
                PixelFormat::Nv12 => (1, y * self.strides[1] + 2 * x + ch - 1),
                f => {
                    let (bpp, r, g, b) = f.packed_layout().unwrap();
                    (0, y * self.strides[0] + x * bpp + [r, g, b][ch])
                }
            };
            self.bufs[p][i] = v;
        }
    }

    /// A changed-or-not record of one sample inside the redacted rect.
    struct InsideSample {
        ch: usize,
        x: usize,
        y: usize,
        before: u8,
        after: u8,
    }

    /// Asserts every byte outside `eff` (including padding and alpha) is unchanged and returns
    /// the samples inside it.
    fn diff(before: &TestFrame, after: &TestFrame, eff: Option<PixelRect>) -> Vec<InsideSample> {
        let mut inside = Vec::new();
        for p in 0..3 {
            assert_eq!(before.bufs[p].len(), after.bufs[p].len());
            for (idx, (&b, &a)) in before.bufs[p].iter().zip(&after.bufs[p]).enumerate() {
                match before.channel_of(p, idx) {
                    Some((ch, x, y)) if before.inside(ch, x, y, eff) => inside.push(InsideSample {
                        ch,
                        x,
                        y,
                        before: b,
                        after: a,
                    }),
                    role => assert_eq!(
                        a, b,
                        "{:?}: byte {idx} of plane {p} ({role:?}) outside {eff:?} changed",
                        before.format
                    ),
                }
            }
        }
        inside
    }

    /// The rect the implementation is specified to touch: clipped, then snapped for YUV.
    fn effective(format: PixelFormat, w: usize, h: usize, r: PixelRect) -> Option<PixelRect> {
        let c = PixelRect::new(r.x0.min(w), r.y0.min(h), r.x1.min(w), r.y1.min(h));
        if c.is_empty() {
            None
        } else if format.is_subsampled() {
            Some(c.snap_even(w, h))
        } else {
            Some(c)
        }
    }

    fn params(method: Method) -> RedactParams {
        RedactParams {
            method,
            pixel_size: 0,
            fill_rgb: FILL,
        }
    }

    fn expected_fill(format: PixelFormat) -> [u8; 3] {
        if format.is_subsampled() {
            rgb_to_yuv601(FILL)
        } else {
            FILL
        }
    }

    /// Redacts `rect` on a fresh textured frame and checks the invariants; returns the inside
    /// samples for further checks.
    fn run_case(
        format: PixelFormat,
        method: Method,
        (w, h): (usize, usize),
        rect: PixelRect,
        scratch: &mut Scratch,
    ) -> Vec<InsideSample> {
        let before = TestFrame::new(format, w, h, 5, 12345);
        let mut after = before.clone();
        redact_region(&mut after.frame(), rect, &params(method), scratch);
        let eff = effective(format, w, h, rect);
        let inside = diff(&before, &after, eff);
        let ctx = format!("{format:?} {method:?} {rect:?} -> {eff:?}");
        if method == Method::Fill {
            let want = expected_fill(format);
            for s in &inside {
                assert_eq!(
                    s.after, want[s.ch],
                    "{ctx}: fill at ch{} ({},{})",
                    s.ch, s.x, s.y
                );
            }
        } else if inside.len() >= 48 {
            let changed = inside.iter().filter(|s| s.after != s.before).count();
            assert!(
                changed * 10 >= inside.len() * 9,
                "{ctx}: only {changed}/{} inside samples changed",
                inside.len()
            );
        }
        if let Some(e) = eff {
            let n_ch = inside
                .iter()
                .map(|s| s.ch)
                .collect::<std::collections::BTreeSet<_>>();
            assert_eq!(n_ch.len(), 3, "{ctx}: every channel is redacted");
            let luma_pixels = e.width() * e.height();
            assert_eq!(
                inside.iter().filter(|s| s.ch == 0).count(),
                luma_pixels,
                "{ctx}"
            );
        }
        inside
    }

    const W: usize = 41;
    const H: usize = 31;

    #[test]
    fn interior_rect_every_method_every_format() {
        let mut scratch = Scratch::default();
        for format in PixelFormat::ALL {
            for method in ALL_METHODS {
                for rect in [
                    PixelRect::new(5, 3, 27, 20),
                    PixelRect::new(0, 0, 9, 7),
                    PixelRect::new(12, 9, 13, 10),
                ] {
                    run_case(format, method, (W, H), rect, &mut scratch);
                }
            }
        }
    }

    #[test]
    fn rect_past_edges_is_clipped() {
        let mut scratch = Scratch::default();
        for format in PixelFormat::ALL {
            for method in ALL_METHODS {
                for rect in [
                    PixelRect::new(30, 21, 1000, 1000),
                    PixelRect::new(29, 0, usize::MAX, 13),
                    PixelRect::new(0, 0, usize::MAX, usize::MAX),
                ] {
                    let inside = run_case(format, method, (W, H), rect, &mut scratch);
                    // The pixels on the frame's right and bottom edges were redacted.
                    let edge: Vec<_> = inside
                        .iter()
                        .filter(|s| s.ch == 0 && (s.x == W - 1 || s.y == H - 1))
                        .collect();
                    assert!(!edge.is_empty());
                    let changed = edge.iter().filter(|s| s.after != s.before).count();
                    assert!(
                        changed * 4 >= edge.len() * 3,
                        "{format:?} {method:?} {rect:?}: {changed}/{} edge samples changed",
                        edge.len()
                    );
                }
            }
        }
    }

    #[test]
    fn empty_rects_change_nothing() {
        let mut scratch = Scratch::default();
        for format in PixelFormat::ALL {
            for method in ALL_METHODS {
                for rect in [
                    PixelRect::new(10, 10, 10, 20),
                    PixelRect::new(10, 10, 20, 10),
                    PixelRect::new(20, 15, 10, 5),
                    PixelRect::new(W, 0, W + 10, H),
                    PixelRect::new(0, H, W, H + 3),
                    PixelRect::new(100, 100, 200, 200),
                    PixelRect::new(usize::MAX, usize::MAX, usize::MAX, usize::MAX),
                    PixelRect::default(),
                ] {
                    let before = TestFrame::new(format, W, H, 5, 7);
                    let mut after = before.clone();
                    redact_region(&mut after.frame(), rect, &params(method), &mut scratch);
                    assert_eq!(before, after, "{format:?} {method:?} {rect:?}");
                }
            }
        }
    }

    #[test]
    fn tiny_frames_never_panic() {
        let mut scratch = Scratch::default();
        for format in PixelFormat::ALL {
            for (w, h) in [(1, 1), (1, 6), (6, 1), (2, 3), (3, 2), (1, 40), (40, 1)] {
                for method in ALL_METHODS {
                    for rect in [
                        PixelRect::new(0, 0, w, h),
                        PixelRect::new(0, 0, 1, 1),
                        PixelRect::new(w - 1, h - 1, w + 5, h + 5),
                        PixelRect::new(0, 0, usize::MAX, usize::MAX),
                        PixelRect::new(1, 1, 0, 0),
                    ] {
                        run_case(format, method, (w, h), rect, &mut scratch);
                    }
                }
                let before = TestFrame::new(format, w, h, 3, 99);
                let mut after = before.clone();
                redact_whole_frame(&mut after.frame(), &mut scratch);
                diff(&before, &after, Some(PixelRect::new(0, 0, w, h)));
            }
        }
    }

    #[test]
    fn zero_sized_frame_is_a_no_op() {
        let mut scratch = Scratch::default();
        for format in PixelFormat::ALL {
            let mut f = FrameMut {
                format,
                width: 0,
                height: 0,
                planes: [&mut [], &mut [], &mut []],
                strides: [0; 3],
            };
            for method in ALL_METHODS {
                redact_region(
                    &mut f,
                    PixelRect::new(0, 0, 9, 9),
                    &params(method),
                    &mut scratch,
                );
            }
            redact_whole_frame(&mut f, &mut scratch);
        }
    }

    #[test]
    fn short_planes_never_panic() {
        // Planes without the last row's padding are common; planes missing rows or empty are
        // malformed but must not panic either.
        let mut scratch = Scratch::default();
        for format in PixelFormat::ALL {
            for cut in [5, 40, 200, usize::MAX] {
                let mut tf = TestFrame::new(format, W, H, 5, 3);
                for b in &mut tf.bufs {
                    let keep = b.len().saturating_sub(cut);
                    b.truncate(keep);
                }
                for method in ALL_METHODS {
                    let rect = PixelRect::new(20, 15, 1000, 1000);
                    redact_region(&mut tf.frame(), rect, &params(method), &mut scratch);
                }
                redact_whole_frame(&mut tf.frame(), &mut scratch);
            }
            // Without the last row's padding every pixel is still redacted.
            let mut before = TestFrame::new(format, W, H, 5, 3);
            for (p, b) in before.bufs.iter_mut().enumerate() {
                let keep = b.len().saturating_sub(5 + p);
                b.truncate(keep);
            }
            let mut after = before.clone();
            let rect = PixelRect::new(30, 20, W, H);
            redact_region(
                &mut after.frame(),
                rect,
                &params(Method::Fill),
                &mut scratch,
            );
            let want = expected_fill(format);
            let eff = effective(format, W, H, rect);
            for s in diff(&before, &after, eff) {
                assert_eq!(s.after, want[s.ch], "{format:?}");
            }
        }
    }

    #[test]
    fn whole_frame_pixelates_every_plane() {
        let mut scratch = Scratch::default();
        for format in PixelFormat::ALL {
            for (w, h) in [(64, 48), (W, H), (500, 37)] {
                let before = TestFrame::new(format, w, h, 7, 42);
                let mut after = before.clone();
                redact_whole_frame(&mut after.frame(), &mut scratch);
                let inside = diff(&before, &after, Some(PixelRect::new(0, 0, w, h)));
                for ch in 0..3 {
                    let all: Vec<_> = inside.iter().filter(|s| s.ch == ch).collect();
                    let changed = all.iter().filter(|s| s.after != s.before).count();
                    assert!(
                        changed * 10 >= all.len() * 9,
                        "{format:?} {w}x{h} ch{ch}: {changed}/{}",
                        all.len()
                    );
                }
                // Blocks of max(16, max(w,h)/24) (halved for chroma) are constant.
                let block = (w.max(h) / 24).max(16);
                for s in &inside {
                    let b = if format.is_subsampled() && s.ch > 0 {
                        block / 2
                    } else {
                        block
                    };
                    let (x0, y0) = (s.x / b * b, s.y / b * b);
                    assert_eq!(s.after, after.sample(s.ch, x0, y0), "{format:?} ch{}", s.ch);
                }
            }
        }
    }

    #[test]
    fn fill_red_writes_bt601_limited_yuv() {
        assert_eq!(rgb_to_yuv601([255, 0, 0]), [81, 90, 240]);
        assert_eq!(rgb_to_yuv601([0, 0, 0]), [16, 128, 128]);
        assert_eq!(rgb_to_yuv601([255, 255, 255]), [235, 128, 128]);
        let mut scratch = Scratch::default();
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            let before = TestFrame::new(format, W, H, 4, 1);
            let mut after = before.clone();
            let p = RedactParams {
                method: Method::Fill,
                pixel_size: 0,
                fill_rgb: [255, 0, 0],
            };
            let rect = PixelRect::new(3, 3, 20, 18);
            redact_region(&mut after.frame(), rect, &p, &mut scratch);
            let inside = diff(&before, &after, effective(format, W, H, rect));
            assert_eq!(inside.len(), 18 * 16 + 2 * 9 * 8);
            for s in inside {
                assert_eq!(s.after, [81, 90, 240][s.ch], "{format:?} ch{}", s.ch);
            }
        }
        // RGB formats get the colour itself, with alpha untouched (checked by `diff`).
        for format in PixelFormat::ALL.into_iter().skip(2) {
            let before = TestFrame::new(format, W, H, 4, 1);
            let mut after = before.clone();
            let p = RedactParams {
                method: Method::Fill,
                pixel_size: 0,
                fill_rgb: [255, 0, 0],
            };
            let rect = PixelRect::new(3, 3, 20, 18);
            redact_region(&mut after.frame(), rect, &p, &mut scratch);
            for s in diff(&before, &after, Some(rect)) {
                assert_eq!(s.after, [255, 0, 0][s.ch], "{format:?} ch{}", s.ch);
            }
        }
    }

    fn variance(v: &[f64]) -> f64 {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64
    }

    #[test]
    fn blur_flattens_sharp_patterns() {
        let mut scratch = Scratch::default();
        type Pattern = fn(usize, usize) -> bool;
        let patterns: [(&str, Pattern); 3] = [
            ("checkerboard", |x, y| (x + y) % 2 == 1),
            ("vertical lines", |x, _| x % 2 == 1),
            ("horizontal lines", |_, y| y % 2 == 1),
        ];
        for format in [PixelFormat::I420, PixelFormat::Rgbx, PixelFormat::Bgr] {
            for (name, pat) in patterns {
                let mut tf = TestFrame::new(format, 64, 64, 3, 5);
                for y in 0..64 {
                    for x in 0..64 {
                        tf.set_sample(0, x, y, if pat(x, y) { 255 } else { 0 });
                    }
                }
                let rect = PixelRect::new(8, 8, 56, 48);
                let region = |t: &TestFrame| -> Vec<f64> {
                    (8..48)
                        .flat_map(|y| (8..56).map(move |x| (x, y)))
                        .map(|(x, y)| f64::from(t.sample(0, x, y)))
                        .collect()
                };
                let v0 = variance(&region(&tf));
                let before = tf.clone();
                redact_region(&mut tf.frame(), rect, &params(Method::Blur), &mut scratch);
                diff(&before, &tf, Some(rect));
                let v1 = variance(&region(&tf));
                assert!(v0 > 10_000.0, "{name}: {v0}");
                assert!(v1 * 10.0 < v0, "{format:?} {name}: variance {v0} -> {v1}");
            }
        }
    }

    #[test]
    fn blur_reads_only_inside_the_rect() {
        let mut scratch = Scratch::default();
        for format in PixelFormat::ALL {
            let rect = PixelRect::new(6, 4, 30, 22);
            let eff = effective(format, W, H, rect);
            let a = TestFrame::new(format, W, H, 5, 11);
            let mut b = TestFrame::new(format, W, H, 5, 77);
            // Same content inside the rect, different everywhere else.
            for p in 0..3 {
                for idx in 0..a.bufs[p].len() {
                    let inside = a.channel_of(p, idx);
                    if inside.is_some_and(|(ch, x, y)| a.inside(ch, x, y, eff)) {
                        b.bufs[p][idx] = a.bufs[p][idx];
                    }
                }
            }
            for method in [Method::Blur, Method::Pixelate] {
                let (mut a2, mut b2) = (a.clone(), b.clone());
                redact_region(&mut a2.frame(), rect, &params(method), &mut scratch);
                redact_region(&mut b2.frame(), rect, &params(method), &mut scratch);
                let ia = diff(&a, &a2, eff);
                let ib = diff(&b, &b2, eff);
                assert!(
                    ia.iter().zip(&ib).all(|(p, q)| p.after == q.after),
                    "{format:?}"
                );
            }
        }
    }

    #[test]
    fn blur_of_constant_region_is_constant() {
        let mut scratch = Scratch::default();
        let mut tf = TestFrame::new(PixelFormat::Rgb, 50, 40, 2, 1);
        for y in 0..40 {
            for x in 0..50 {
                for ch in 0..3 {
                    tf.set_sample(ch, x, y, [0, 200, 255][ch]);
                }
            }
        }
        let before = tf.clone();
        redact_region(
            &mut tf.frame(),
            PixelRect::new(0, 0, 50, 40),
            &params(Method::Blur),
            &mut scratch,
        );
        assert_eq!(before, tf);
    }

    #[test]
    fn pixelate_makes_constant_blocks_of_the_mean() {
        let mut scratch = Scratch::default();
        for format in [PixelFormat::Rgb, PixelFormat::Bgra, PixelFormat::Nv12] {
            let (w, h) = (48, 48);
            let before = TestFrame::new(format, w, h, 3, 2024);
            let mut after = before.clone();
            let rect = PixelRect::new(8, 8, 40, 36);
            let p = RedactParams {
                method: Method::Pixelate,
                pixel_size: 6,
                fill_rgb: FILL,
            };
            redact_region(&mut after.frame(), rect, &p, &mut scratch);
            diff(&before, &after, Some(rect));
            let chans: &[(usize, usize, PixelRect)] = if format.is_subsampled() {
                &[
                    (0, 6, rect),
                    (1, 3, PixelRect::new(4, 4, 20, 18)),
                    (2, 3, PixelRect::new(4, 4, 20, 18)),
                ]
            } else {
                &[(0, 6, rect), (1, 6, rect), (2, 6, rect)]
            };
            for &(ch, b, r) in chans {
                let mut by = r.y0;
                while by < r.y1 {
                    let mut bx = r.x0;
                    while bx < r.x1 {
                        let (ex, ey) = ((bx + b).min(r.x1), (by + b).min(r.y1));
                        let mut sum = 0u32;
                        for y in by..ey {
                            for x in bx..ex {
                                sum += u32::from(before.sample(ch, x, y));
                            }
                        }
                        let n = ((ex - bx) * (ey - by)) as u32;
                        let mean = ((sum + n / 2) / n) as u8;
                        for y in by..ey {
                            for x in bx..ex {
                                assert_eq!(
                                    after.sample(ch, x, y),
                                    mean,
                                    "{format:?} ch{ch} ({x},{y})"
                                );
                            }
                        }
                        bx += b;
                    }
                    by += b;
                }
            }
        }
    }

    #[test]
    fn pixelate_auto_block_on_i420_aligns_chroma() {
        let mut scratch = Scratch::default();
        let before = TestFrame::new(PixelFormat::I420, 48, 40, 3, 8);
        let mut after = before.clone();
        // 36 x 24 rect: block max(4, ceil(36 / 6)) = 6 on luma, 3 on chroma.
        let rect = PixelRect::new(4, 4, 40, 28);
        redact_region(
            &mut after.frame(),
            rect,
            &params(Method::Pixelate),
            &mut scratch,
        );
        for s in diff(&before, &after, Some(rect)) {
            let (b, x0, y0) = if s.ch == 0 { (6, 4, 4) } else { (3, 2, 2) };
            let (bx, by) = (x0 + (s.x - x0) / b * b, y0 + (s.y - y0) / b * b);
            assert_eq!(
                s.after,
                after.sample(s.ch, bx, by),
                "ch{} ({},{})",
                s.ch,
                s.x,
                s.y
            );
        }
        // An odd explicit size is rounded up to even for subsampled formats.
        let mut odd = before.clone();
        let p = RedactParams {
            method: Method::Pixelate,
            pixel_size: 5,
            fill_rgb: FILL,
        };
        redact_region(&mut odd.frame(), rect, &p, &mut scratch);
        assert_eq!(odd, after);
    }

    #[test]
    fn pixelate_block_sizes() {
        assert_eq!(pixelate_block(60, 30, 0), 10);
        assert_eq!(pixelate_block(61, 10, 0), 11);
        assert_eq!(pixelate_block(10, 10, 0), 4);
        assert_eq!(pixelate_block(0, 0, 0), 4);
        assert_eq!(pixelate_block(10, 10, 7), 7);
        assert_eq!(pixelate_block(1000, 10, 1), 1);
    }

    #[test]
    fn huge_pixel_size_is_one_block() {
        let mut scratch = Scratch::default();
        for format in PixelFormat::ALL {
            let before = TestFrame::new(format, W, H, 2, 9);
            let mut after = before.clone();
            let p = RedactParams {
                method: Method::Pixelate,
                pixel_size: u32::MAX,
                fill_rgb: FILL,
            };
            let rect = PixelRect::new(2, 2, 20, 12);
            redact_region(&mut after.frame(), rect, &p, &mut scratch);
            let inside = diff(&before, &after, effective(format, W, H, rect));
            for s in &inside {
                let first = inside.iter().find(|t| t.ch == s.ch).unwrap();
                assert_eq!(s.after, first.after, "{format:?}");
            }
        }
    }
}
