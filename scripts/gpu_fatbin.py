#!/usr/bin/env python3
"""Lists, and strips down to one GPU architecture, the CUDA device code of a shared library.

  gpu_fatbin.py list LIB
  gpu_fatbin.py strip LIB OUT --keep-arch 90 [--drop-units REGEX]

Used by scripts/gpu-pack.sh to make ONNX Runtime's CUDA execution provider small enough to travel
to a GPU machine: libonnxruntime_providers_cuda.so (1.31.1, CUDA 13) holds 218 MB of device code
for sm_75, sm_80, sm_86, sm_89, sm_90a and sm_120a, and an H200 or H100 (compute capability 9.0)
can only run the sm_90a code (a cubin runs only on its own major version, and there is no PTX).

The device code sits in the ELF section .nv_fatbin as a series of fat-binary containers, each one
registered with the CUDA runtime by a wrapper in .nvFatBinSegment that points at its start. A
container is a 16-byte header (magic 0xBA55ED50, version 1, header size 16, size of what follows)
and entries, each an entry header (kind, header size, payload size, arch, ...) and a payload (here
a zstd-compressed cubin). `strip` rewrites every container in place, at the same address:

  - any other container with entries for the kept arch keeps those entries, byte for byte, and
    nothing else;
  - a container with no entry for the kept arch is left as it is (it cannot run on that GPU
    anyway; the original library already has such containers);
  - a container whose kept-arch kernels all come from CUDA source files matching --drop-units
    (gpu-pack.sh names those of the contrib operators that a pose model cannot have: attention
    (flash_fwd_*, fmha_*), mixture of experts (moe_*, fused_moe_*) and generation
    (generation_cuda_impl)) becomes a copy of the smallest container of the original that has no
    entry for the kept arch: the state those containers are in, "no code for this GPU";

and fills the bytes it freed with zeros, so that the file keeps its size and layout (every other
byte, the host code included, is unchanged, which is checked) and compresses well. The source
files' names are read from the cubins' symbols, decompressed with the `zstd` command (Debian
package zstd).

Standard library only.
"""
import argparse
import collections
import re
import struct
import os
import subprocess
import sys
import tempfile

FATBIN_MAGIC = 0xBA55ED50
WRAPPER_MAGIC = 0x466243B1
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
KIND = {1: "ptx", 2: "elf", 16: "elf"}


def die(msg):
    sys.exit(f"gpu_fatbin.py: error: {msg}")


def sections(data):
    """name -> (file offset, size, address) of an ELF64 little-endian file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    raw = []
    for i in range(shnum):
        name, _typ, _flags, addr, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        raw.append((name, off, size, addr))
    stroff = raw[shstrndx][1]
    out = {}
    for name, off, size, addr in raw:
        end = data.index(b"\0", stroff + name)
        out[data[stroff + name : end].decode()] = (off, size, addr)
    return out


def entries_of(data, pos, end):
    """Entries of the container whose entries span data[pos:end]."""
    out = []
    while pos + 64 <= end:
        kind, _unk, hsize, psize = struct.unpack_from("<HHIQ", data, pos)
        if hsize < 64 or pos + hsize + psize > end:
            raise ValueError(f"bad entry header at offset {pos:#x}")
        (csize,) = struct.unpack_from("<I", data, pos + 16)  # payload without its padding
        (arch,) = struct.unpack_from("<I", data, pos + 28)
        out.append({"off": pos, "hsize": hsize, "psize": psize, "csize": csize, "kind": kind, "arch": arch})
        pos += hsize + psize
    if pos != end:
        raise ValueError(f"entries do not end at the container's end ({pos:#x} != {end:#x})")
    return out


def containers(data):
    """(file offset, total size, entries) of every container in .nv_fatbin, in order, checked
    against the wrappers of .nvFatBinSegment (each must point at one of them)."""
    secs = sections(data)
    if ".nv_fatbin" not in secs:
        raise ValueError("no .nv_fatbin section (no CUDA device code)")
    off, size, addr = secs[".nv_fatbin"]
    pos, end, out = off, off + size, []
    while pos + 16 <= end:
        magic, version, hsize, fsize = struct.unpack_from("<IHHQ", data, pos)
        if magic != FATBIN_MAGIC:
            if any(data[pos : pos + 8]):
                raise ValueError(f"unexpected bytes at offset {pos:#x} in .nv_fatbin")
            pos += 8  # alignment padding between containers
            continue
        if version != 1 or hsize != 16 or pos + hsize + fsize > end:
            raise ValueError(f"bad container header at offset {pos:#x}")
        out.append((pos, hsize + fsize, entries_of(data, pos + hsize, pos + hsize + fsize)))
        pos += hsize + fsize
    # Every wrapper (relocated pointer in .rela.dyn, or the stored value) points at a container.
    starts = {addr + (p - off) for p, _, _ in out}
    seg = secs.get(".nvFatBinSegment")
    if seg:
        soff, ssize, saddr = seg
        targets = {}
        for i in range(ssize // 24):
            magic, _ver, ptr = struct.unpack_from("<IIQ", data, soff + 24 * i)
            if magic == WRAPPER_MAGIC:
                targets[saddr + 24 * i + 8] = ptr
        if ".rela.dyn" in secs:
            roff, rsize, _ = secs[".rela.dyn"]
            for j in range(rsize // 24):
                r_off, info, addend = struct.unpack_from("<QQq", data, roff + 24 * j)
                if r_off in targets and (info & 0xFFFFFFFF) == 8:  # R_X86_64_RELATIVE
                    targets[r_off] = addend
        bad = [t for t in targets.values() if t not in starts]
        if bad or len(targets) != len(out):
            raise ValueError(
                f"{len(targets)} wrappers in .nvFatBinSegment for {len(out)} containers, "
                f"{len(bad)} pointing elsewhere: this library's layout is not understood"
            )
    return out


def payload(data, e):
    return data[e["off"] + e["hsize"] : e["off"] + e["hsize"] + e["psize"]]


UNIT = re.compile(r"_INTERNAL_[0-9a-f]+_[0-9]+_(\w+?)_cu_")


def compilation_units(blobs):
    """For each cubin (zstd-compressed or not), the names of the CUDA source files its kernels come
    from, as nvcc writes them into internal symbols (`_INTERNAL_<hash>_<len>_<file>_cu_...`)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, b in enumerate(blobs):
            path = os.path.join(tmp, f"{i}.cubin" + (".zst" if b[:4] == ZSTD_MAGIC else ""))
            with open(path, "wb") as f:
                f.write(b)
            paths.append(path)
        packed = [p for p in paths if p.endswith(".zst")]
        if packed:  # one zstd process for all of them
            try:
                subprocess.run(["zstd", "-d", "-q", "-f", *packed], capture_output=True, check=True)
            except FileNotFoundError:
                die("the zstd command is needed to read the kernels' names (Debian package zstd)")
            except subprocess.CalledProcessError as e:
                die(f"zstd could not decompress a cubin: {e.stderr.decode(errors='replace').strip()}")
        out = []
        for p in paths:
            with open(p.removesuffix(".zst"), "rb") as f:
                blob = f.read()
            try:
                secs = sections(blob)
            except ValueError:
                out.append(set())
                continue
            off, size, _ = secs.get(".strtab", (0, 0, 0))
            out.append({m.group(1) for m in UNIT.finditer(blob[off : off + size].decode("latin-1"))})
        return out


def arch_name(e):
    return f"{KIND.get(e['kind'], hex(e['kind']))} sm_{e['arch']}"


def summary(data):
    per = collections.Counter()
    size = collections.Counter()
    cs = containers(data)
    for _, _, ents in cs:
        for e in ents:
            per[arch_name(e)] += 1
            size[arch_name(e)] += e["hsize"] + e["psize"]
    return len(cs), per, size


def cmd_list(a):
    data = open(a.lib, "rb").read()
    n, per, size = summary(data)
    print(f"{a.lib}: {n} containers")
    for k in sorted(per, key=lambda k: (int(k.split("sm_")[1]), k)):
        print(f"  {k:14s} {per[k]:5d} entries {size[k] / 1e6:8.1f} MB")


def cmd_strip(a):
    data = open(a.lib, "rb").read()
    try:
        cs = containers(data)
    except ValueError as e:
        die(f"{a.lib}: {e}")
    drop = re.compile(a.drop_units) if a.drop_units else None
    keep = a.keep_arch
    out = bytearray(data)
    # The smallest container with no code for the kept arch, as the stand-in for dropped ones.
    foreign = [(size, pos) for pos, size, ents in cs if ents and all(e["arch"] != keep for e in ents)]
    stand_in = None
    if foreign:
        size, pos = min(foreign)
        stand_in = bytes(data[pos : pos + size])
    dropped = set()
    if drop and stand_in:
        # The source files of each container's kept-arch code.
        mine = [(pos, size, [e for e in ents if e["arch"] == keep]) for pos, size, ents in cs]
        mine = [m for m in mine if m[2]]
        blobs = [payload(data, e)[: e["csize"] or None] for _, _, kept in mine for e in kept]
        units = iter(compilation_units(blobs))
        for pos, size, kept in mine:
            names = set().union(*(next(units) for _ in kept))
            if names and all(drop.search(n) for n in names) and len(stand_in) <= size:
                dropped.add(pos)
    stats = collections.Counter()
    expected = []  # payloads of the kept entries, which must come out unchanged
    for pos, size, ents in cs:
        kept = [e for e in ents if e["arch"] == keep]
        if not kept:
            stats["containers without sm_%d code, left as they are" % keep] += 1
            continue
        if pos in dropped:
            new = stand_in
            stats["containers dropped (their sm_%d code is from source files matching --drop-units)" % keep] += 1
        else:
            body = b"".join(data[e["off"] : e["off"] + e["hsize"] + e["psize"]] for e in kept)
            new = struct.pack("<IHHQ", FATBIN_MAGIC, 1, 16, len(body)) + body
            expected.extend(payload(data, e) for e in kept)
            stats["containers reduced to their sm_%d entries" % keep] += 1
        out[pos : pos + size] = new + bytes(size - len(new))
    out = bytes(out)
    # Checks: only .nv_fatbin changed; the result parses; every kept entry is byte-identical.
    off, fsize, _ = sections(data)[".nv_fatbin"]
    if out[:off] != data[:off] or out[off + fsize :] != data[off + fsize :]:
        die("internal error: bytes outside .nv_fatbin changed")
    n2, per2, size2 = summary(out)
    if n2 != len(cs):
        die(f"internal error: {n2} containers after stripping, {len(cs)} before")
    kept_after = sorted(payload(out, e) for _, _, ents in containers(out) for e in ents if e["arch"] == keep)
    if kept_after != sorted(expected):
        die("internal error: the kept entries changed")
    with open(a.out, "wb") as f:
        f.write(out)
    for k, v in sorted(stats.items()):
        print(f"  {v:4d} {k}")
    for k in sorted(per2, key=lambda k: (int(k.split("sm_")[1]), k)):
        print(f"  left: {k:14s} {per2[k]:5d} entries {size2[k] / 1e6:8.1f} MB")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("list", help="containers and entries per architecture")
    s.add_argument("lib")
    s.set_defaults(fn=cmd_list)
    s = sub.add_parser("strip", help="keep one architecture's device code")
    s.add_argument("lib")
    s.add_argument("out")
    s.add_argument("--keep-arch", type=int, required=True, help="e.g. 90 for sm_90/sm_90a")
    s.add_argument("--drop-units", default="", help="regex: drop containers whose kept-arch code comes only from CUDA source files that match")
    s.set_defaults(fn=cmd_strip)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
