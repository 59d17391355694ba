#!/usr/bin/env bash
# Runs the Ray runner's tests (scale/ray/tests, standard-library unittest) in the virtualenv of
# scripts/setup-ray.sh: the pure parts (test_units.py), then a three-node Ray cluster on this
# machine (test_cluster.py: a folder with a corrupt file, a rerun, a node removed while it runs).
# They run yoloanonymize-cli from target/release (built here when missing). Called by
# scripts/test.sh after the cargo tests; it ends with one cargo-style "test result:" line that
# scripts/test.sh adds to its total. Extra arguments go to unittest (e.g. tests.test_units).
set -euo pipefail

YA_LOG_TAG=test-ray
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

venv=$(bash "$YA_REPO_ROOT/scripts/setup-ray.sh" --quiet)
cli=$YA_REPO_ROOT/target/release/yoloanonymize-cli
if [[ ! -x "$cli" ]]; then
    ya_require_rust
    ya_log "Building $cli"
    (cd "$YA_REPO_ROOT" && cargo build --release --bin yoloanonymize-cli)
fi
export YOLOANONYMIZE_CLI=${YOLOANONYMIZE_CLI:-$cli}
# Ray's usage statistics stay off in tests (nothing may leave this machine anyway).
export RAY_USAGE_STATS_ENABLED=0
ya_log "ray $("$venv/bin/python" -c 'import ray; print(ray.__version__)'), YOLOANONYMIZE_CLI=$YOLOANONYMIZE_CLI"
cd "$YA_REPO_ROOT/scale/ray"
started=$(date +%s)
set +e
"$venv/bin/python" - "$@" <<'EOF'
import sys
import unittest

names = sys.argv[1:]
loader = unittest.TestLoader()
if names:
    suite = loader.loadTestsFromNames(names)
else:
    # The pure tests first: they say quickly whether the package itself is broken.
    suite = unittest.TestSuite(
        [loader.loadTestsFromName("tests.test_units"), loader.loadTestsFromName("tests.test_cluster")]
    )
result = unittest.TextTestRunner(verbosity=2, stream=sys.stderr).run(suite)
failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
passed = result.testsRun - failed - len(result.skipped)
status = "ok" if result.wasSuccessful() else "FAILED"
print(f"test result: {status}. {passed} passed; {failed} failed; {len(result.skipped)} ignored; (yoloanonymize-ray, unittest)")
sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
EOF
rc=$?
set -e
ya_log "Ray runner tests took $(($(date +%s) - started)) s"
exit "$rc"
