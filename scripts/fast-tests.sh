#!/bin/sh
# The fast layer: the test suites tagged `.fast` (Tests/Support/Tags.swift), which need neither
# root, nor the built clmnt binary, nor real users, processes, servers or the network. They run
# in seconds once the tests are built (`swift build --build-tests`), as any user:
#
#     scripts/fast-tests.sh            # the fast suites
#     scripts/fast-tests.sh --list     # their names, nothing run
#
# swift-testing's --filter takes regular expressions over test names, not tags, so the suites are
# found by their tag in the sources: each `@Suite(... .tags(.fast) ...)` and the type it declares,
# as `<test target>.<type>`. A suite tagged there is run here; nothing else to keep in step.
set -eu
cd "$(dirname "$0")/.."

suites=$(for dir in Tests/*/; do
    module=$(basename "$dir")
    [ "$module" = Support ] && continue
    for file in "$dir"*.swift; do
        awk -v module="$module" '
            /@Suite\(.*\.tags\([^)]*\.fast[,)]/ { pending = 1 }
            pending && match($0, /(struct|class|enum|actor)[ \t]+[A-Za-z_][A-Za-z0-9_]*/) {
                name = substr($0, RSTART, RLENGTH)
                sub(/^(struct|class|enum|actor)[ \t]+/, "", name)
                print module "." name
                pending = 0
            }' "$file"
    done
done | sort -u)

if [ -z "$suites" ]; then
    echo "fast-tests: no suite is tagged .fast under Tests/" >&2
    exit 1
fi
if [ "${1:-}" = "--list" ]; then
    printf '%s\n' "$suites"
    exit 0
fi

# `Module.Type/` for each: the slash ends the name, so no suite whose name merely starts alike joins in.
filter="($(printf '%s\n' "$suites" | sed 's/\./\\./g' | paste -sd '|' -))/"

# The built test binary itself when it is there (CLMNT_TEST_BIN_PATH: another build's bin dir):
# no SwiftPM in between, whose lock and caches other users may not write to. Else `swift test`.
tests="${CLMNT_TEST_BIN_PATH:-.build/debug}/clmntPackageTests.xctest"
if [ -x "$tests" ]; then
    exec "$tests" --testing-library swift-testing --filter "$filter" "$@"
fi
exec swift test --skip-build --filter "$filter" "$@"
