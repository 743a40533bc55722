#!/bin/sh
# make image BOARD=qemu-arm64: a kernel, an initramfs and a data disk for
# qemu-system-aarch64 -M virt, booted directly (-kernel/-initrd, no firmware). Outputs in
# OUT (dist/images/qemu-arm64): Image, initrd.img, data.img, cmdline and run.sh.
. "$(dirname "$0")/../lib.sh"
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out/work"
out=$(cd "$out" && pwd)

build_fyr "$out/work/fyr"
build_initrd "$out/work/fyr" "$here/modules" "$out/initrd.img"
cp "$(kernel_tree)/boot/vmlinuz-$(kernel_release)" "$out/Image"
data_fs "$out/data.img" 1G
echo "console=ttyAMA0 panic=10 fyr.data=LABEL=fyr-data" >"$out/cmdline"
cp "$here/run.sh" "$out/run.sh"
chmod +x "$out/run.sh"
rm -rf "$out/work"
log "qemu-arm64 image in $out; boot it with $out/run.sh"
