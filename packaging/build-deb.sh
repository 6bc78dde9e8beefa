#!/usr/bin/env bash
# Builds the liege Debian package with plain dpkg-deb (no debhelper, no fakeroot needed).
#
#   packaging/build-deb.sh [options] BINARY
#
#   BINARY            the liege binary to package (e.g. target/release/liege)
#   --out DIR         where to write liege_<version>_<arch>.deb (default: <repo>/target/deb)
#   --version V       package version (default: the workspace version in Cargo.toml)
#   --compress C      xz (default), gzip or none (passed to dpkg-deb -Z)
#   --no-strip        keep the binary's symbols
#
# Prints the path of the .deb on stdout (and nothing else). Uses dpkg-shlibdeps (dpkg-dev) to
# compute the shared-library dependencies when it is installed; libpython3.11 is always
# a dependency, since the binary embeds Debian's CPython 3.11.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

out="$repo/target/deb"
version=""
compress=xz
strip=yes
binary=""

usage() {
    awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0" >&2
    exit "${1:-2}"
}

while [ $# -gt 0 ]; do
    case "$1" in
    --out) out=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --compress) compress=$2; shift 2 ;;
    --no-strip) strip=no; shift ;;
    -h | --help) usage 0 ;;
    -*) echo "build-deb.sh: unknown option $1" >&2; usage ;;
    *)
        [ -z "$binary" ] || { echo "build-deb.sh: one BINARY only" >&2; usage; }
        binary=$1; shift ;;
    esac
done
[ -n "$binary" ] || { echo "build-deb.sh: missing BINARY" >&2; usage; }
[ -x "$binary" ] || { echo "build-deb.sh: $binary is not an executable file" >&2; exit 1; }
case "$compress" in xz | gzip | none) ;; *) echo "build-deb.sh: --compress xz|gzip|none" >&2; exit 2 ;; esac

if [ -z "$version" ]; then
    # The first `version = "..."` of [workspace.package].
    version=$(awk '/^\[workspace.package\]/ {p=1; next} /^\[/ {p=0}
                   p && $1 == "version" {gsub(/"/, "", $3); print $3; exit}' "$repo/Cargo.toml")
fi
[ -n "$version" ] || { echo "build-deb.sh: cannot find the version in Cargo.toml" >&2; exit 1; }
arch=$(dpkg --print-architecture)

mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d "${TMPDIR:-/tmp}/liege-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root="$stage/liege_${version}_${arch}"
mkdir -p "$root"

# Files: the tree under packaging/root, the binary, the docs.
cp -R "$here/root/." "$root/"
install -D -m 0755 "$binary" "$root/usr/bin/liege"
if [ "$strip" = yes ] && command -v strip >/dev/null 2>&1; then
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/liege"
fi
doc="$root/usr/share/doc/liege"
install -D -m 0644 "$repo/README.md" "$doc/README.md"
install -m 0644 "$here/README.md" "$doc/README.packaging.md"
install -m 0644 "$here/debian/copyright" "$doc/copyright"
gzip -9n <"$here/debian/changelog" >"$doc/changelog.Debian.gz"
mkdir -p "$doc/examples"
for f in "$repo"/vassals.example/*.ini "$repo"/vassals.example/*.py "$repo"/vassals.example/*.conf; do
    [ -e "$f" ] && install -m 0644 "$f" "$doc/examples/"
done

# Normalize modes: directories 0755, files 0644, executables 0755 (git keeps only x bits).
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod go-w,a+r {} +

# Dependencies.
depends=""
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
    mkdir -p "$stage/src/debian"
    printf 'Source: liege\n\nPackage: liege\nArchitecture: any\n' >"$stage/src/debian/control"
    depends=$(cd "$stage/src" && dpkg-shlibdeps -O "$root/usr/bin/liege" 2>/dev/null |
        sed -n 's/^shlibs:Depends=//p')
fi
case "$depends" in
*libpython3.11*) ;;
"") depends="libc6 (>= 2.34), libgcc-s1, libpython3.11 (>= 3.11.2)" ;;
*) depends="$depends, libpython3.11 (>= 3.11.2)" ;;
esac
installed_size=$(du -sk --apparent-size "$root" | cut -f1)

# Control area.
mkdir -p "$root/DEBIAN"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" \
    -e "s/@INSTALLED_SIZE@/$installed_size/" -e "s/@DEPENDS@/$depends/" \
    "$here/debian/control" >"$root/DEBIAN/control"
install -m 0644 "$here/debian/conffiles" "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do
    install -m 0755 "$here/debian/$s" "$root/DEBIAN/$s"
done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
    grep -vxF -f <(sed 's|^/||' DEBIAN/conffiles) | xargs -d '\n' md5sum >DEBIAN/md5sums)

# Reproducible: every mtime (and dpkg-deb's own timestamps) = SOURCE_DATE_EPOCH, by default
# the time of the last commit.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
find "$root" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +

deb="$out/liege_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"$compress" --build "$root" "$deb" >&2
echo "$deb"
