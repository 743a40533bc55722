# Shared steps of the image recipes; each images/BOARD/build.sh sources this file.
# Nothing here needs root or loop devices: packages are unpacked with dpkg-deb, file systems
# are made by mke2fs and mkdosfs/mtools (through genimage), the initramfs by a Go program.
#
# Environment: GO (go), VERSION (stamped into fyr), FYR_IMAGE_CACHE (downloads and unpacked
# packages; default ${XDG_CACHE_HOME:-~/.cache}/fyr-images).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
images=$(cd "$here/.." && pwd)
root=$(cd "$images/.." && pwd)
GO=${GO:-go}
VERSION=${VERSION:-dev}
cache=${FYR_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fyr-images}

log() { echo "image: $*" >&2; }
die() { echo "image: $*" >&2; exit 1; }

# need CMD... fails with the Debian package to install when a tool is missing.
need() {
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$c" >/dev/null 2>&1 ||
			die "$c not found; install it (Debian: apt-get install $(pkg_of "$c"))"
	done
}
pkg_of() {
	case $1 in
	mke2fs) echo e2fsprogs ;; mkdosfs | mkfs.vfat) echo dosfstools ;; mcopy | mdir) echo mtools ;;
	dpkg-deb) echo dpkg ;; sfdisk) echo fdisk ;; *) echo "$1" ;;
	esac
}
PATH="$PATH:/usr/sbin:/sbin"

# fetch NAME prints the path of the pinned download NAME (see images/pins), downloading it
# into the cache and checking its SHA-256 first if needed.
fetch() {
	line=$(grep -E "^$1[[:space:]]" "$images/pins") || die "no pin named $1 in images/pins"
	set -- $line
	name=$1 sum=$2
	shift 2
	file="$cache/downloads/$(basename "$1")"
	if [ -f "$file" ] && echo "$sum  $file" | sha256sum -c --status; then
		echo "$file"
		return
	fi
	mkdir -p "$cache/downloads"
	part=$(mktemp "$file.XXXXXX")
	for url in "$@"; do
		log "downloading $name from $url"
		if curl -fsSL --retry 3 -o "$part" "$url" && echo "$sum  $part" | sha256sum -c --status; then
			mv "$part" "$file"
			echo "$file"
			return
		fi
		log "$url failed or did not match SHA-256 $sum"
	done
	rm -f "$part"
	die "could not download $name"
}

# unpack NAME prints a directory holding the unpacked pinned package NAME (cached).
unpack() {
	deb=$(fetch "$1")
	dir="$cache/unpacked/$(basename "$deb" .deb)"
	if [ ! -f "$dir/.done" ]; then
		need dpkg-deb
		mkdir -p "$cache/unpacked"
		tmp=$(mktemp -d "$dir.XXXXXX")
		dpkg-deb -x "$deb" "$tmp"
		touch "$tmp/.done"
		rm -rf "$dir"
		mv "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp" # another build got there first
	fi
	echo "$dir"
}

# build_fyr OUT builds the static arm64 fyr binary.
build_fyr() {
	log "building fyr $VERSION for linux/arm64"
	(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH=arm64 "$GO" build -trimpath \
		-ldflags "-s -w -X main.version=$VERSION" -o "$1" ./cmd/fyr)
}

# kernel_tree prints the unpacked kernel package; kernel_release its release (6.1.0-56-arm64).
kernel_tree() { unpack linux-image; }
kernel_release() { ls "$(kernel_tree)/lib/modules" | head -n1; }

# build_initrd FYR MODULES_FILE OUT builds the initramfs: fyr as /init, the modules named in
# MODULES_FILE (one or more a line, # comments) with their dependencies, the CA bundle.
build_initrd() {
	k=$(kernel_tree)
	ca=$(unpack ca-certificates)
	mods=$(sed 's/#.*//' "$2" | tr '\n' ' ')
	log "building the initramfs"
	(cd "$root" && "$GO" run ./images/mkinitramfs -o "$3" -init "$1" \
		-kernel-modules "$k/lib/modules/$(kernel_release)" -modules "$mods" \
		-ca-dir "$ca/usr/share/ca-certificates/mozilla")
}

# data_fs OUT SIZE makes an empty ext4 data file system labelled fyr-data.
data_fs() {
	need mke2fs
	rm -f "$1"
	truncate -s "$2" "$1"
	mke2fs -q -t ext4 -L fyr-data -E root_owner=0:0 -F "$1"
}
