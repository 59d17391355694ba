//! Scene cuts, detected cheaply on a small thumbnail of every frame.
//!
//! Temporal safety carries regions forward (held), backward (look-ahead) and between detections
//! (interpolation). Across a hard cut that is wrong: the people of the previous shot are not in
//! the new one, so their held and grown regions only damage the new picture. A cut is a frame
//! whose thumbnail differs from the previous frame's both block by block (the picture moved
//! everywhere) and in its brightness histogram (it is another picture, not the same one panned
//! or zoomed): motion changes the blocks but keeps the histogram, a flash of light changes the
//! histogram but not the block pattern much.

use crate::frame::{FrameRef, PixelFormat};

/// Thumbnail grid: blocks across and down.
const GX: usize = 16;
const GY: usize = 9;
/// Samples per block side.
const SAMPLES: usize = 4;
const BINS: usize = 16;

/// A frame's thumbnail: block means of luma and a luma histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnail {
    blocks: [f32; GX * GY],
    /// Normalised: sums to 1.
    hist: [f32; BINS],
}

/// Luma (BT.601, 0..255) of pixel (x, y).
fn luma(frame: &FrameRef<'_>, x: usize, y: usize) -> f32 {
    match frame.format.packed_layout() {
        Some((bpp, r, g, b)) => {
            let row = &frame.planes[0][y * frame.strides[0]..];
            let p = &row[x * bpp..];
            0.299 * p[r] as f32 + 0.587 * p[g] as f32 + 0.114 * p[b] as f32
        }
        // Y plane of I420 / NV12 (limited range: close enough for comparing frames).
        None => frame.planes[0][y * frame.strides[0] + x] as f32,
    }
}

impl Thumbnail {
    /// Samples `frame` on a regular grid: `GX * GY * SAMPLES^2` pixels, whatever its size.
    pub fn of(frame: &FrameRef<'_>) -> Self {
        let mut blocks = [0f32; GX * GY];
        let mut hist = [0f32; BINS];
        let (w, h) = (frame.width.max(1), frame.height.max(1));
        let nx = GX * SAMPLES;
        let ny = GY * SAMPLES;
        for sy in 0..ny {
            let y = ((2 * sy + 1) * h / (2 * ny)).min(h - 1);
            for sx in 0..nx {
                let x = ((2 * sx + 1) * w / (2 * nx)).min(w - 1);
                let v = luma(frame, x, y);
                blocks[(sy / SAMPLES) * GX + sx / SAMPLES] += v;
                hist[((v as usize) * BINS / 256).min(BINS - 1)] += 1.0;
            }
        }
        let per_block = (SAMPLES * SAMPLES) as f32;
        blocks.iter_mut().for_each(|b| *b /= per_block);
        let total = (nx * ny) as f32;
        hist.iter_mut().for_each(|b| *b /= total);
        Self { blocks, hist }
    }

    /// Mean absolute difference of the block means (0..255).
    pub fn block_distance(&self, other: &Thumbnail) -> f32 {
        let sum: f32 = self
            .blocks
            .iter()
            .zip(&other.blocks)
            .map(|(a, b)| (a - b).abs())
            .sum();
        sum / (GX * GY) as f32
    }

    /// Half the L1 distance of the histograms (0 = same, 1 = disjoint).
    pub fn histogram_distance(&self, other: &Thumbnail) -> f32 {
        let sum: f32 = self
            .hist
            .iter()
            .zip(&other.hist)
            .map(|(a, b)| (a - b).abs())
            .sum();
        sum / 2.0
    }
}

/// Thresholds of a cut (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CutParams {
    /// Mean block difference, in luma levels (0..255).
    pub block: f32,
    /// Histogram distance (0..1). Measured on the coverage benchmark's clip (benches/faces, 825
    /// frames at 960x544, 23 cuts between photos and videos, with pans and zooms): at the cuts
    /// block 37.6-78.2 and histogram 0.235-0.729; elsewhere at most block 15.8 and histogram
    /// 0.075. 0.35 (the first choice) missed 11 of the 23 cuts.
    pub histogram: f32,
}

impl Default for CutParams {
    fn default() -> Self {
        Self {
            block: 30.0,
            histogram: 0.15,
        }
    }
}

/// Says, frame by frame, whether a frame starts a new shot.
#[derive(Debug, Default)]
pub struct CutDetector {
    prev: Option<Thumbnail>,
    pub params: CutParams,
}

impl CutDetector {
    /// Whether the frame whose thumbnail is `t` starts a new shot (the first frame does not:
    /// there is nothing to carry into it).
    pub fn push(&mut self, t: Thumbnail) -> bool {
        let cut = self.prev.as_ref().is_some_and(|p| {
            t.block_distance(p) >= self.params.block
                && t.histogram_distance(p) >= self.params.histogram
        });
        self.prev = Some(t);
        cut
    }

    /// Forgets the previous frame (a flush, new caps).
    pub fn reset(&mut self) {
        self.prev = None;
    }
}

/// Formats [`Thumbnail::of`] reads (all the element takes).
pub fn supports(format: PixelFormat) -> bool {
    format.packed_layout().is_some() || matches!(format, PixelFormat::I420 | PixelFormat::Nv12)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packed RGB frame from a function of (x, y).
    fn rgb(w: usize, h: usize, f: impl Fn(usize, usize) -> [u8; 3]) -> Vec<u8> {
        let mut v = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                v.extend(f(x, y));
            }
        }
        v
    }

    fn thumb(w: usize, h: usize, data: &[u8]) -> Thumbnail {
        Thumbnail::of(&FrameRef {
            format: PixelFormat::Rgb,
            width: w,
            height: h,
            planes: [data, &[], &[]],
            strides: [w * 3, 0, 0],
        })
    }

    /// A textured scene: stripes whose phase `dx` moves them (a pan).
    fn stripes(dx: usize, period: usize, bright: u8) -> Vec<u8> {
        rgb(320, 180, |x, y| {
            let v = if ((x + dx) / period + y / 40).is_multiple_of(2) {
                bright
            } else {
                bright / 4
            };
            [v, v, v]
        })
    }

    #[test]
    fn a_cut_between_two_pictures_is_found_and_a_pan_is_not() {
        let mut d = CutDetector::default();
        assert!(
            !d.push(thumb(320, 180, &stripes(0, 20, 200))),
            "first frame"
        );
        // The same scene panned by a quarter period, several times: never a cut.
        for dx in [5, 10, 15, 20] {
            assert!(!d.push(thumb(320, 180, &stripes(dx, 20, 200))), "pan {dx}");
        }
        // Another picture: dark and smooth.
        let dark = rgb(320, 180, |x, _| {
            let v = (x / 8) as u8;
            [v, v, v / 2]
        });
        assert!(d.push(thumb(320, 180, &dark)), "cut");
        assert!(!d.push(thumb(320, 180, &dark)), "the same picture again");
        d.reset();
        assert!(
            !d.push(thumb(320, 180, &stripes(0, 20, 200))),
            "after a reset"
        );
    }

    #[test]
    fn a_flash_of_light_alone_is_not_a_cut() {
        let mut d = CutDetector::default();
        let scene = |gain: f32| {
            rgb(320, 180, |x, y| {
                let v = (((x + 2 * y) % 128) as f32 * gain).min(255.0) as u8;
                [v, v, v]
            })
        };
        d.push(thumb(320, 180, &scene(1.0)));
        // Every pixel brighter by a third: the histogram moves, but the blocks only a little.
        assert!(!d.push(thumb(320, 180, &scene(1.3))));
    }

    #[test]
    fn yuv_and_tiny_frames_are_read() {
        let (w, h) = (7, 5);
        let y: Vec<u8> = (0..w * h).map(|i| (i * 7) as u8).collect();
        let uv = vec![128u8; w * h];
        let t = Thumbnail::of(&FrameRef {
            format: PixelFormat::I420,
            width: w,
            height: h,
            planes: [&y, &uv, &uv],
            strides: [w, w.div_ceil(2), w.div_ceil(2)],
        });
        assert!((t.hist.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        let one = Thumbnail::of(&FrameRef {
            format: PixelFormat::Bgrx,
            width: 1,
            height: 1,
            planes: [&[10, 20, 30, 0], &[], &[]],
            strides: [4, 0, 0],
        });
        assert_eq!(one.block_distance(&one), 0.0);
        assert!(PixelFormat::ALL.iter().all(|f| supports(*f)));
    }
}
