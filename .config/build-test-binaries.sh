#!/bin/sh
# nextest setup script: builds the binaries the end-to-end tests start
# (hub, agent, console, the zfs fixture) once per run, and tells the tests
# where they are, so no test process runs `cargo build` itself (each would
# otherwise wait on cargo's build lock, for minutes while the demo test
# builds its release binaries). See `bin_dir` in tests/src/lib.rs.
set -eu
cd "$(dirname "$0")/.."
cargo build --quiet --bins -p sonde-hub -p sonde-agent -p sonde-console -p sonde-pack-zfs -p sonde-mcp-bridge \
    --features sonde-pack-zfs/fixture
target="${CARGO_TARGET_DIR:-$(pwd)/target}"
echo "SONDE_TEST_BINARIES_BUILT=$target/debug" >> "$NEXTEST_ENV"
