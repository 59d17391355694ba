//! Pixel formats, plane views and integer rectangles in frame pixels.
//!
//! Pure data: the element maps a `gst_video::VideoFrame` into these views; everything that reads or
//! writes pixels (preprocessing, redaction) works on them and never sees GStreamer.

/// The pixel layouts the element handles in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Planar Y, U, V; chroma subsampled 2x2.
    I420,
    /// Planar Y, interleaved UV; chroma subsampled 2x2.
    Nv12,
    Rgb,
    Bgr,
    Rgba,
    Bgra,
    Rgbx,
    Bgrx,
}

impl PixelFormat {
    /// Number of planes the format has.
    pub fn n_planes(self) -> usize {
        match self {
            PixelFormat::I420 => 3,
            PixelFormat::Nv12 => 2,
            _ => 1,
        }
    }

    /// For packed RGB formats: (bytes per pixel, offset of R, offset of G, offset of B).
    /// `None` for the YUV formats.
    pub fn packed_layout(self) -> Option<(usize, usize, usize, usize)> {
        match self {
            PixelFormat::Rgb => Some((3, 0, 1, 2)),
            PixelFormat::Bgr => Some((3, 2, 1, 0)),
            PixelFormat::Rgba | PixelFormat::Rgbx => Some((4, 0, 1, 2)),
            PixelFormat::Bgra | PixelFormat::Bgrx => Some((4, 2, 1, 0)),
            PixelFormat::I420 | PixelFormat::Nv12 => None,
        }
    }

    /// True when chroma is subsampled 2x2 (regions are snapped to even coordinates).
    pub fn is_subsampled(self) -> bool {
        matches!(self, PixelFormat::I420 | PixelFormat::Nv12)
    }

    /// Every format, for tests that must cover each of them.
    pub const ALL: [PixelFormat; 8] = [
        PixelFormat::I420,
        PixelFormat::Nv12,
        PixelFormat::Rgb,
        PixelFormat::Bgr,
        PixelFormat::Rgba,
        PixelFormat::Bgra,
        PixelFormat::Rgbx,
        PixelFormat::Bgrx,
    ];
}

/// A rectangle in frame pixels, `x0..x1` by `y0..y1` (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PixelRect {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl PixelRect {
    pub fn new(x0: usize, y0: usize, x1: usize, y1: usize) -> Self {
        Self { x0, y0, x1, y1 }
    }
    pub fn width(&self) -> usize {
        self.x1.saturating_sub(self.x0)
    }
    pub fn height(&self) -> usize {
        self.y1.saturating_sub(self.y0)
    }
    pub fn is_empty(&self) -> bool {
        self.width() == 0 || self.height() == 0
    }
    pub fn contains(&self, x: usize, y: usize) -> bool {
        x >= self.x0 && x < self.x1 && y >= self.y0 && y < self.y1
    }
    /// Grows the rectangle outwards to even coordinates, clipped to `width` x `height`, so that a
    /// 2x2-subsampled chroma sample is either wholly inside or wholly outside it.
    pub fn snap_even(&self, width: usize, height: usize) -> Self {
        Self {
            x0: self.x0 & !1,
            y0: self.y0 & !1,
            x1: ((self.x1 + 1) & !1).min(width),
            y1: ((self.y1 + 1) & !1).min(height),
        }
    }
}

/// Read-only view of one frame: up to three planes with their strides in bytes.
#[derive(Debug)]
pub struct FrameRef<'a> {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    pub planes: [&'a [u8]; 3],
    pub strides: [usize; 3],
}

/// Writable view of one frame: up to three planes with their strides in bytes.
#[derive(Debug)]
pub struct FrameMut<'a> {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    pub planes: [&'a mut [u8]; 3],
    pub strides: [usize; 3],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snap_even_grows_and_clips() {
        let r = PixelRect::new(3, 5, 8, 9).snap_even(100, 100);
        assert_eq!(r, PixelRect::new(2, 4, 8, 10));
        let r = PixelRect::new(95, 95, 99, 99).snap_even(99, 99);
        assert_eq!(r, PixelRect::new(94, 94, 99, 99));
        assert!(PixelRect::new(4, 4, 4, 9).is_empty());
    }
}
