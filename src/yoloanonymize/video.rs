//! The element's video glue: the formats it takes (one table for the caps, the mapping and the
//! error text), mapping `gst_video` frames onto the pure plane views, and the region metas.

use gst_video::prelude::*;

use crate::frame::{FrameMut, FrameRef, PixelFormat, PixelRect};
use crate::preprocess::Letterbox;
use crate::regions::RegionKind;

/// The formats the element handles in place: one table for the caps, the mapping and the error.
pub(super) const FORMATS: [(gst_video::VideoFormat, PixelFormat); 8] = [
    (gst_video::VideoFormat::I420, PixelFormat::I420),
    (gst_video::VideoFormat::Nv12, PixelFormat::Nv12),
    (gst_video::VideoFormat::Rgb, PixelFormat::Rgb),
    (gst_video::VideoFormat::Bgr, PixelFormat::Bgr),
    (gst_video::VideoFormat::Rgba, PixelFormat::Rgba),
    (gst_video::VideoFormat::Bgra, PixelFormat::Bgra),
    (gst_video::VideoFormat::Rgbx, PixelFormat::Rgbx),
    (gst_video::VideoFormat::Bgrx, PixelFormat::Bgrx),
];

pub(super) fn pixel_format(f: gst_video::VideoFormat) -> Option<PixelFormat> {
    FORMATS.iter().find(|(v, _)| *v == f).map(|(_, p)| *p)
}

pub(super) fn template_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list(FORMATS.iter().map(|(v, _)| *v))
        .build()
}

/// Raw video in system memory in every format the element does not take.
pub(super) fn other_raw_formats() -> gst::Caps {
    let others = gst_video::VideoFormat::iter_raw()
        .filter(|f| pixel_format(*f).is_none() && *f != gst_video::VideoFormat::Encoded);
    gst_video::VideoCapsBuilder::new()
        .format_list(others)
        .build()
}

/// The advice for caps the element cannot take.
pub(super) fn caps_advice() -> String {
    let names: Vec<&str> = FORMATS.iter().map(|(v, _)| v.to_str().as_str()).collect();
    format!(
        "Supported: raw video in system memory in {}; put videoconvert before yoloanonymize",
        names.join(", ")
    )
}

/// The negotiated input.
#[derive(Clone)]
pub(super) struct Video {
    pub info: gst_video::VideoInfo,
    pub format: PixelFormat,
    pub lb: Letterbox,
    /// The face detector's input geometry, when it runs.
    pub face_lb: Option<Letterbox>,
}

pub(super) fn frame_ref<'a>(
    f: &'a gst_video::VideoFrameRef<&gst::BufferRef>,
    format: PixelFormat,
) -> FrameRef<'a> {
    let mut planes: [&[u8]; 3] = [&[], &[], &[]];
    let mut strides = [0usize; 3];
    for p in 0..(f.n_planes() as usize).min(3) {
        planes[p] = f.plane_data(p as u32).unwrap_or(&[]);
        strides[p] = f.plane_stride()[p] as usize;
    }
    FrameRef {
        format,
        width: f.width() as usize,
        height: f.height() as usize,
        planes,
        strides,
    }
}

pub(super) fn frame_mut<'a>(
    f: &'a mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    format: PixelFormat,
) -> FrameMut<'a> {
    let (width, height) = (f.width() as usize, f.height() as usize);
    let s = f.plane_stride();
    let strides = [
        s[0] as usize,
        s.get(1).copied().unwrap_or(0) as usize,
        s.get(2).copied().unwrap_or(0) as usize,
    ];
    let [p0, p1, p2, _] = f.planes_data_mut();
    FrameMut {
        format,
        width,
        height,
        planes: [p0, p1, p2],
        strides,
    }
}

/// Tells downstream what was redacted: one region-of-interest meta per region, and one over the
/// whole frame (with the reason) when it was redacted whole.
pub(super) fn add_metas(
    buf: &mut gst::BufferRef,
    whole: Option<&str>,
    pixels: &[(RegionKind, PixelRect, f32)],
    width: u32,
    height: u32,
) {
    if let Some(reason) = whole {
        let mut m =
            gst_video::VideoRegionOfInterestMeta::add(buf, "whole-frame", (0, 0, width, height));
        m.add_param(
            gst::Structure::builder("yoloanonymize")
                .field("reason", reason)
                .build(),
        );
    }
    for (id, (kind, px, score)) in pixels.iter().enumerate() {
        let rect = (
            px.x0 as u32,
            px.y0 as u32,
            px.width() as u32,
            px.height() as u32,
        );
        let mut m = gst_video::VideoRegionOfInterestMeta::add(buf, kind.name(), rect);
        // Numbered 0..n per buffer, so bindings can look each one up by id.
        m.set_id(id as i32);
        m.add_param(
            gst::Structure::builder("detection")
                .field("confidence", *score as f64)
                .build(),
        );
    }
}

/// Raw video in system memory (any format).
pub(super) fn is_raw_system(caps: &gst::CapsRef) -> bool {
    !caps.is_empty()
        && caps.iter_with_features().all(|(s, f)| {
            s.name() == "video/x-raw" && f.contains(gst::CAPS_FEATURE_MEMORY_SYSTEM_MEMORY.as_str())
        })
}
