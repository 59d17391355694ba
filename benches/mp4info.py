#!/usr/bin/env python3
"""Small facts about an MP4 file, with the standard library only.

  mp4info.py frames FILE   number of samples (frames) of the first video track (from its stsz box)
  mp4info.py x264 FILE     the x264 settings string that libx264 writes into the stream (SEI), or
                           nothing when the file has none
"""
import struct
import sys


def _boxes(b, off, end):
    while off + 8 <= end:
        size, typ = struct.unpack(">I4s", b[off:off + 8])
        hdr = 8
        if size == 1:
            size = struct.unpack(">Q", b[off + 8:off + 16])[0]
            hdr = 16
        elif size == 0:
            size = end - off
        if size < hdr:
            return
        yield typ.decode("latin1"), off + hdr, off + size
        off += size


def _find(b, off, end, path):
    for t, s, e in _boxes(b, off, end):
        if t == path[0]:
            if len(path) == 1:
                yield s, e
            else:
                yield from _find(b, s, e, path[1:])


def video_frames(path):
    """Sample count of the first track whose handler is 'vide'; None when there is none."""
    with open(path, "rb") as f:
        b = f.read()
    for ts, te in _find(b, 0, len(b), ["moov", "trak"]):
        handler = None
        for hs, _he in _find(b, ts, te, ["mdia", "hdlr"]):
            handler = b[hs + 8:hs + 12]
        if handler != b"vide":
            continue
        for ss, _se in _find(b, ts, te, ["mdia", "minf", "stbl", "stsz"]):
            return struct.unpack(">I", b[ss + 8:ss + 12])[0]
    return None


def x264_options(path):
    """The 'x264 - core N - ... options: ...' string, or None."""
    with open(path, "rb") as f:
        b = f.read()
    i = b.find(b"x264 - core")
    if i < 0:
        return None
    j = b.find(b"\0", i, i + 4096)
    return b[i:j if j > 0 else i + 4096].decode("latin1", "replace")


def main(argv):
    if len(argv) != 3 or argv[1] not in ("frames", "x264"):
        sys.stderr.write(__doc__)
        return 2
    if argv[1] == "frames":
        n = video_frames(argv[2])
        if n is None:
            sys.stderr.write(f"{argv[2]}: no video track found\n")
            return 1
        print(n)
    else:
        s = x264_options(argv[2])
        if s:
            print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
