//! Reads back what an MP4 file holds, without decoding it: the number of samples (frames) of its
//! video track, from the sample-size box (`stsz` or `stz2`) of the track whose handler is `vide`.
//! A file without a `moov` box was not finalised and has none.
//!
//! Only box headers are read up to `moov`, then `moov` itself (its tables are a few bytes a
//! frame), so checking a long recording costs little.

use std::io::{self, Read, Seek, SeekFrom};

/// Largest `moov` box read (its sample tables take about 12 bytes a frame: hours of video).
const MAX_MOOV: u64 = 256 << 20;

/// The number of video frames `file` holds, `Ok(None)` when it has no `moov` box (the muxer did
/// not finish) or no video track.
pub fn video_frames(file: &mut (impl Read + Seek)) -> io::Result<Option<u64>> {
    let end = file.seek(SeekFrom::End(0))?;
    let mut at = 0;
    while at + 8 <= end {
        file.seek(SeekFrom::Start(at))?;
        let (kind, header, size) = read_header(file, end - at)?;
        if kind == *b"moov" {
            let body = size - header;
            if body > MAX_MOOV {
                return Err(invalid("moov box too large"));
            }
            let mut moov = vec![0; body as usize];
            file.read_exact(&mut moov)?;
            return Ok(video_frames_in_moov(&moov));
        }
        at += size;
    }
    Ok(None)
}

/// Reads a box header at the file's position: its type, the header's length and the box's whole
/// length (`left`: bytes from the box's start to the end of the file, for size 0).
fn read_header(file: &mut impl Read, left: u64) -> io::Result<([u8; 4], u64, u64)> {
    let mut h = [0; 8];
    file.read_exact(&mut h)?;
    let kind = [h[4], h[5], h[6], h[7]];
    let (header, size) = match u32::from_be_bytes([h[0], h[1], h[2], h[3]]) {
        0 => (8, left),
        1 => {
            let mut large = [0; 8];
            file.read_exact(&mut large)?;
            (16, u64::from_be_bytes(large))
        }
        n => (8, u64::from(n)),
    };
    if size < header || size > left {
        return Err(invalid("box size out of the file"));
    }
    Ok((kind, header, size))
}

/// The boxes directly inside `data`, as (type, body).
fn boxes(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.len() < 8 {
            return None;
        }
        let kind = [rest[4], rest[5], rest[6], rest[7]];
        let (header, size) = match u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) {
            0 => (8, rest.len()),
            1 if rest.len() >= 16 => (16, usize::try_from(be64(&rest[8..16])).ok()?),
            1 => return None,
            n => (8, n as usize),
        };
        if size < header || size > rest.len() {
            return None;
        }
        let body = &rest[header..size];
        rest = &rest[size..];
        Some((kind, body))
    })
}

/// The body of the first box of type `kind` inside `data`.
fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(data).find(|(k, _)| k == kind).map(|(_, b)| b)
}

/// Frames of the first video track of a `moov` body.
fn video_frames_in_moov(moov: &[u8]) -> Option<u64> {
    boxes(moov)
        .filter(|(k, _)| k == b"trak")
        .find_map(|(_, trak)| {
            let mdia = child(trak, b"mdia")?;
            // hdlr: version and flags (4), pre_defined (4), handler type (4).
            let hdlr = child(mdia, b"hdlr")?;
            if hdlr.get(8..12)? != b"vide" {
                return None;
            }
            let stbl = child(child(mdia, b"minf")?, b"stbl")?;
            // stsz: version and flags (4), sample size (4), sample count (4);
            // stz2: version and flags (4), reserved and field size (4), sample count (4).
            let sizes = child(stbl, b"stsz").or_else(|| child(stbl, b"stz2"))?;
            Some(u64::from(be32(sizes.get(8..12)?)))
        })
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not an MP4 file: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    fn trak(handler: &[u8; 4], samples: u32) -> Vec<u8> {
        let hdlr = mp4_box(b"hdlr", &[&[0; 8][..], handler, &[0; 12]].concat());
        let stsz = mp4_box(b"stsz", &[&[0; 8][..], &samples.to_be_bytes()].concat());
        let stbl = mp4_box(b"stbl", &[mp4_box(b"stsd", &[0; 8]), stsz].concat());
        let minf = mp4_box(b"minf", &stbl);
        let mdia = mp4_box(b"mdia", &[mp4_box(b"mdhd", &[0; 24]), hdlr, minf].concat());
        mp4_box(b"trak", &[mp4_box(b"tkhd", &[0; 84]), mdia].concat())
    }

    fn file(parts: &[Vec<u8>]) -> Cursor<Vec<u8>> {
        Cursor::new(parts.concat())
    }

    #[test]
    fn counts_the_video_track_after_the_audio_one() {
        let moov = mp4_box(b"moov", &[trak(b"soun", 300), trak(b"vide", 100)].concat());
        let mdat = mp4_box(b"mdat", &[7; 1000]);
        let mut f = file(&[mp4_box(b"ftyp", b"isom"), mdat, moov]);
        assert_eq!(video_frames(&mut f).unwrap(), Some(100));
    }

    #[test]
    fn large_mdat_and_moov_first() {
        let mut mdat = 1u32.to_be_bytes().to_vec();
        mdat.extend_from_slice(b"mdat");
        mdat.extend_from_slice(&(16u64 + 10).to_be_bytes());
        mdat.extend_from_slice(&[0; 10]);
        let moov = mp4_box(b"moov", &trak(b"vide", 7));
        let mut f = file(&[moov.clone(), mdat.clone()]);
        assert_eq!(video_frames(&mut f).unwrap(), Some(7));
        let mut f = file(&[mdat, moov]);
        assert_eq!(video_frames(&mut f).unwrap(), Some(7));
    }

    #[test]
    fn unfinished_or_broken_files_have_no_count() {
        // mp4mux writes an mdat of size 0 (to the end) until it finalises.
        let mut f = file(&[
            mp4_box(b"ftyp", b"isom"),
            vec![0, 0, 0, 0, b'm', b'd', b'a', b't', 1],
        ]);
        assert_eq!(video_frames(&mut f).unwrap(), None);
        let mut f = file(&[]);
        assert_eq!(video_frames(&mut f).unwrap(), None);
        let mut f = file(&[b"precious\n".to_vec()]);
        assert!(video_frames(&mut f).is_err());
        let mut f = file(&[mp4_box(b"moov", &trak(b"soun", 3))]);
        assert_eq!(video_frames(&mut f).unwrap(), None);
    }
}
