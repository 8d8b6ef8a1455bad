#!/usr/bin/env bash
# Builds the release binary and lays out everything an installed clmnt consists of under
# DESTDIR/PREFIX: bin/clmnt, share/man/man1/*.1.gz (one page per command, from
# swift-argument-parser's generate-manual plugin), bash/zsh/fish completions.
#
#   bash scripts/build-release.sh DESTDIR PREFIX [zsh-completion-dir]
#
# The binary links the Swift runtime and Foundation statically (--static-swift-stdlib), so it
# needs only Debian's shared libraries (libarchive, libzstd, libdeflate, SQLite, libcrypto,
# glibc) and runs on a host without the Swift toolchain. Used by package-deb.sh and install.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
destdir=${1:?usage: build-release.sh DESTDIR PREFIX [zsh-completion-dir]}
prefix=${2:?usage: build-release.sh DESTDIR PREFIX [zsh-completion-dir]}
zsh_dir=${3:-$prefix/share/zsh/site-functions}
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"

# Man pages: the plugin builds the package and reads `clmnt --experimental-dump-help`. It builds
# the debug configuration: the pages are the same, and CI (scripts/test.sh) has built it already,
# so this costs seconds, not a second release build. Works offline: the plugin is part of the
# swift-argument-parser checkout the build already uses (pinned in Package.resolved). It asks for
# no permission beyond its own work directory, so it runs without --disable-sandbox.
manual_date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}" +%Y-%m-%d)
manual_dir=.build/plugins/GenerateManual/outputs/clmnt
rm -rf "$manual_dir"
swift package plugin generate-manual --configuration debug --multi-page \
  --date "$manual_date" --authors 'clmnt maintainers' >&2
ls "$manual_dir"/*.1 >/dev/null

swift build -c release --static-swift-stdlib --product clmnt >&2
binary=$(swift build -c release --static-swift-stdlib --show-bin-path)/clmnt

install -d "$destdir$prefix/bin" "$destdir$prefix/share/man/man1" \
  "$destdir$prefix/share/bash-completion/completions" "$destdir$zsh_dir" \
  "$destdir$prefix/share/fish/vendor_completions.d"
install -m 0755 "$binary" "$destdir$prefix/bin/clmnt"
# Symbols are for debugging the build tree; the Swift runtime's metadata sections stay.
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$destdir$prefix/bin/clmnt"
# The plugin names pages clmnt.fleet.backup.1 with `.Nm "clmnt fleet backup"`, which man-db's
# whatis parser rejects; pages are installed git-style instead (`man clmnt-fleet-backup`), the
# NAME being clmnt-fleet-backup and the synopsis still showing `clmnt fleet backup`. The plugin
# also quotes `.Nd "..."`, and man-db's lexgrog copies those quotes into whatis/apropos: the
# description is unquoted (.Nd takes the rest of its line; a quote inside stays \(dq). A blank line
# of a discussion (between `clmnt --help`'s sections) is a paragraph break, not an empty input line.
for page in "$manual_dir"/*.1; do
  dotted=$(basename "$page" .1)
  name=${dotted//./-}
  sed -e "s/^\.Dt [^ ]* /.Dt ${name^^} /" \
      -e "0,/^\.Nm .*/s//.Nm $name/" \
      -e "s/^\.Nm\$/.Nm \"${dotted//./ }\"/" \
      -e '/^\.Xr /{s/\./-/g;s/^-/./}' \
      -e '/^\.Nd "/{s/^\.Nd "/.Nd /;s/"$//}' \
      -e 's/^$/.Pp/' "$page" \
    | gzip -9n >"$destdir$prefix/share/man/man1/$name.1.gz"
  chmod 0644 "$destdir$prefix/share/man/man1/$name.1.gz"
done
# A completion is sourced, never run: no #! line.
"$binary" --generate-completion-script bash | sed '1{/^#!/d}' >"$destdir$prefix/share/bash-completion/completions/clmnt"
"$binary" --generate-completion-script zsh >"$destdir$zsh_dir/_clmnt"
"$binary" --generate-completion-script fish >"$destdir$prefix/share/fish/vendor_completions.d/clmnt.fish"
chmod 0644 "$destdir$prefix/share/bash-completion/completions/clmnt" "$destdir$zsh_dir/_clmnt" \
  "$destdir$prefix/share/fish/vendor_completions.d/clmnt.fish"
