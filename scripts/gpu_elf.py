#!/usr/bin/env python3
"""ELF helpers for scripts/gpu-pack.sh and scripts/gpu-check.sh (standard library only).

  gpu_elf.py closure --root DIR [--lib-dir D ...] FILE...
      The shared libraries FILE... need, recursively (DT_NEEDED, RUNPATH with $ORIGIN), looked up
      under DIR's library folders (an unpacked set of Debian packages) and the --lib-dir folders.
      Prints one line per library: `found SONAME PATH`, or `missing SONAME` for one found nowhere
      there, or `host SONAME` for the C library's own (libc, libm, libdl, libpthread, librt,
      ld-linux, ...), which a host always has and which must not be packed.
  gpu_elf.py requires FILE...
      The newest symbol versions FILE... ask of the C library and of the C++ runtime:
      `GLIBC_2.NN` and `GLIBCXX_3.4.NN` (and `CXXABI_1.3.NN`, `GCC_N`), one per line.
  gpu_elf.py provides FILE
      The versions a library defines (for a host's libc.so.6 or libstdc++.so.6).
"""
import argparse
import os
import re
import struct
import sys

# Always taken from the host: the C library and its companions (packing them would fight the
# host's dynamic loader).
HOST_LIBS = re.compile(
    r"^(libc|libm|libdl|libpthread|librt|libresolv|libutil|libanl|libnsl|libmvec|ld-linux-x86-64|"
    r"libBrokenLocale|libcrypt)\.so(\.[0-9]+)*$"
)
DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH = 1, 14, 15, 29


class Elf:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        if d[:4] != b"\x7fELF" or d[4] != 2 or d[5] != 1:
            raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
        (shoff,) = struct.unpack_from("<Q", d, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3A)
        self.secs = []
        for i in range(shnum):
            name, typ, _fl, addr, off, size, link, _info, _al, entsize = struct.unpack_from(
                "<IIQQQQIIQQ", d, shoff + i * shentsize
            )
            self.secs.append(dict(name=name, type=typ, off=off, size=size, link=link))
        stroff = self.secs[shstrndx]["off"] if shnum else 0
        for s in self.secs:
            s["name"] = self._str(stroff, s["name"])

    def _str(self, base, off):
        end = self.data.index(b"\0", base + off)
        return self.data[base + off : end].decode(errors="replace")

    def section(self, name):
        return next((s for s in self.secs if s["name"] == name), None)

    def dynamic(self):
        """(needed list, soname, runpath list)."""
        dyn = self.section(".dynamic")
        if dyn is None:
            return [], None, []
        strtab = self.secs[dyn["link"]]["off"]
        needed, soname, runpath = [], None, []
        for i in range(dyn["size"] // 16):
            tag, val = struct.unpack_from("<qQ", self.data, dyn["off"] + 16 * i)
            if tag == 0:
                break
            if tag == DT_NEEDED:
                needed.append(self._str(strtab, val))
            elif tag == DT_SONAME:
                soname = self._str(strtab, val)
            elif tag in (DT_RPATH, DT_RUNPATH):
                runpath += self._str(strtab, val).split(":")
        return needed, soname, runpath

    def version_needs(self):
        """{library: [version names]} from .gnu.version_r."""
        sec = self.section(".gnu.version_r")
        out = {}
        if sec is None:
            return out
        strtab = self.secs[sec["link"]]["off"]
        off = sec["off"]
        while True:
            _ver, cnt, file_, aux, nxt = struct.unpack_from("<HHIII", self.data, off)
            lib = self._str(strtab, file_)
            a = off + aux
            for _ in range(cnt):
                _hash, _flags, _other, name, anext = struct.unpack_from("<IHHII", self.data, a)
                out.setdefault(lib, []).append(self._str(strtab, name))
                if anext == 0:
                    break
                a += anext
            if nxt == 0:
                break
            off += nxt
        return out

    def version_defs(self):
        sec = self.section(".gnu.version_d")
        out = []
        if sec is None:
            return out
        strtab = self.secs[sec["link"]]["off"]
        off = sec["off"]
        while True:
            _ver, _flags, _ndx, cnt, _hash, aux, nxt = struct.unpack_from("<HHHHIII", self.data, off)
            if cnt:
                (name, _n) = struct.unpack_from("<II", self.data, off + aux)
                out.append(self._str(strtab, name))
            if nxt == 0:
                break
            off += nxt
        return out


def lib_dirs(root):
    return [
        os.path.join(root, p)
        for p in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib", "lib64", "usr/lib64")
    ]


def closure(root, extra_dirs, files):
    dirs = extra_dirs + (lib_dirs(root) if root else [])
    seen, result, queue = set(), [], list(files)
    while queue:
        path = queue.pop(0)
        needed, _, runpath = Elf(path).dynamic()
        origin = os.path.dirname(os.path.realpath(path))
        here = [r.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for r in runpath if r]
        for so in needed:
            if so in seen:
                continue
            seen.add(so)
            if HOST_LIBS.match(so):
                result.append(("host", so, None))
                continue
            hit = next((os.path.join(d, so) for d in here + dirs if os.path.exists(os.path.join(d, so))), None)
            if hit is None:
                result.append(("missing", so, None))
            else:
                result.append(("found", so, os.path.realpath(hit)))
                queue.append(hit)
    return result


def vkey(v):
    return tuple(int(x) for x in re.findall(r"[0-9]+", v))


def requires(files):
    newest = {}
    for f in files:
        for _lib, names in Elf(f).version_needs().items():
            for n in names:
                m = re.match(r"^(GLIBC|GLIBCXX|CXXABI|GCC)_([0-9.]+)$", n)
                if m and (m.group(1) not in newest or vkey(n) > vkey(newest[m.group(1)])):
                    newest[m.group(1)] = n
    return [newest[k] for k in sorted(newest)]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("closure")
    c.add_argument("--root", default="")
    c.add_argument("--lib-dir", action="append", default=[])
    c.add_argument("files", nargs="+")
    r = sub.add_parser("requires")
    r.add_argument("files", nargs="+")
    v = sub.add_parser("provides")
    v.add_argument("file")
    a = p.parse_args()
    try:
        if a.cmd == "closure":
            for kind, so, path in closure(a.root, a.lib_dir, a.files):
                print(kind, so, path or "")
        elif a.cmd == "requires":
            print("\n".join(requires(a.files)))
        else:
            print("\n".join(Elf(a.file).version_defs()))
    except (OSError, ValueError) as e:
        sys.exit(f"gpu_elf.py: error: {e}")


if __name__ == "__main__":
    main()
