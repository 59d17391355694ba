#!/usr/bin/env bash
# Makes the Ray runner's virtualenv (git-ignored, default .deps-ray/venv) and prints its path:
#   1. python3-venv (Debian) when missing; Debian 12's /usr/bin/python3 (3.11) is used, as the
#      wheels' hashes in scale/ray/requirements.txt are those for CPython 3.11 on x86-64 Linux
#   2. Ray and its dependencies from scale/ray/requirements.txt, every wheel sha256-checked
#      (pip install --require-hashes --only-binary=:all:)
#   3. the yoloanonymize-ray package from scale/ray, editable (pip install -e, no dependencies:
#      they are all in step 2), so the tests and the tasks always run this tree's code
# Does nothing when the virtualenv already has exactly this requirements file installed.
#
# Usage: scripts/setup-ray.sh [--quiet] [--cluster]
#   --quiet     print only the virtualenv's path
#   --cluster   ray[default] instead of Ray core (scale/ray/requirements-cluster.txt: the
#               dashboard and job server, for `ray start --head` and `ray job submit`), in
#               .deps-ray/venv-cluster; the tests need only the core
# Environment: YA_RAY_VENV (default: .deps-ray/venv, or .deps-ray/venv-cluster, in the
#              repository), PYTHON (default /usr/bin/python3, else python3)
# Then: .deps-ray/venv/bin/yoloanonymize-ray --help
set -euo pipefail

YA_LOG_TAG=setup-ray
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

quiet=0 cluster=0
for arg in "$@"; do
    case "$arg" in
    --quiet) quiet=1 ;;
    --cluster) cluster=1 ;;
    -h | --help)
        awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) ya_die "unknown argument: $arg (try --help)" ;;
    esac
done
log() { ((quiet)) || ya_log "$@" >&2; }
pip_quiet=()
((quiet)) && pip_quiet=(--quiet)

if ((cluster)); then
    venv=${YA_RAY_VENV:-$YA_REPO_ROOT/.deps-ray/venv-cluster}
    req=$YA_REPO_ROOT/scale/ray/requirements-cluster.txt
else
    venv=${YA_RAY_VENV:-$YA_REPO_ROOT/.deps-ray/venv}
    req=$YA_REPO_ROOT/scale/ray/requirements.txt
fi
pkg=$YA_REPO_ROOT/scale/ray
if [[ -n "${PYTHON:-}" ]]; then
    python=$PYTHON
elif [[ -x /usr/bin/python3 ]]; then
    python=/usr/bin/python3
else
    python=python3
fi
stamp=$venv/.yoloanonymize-requirements.sha256
want=$(cat "$req" "$pkg/pyproject.toml" | sha256sum | cut -d' ' -f1)

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$venv/bin/python" -c 'import ray, yoloanonymize_ray' 2>/dev/null; then
    log "Ray virtualenv up to date: $venv (ray $("$venv/bin/python" -c 'import ray; print(ray.__version__)'))"
    echo "$venv"
    exit 0
fi

pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])') ||
    ya_die "cannot run $python (set PYTHON to a CPython 3.11)"
[[ "$pyver" == 3.11 ]] ||
    ya_die "$python is Python $pyver; the hashes in $req are for CPython 3.11 wheels. Set PYTHON to a python3.11, or regenerate the file (see its header)."

if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    log "Installing python3-venv"
    if [[ $(id -u) == 0 ]]; then as_root=(); else as_root=(sudo -n); fi
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update >&2 || ya_die "apt-get update failed; install python3-venv yourself"
    "${as_root[@]}" apt-get install -y --no-install-recommends python3-venv >&2 ||
        ya_die "apt-get install python3-venv failed; install it yourself"
fi

log "Making $venv with $python ($pyver)"
rm -f "$stamp"
"$python" -m venv --clear "$venv" >&2 || ya_die "could not create the virtualenv $venv"
log "Installing Ray from $req (sha256-checked wheels)"
"$venv/bin/pip" install --disable-pip-version-check --no-input --require-hashes --only-binary=:all: \
    "${pip_quiet[@]}" -r "$req" >&2 ||
    ya_die "pip install --require-hashes -r $req failed (see above)"
log "Installing yoloanonymize-ray from $pkg (editable)"
"$venv/bin/pip" install --disable-pip-version-check --no-input --no-deps --no-build-isolation \
    "${pip_quiet[@]}" -e "$pkg" >&2 ||
    ya_die "pip install -e $pkg failed (see above)"
"$venv/bin/python" -c 'import ray, yoloanonymize_ray' || ya_die "ray or yoloanonymize_ray does not import in $venv"
echo "$want" >"$stamp"
log "Ray $("$venv/bin/python" -c 'import ray; print(ray.__version__)') ready in $venv"
echo "$venv"
