#!/usr/bin/env bash
# Builds clmnt_<version>_amd64.deb with dpkg-deb into .build/deb/ and prints its path last.
#
#   bash scripts/package-deb.sh            # then: apt-get install ./.build/deb/clmnt_*_amd64.deb
#
# Depends: is derived from the binary's real NEEDED libraries by dpkg-shlibdeps, plus the
# programs clmnt runs (crontab from cron; useradd, userdel and su are in essential packages).
# msmtp (alert mail) and bash-completion (the completions it installs) are Recommends. Needs dpkg-dev (scripts/install-test-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"

version=$(sed -n 's/.*static let current = "\(.*\)".*/\1/p' Sources/ClmntCore/Version.swift)
[ -n "$version" ] || { echo "package-deb: no version in Sources/ClmntCore/Version.swift" >&2; exit 1; }
arch=$(dpkg --print-architecture)
out=.build/deb
stage=$out/clmnt_${version}_$arch
deb=$out/clmnt_${version}_$arch.deb
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

rm -rf "$stage" "$deb"
mkdir -p "$stage/DEBIAN"
# Debian's zsh reads vendor completions from /usr/share/zsh/vendor-completions.
bash scripts/build-release.sh "$stage" /usr /usr/share/zsh/vendor-completions

doc=$stage/usr/share/doc/clmnt
install -d "$doc"
install -m 0644 packaging/debian/copyright "$doc/copyright"
install -d "$stage/usr/share/lintian/overrides"
install -m 0644 packaging/debian/lintian-overrides "$stage/usr/share/lintian/overrides/clmnt"
# A native package: the changelog is changelog.gz.
gzip -9n <packaging/debian/changelog >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

# Depends from the ELF's NEEDED entries, as Debian's own packages do it.
shlibs_dir=$(mktemp -d)
trap 'rm -rf "$shlibs_dir"' EXIT
mkdir -p "$shlibs_dir/debian"
printf 'Source: clmnt\n\nPackage: clmnt\nArchitecture: any\n' >"$shlibs_dir/debian/control"
binary=$(realpath "$stage/usr/bin/clmnt")
shlibs=$(cd "$shlibs_dir" && dpkg-shlibdeps -O "$binary" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "package-deb: dpkg-shlibdeps found no libraries for $binary" >&2; exit 1; }

installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@DEPENDS@/$shlibs, cron/" \
    -e "s/@INSTALLED_SIZE@/$installed_size/" packaging/debian/control.in >"$stage/DEBIAN/control"
(cd "$stage" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"
find "$stage" -type d -exec chmod 0755 {} +

dpkg-deb --root-owner-group -Zxz -z1 --build "$stage" "$deb" >&2
echo "$deb"
