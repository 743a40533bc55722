#!/bin/sh
# make image BOARD=rpi4: an SD card image for the Raspberry Pi 4 with Debian's arm64 kernel
# and the Pi firmware from Debian's raspi-firmware. Both slots start out with the same
# system; the bootloader's tryboot switches between them (autoboot.txt). Write it with
#   dd if=dist/images/rpi4/fyr-rpi4.img of=/dev/sdX bs=4M conv=fsync
# Output: OUT/fyr-rpi4.img.
. "$(dirname "$0")/../lib.sh"
out=${1:?usage: build.sh OUTDIR}
need genimage mkdosfs mcopy mke2fs
rm -rf "$out/work"
mkdir -p "$out/work/in/common" "$out/work/in/a" "$out/work/in/b" "$out/work/root" "$out/work/tmp"
out=$(cd "$out" && pwd)
w=$out/work

build_fyr "$w/fyr"
build_initrd "$w/fyr" "$here/modules" "$w/in/common/initrd.img"
k=$(kernel_tree)
cp "$k/boot/vmlinuz-$(kernel_release)" "$w/in/common/vmlinuz"
for dtb in bcm2711-rpi-4-b bcm2711-rpi-400 bcm2711-rpi-cm4-io; do
	cp "$k/usr/lib/linux-image-$(kernel_release)/broadcom/$dtb.dtb" "$w/in/common/"
done
fw=$(unpack raspi-firmware)/usr/lib/raspi-firmware
cp "$fw/start4.elf" "$fw/fixup4.dat" "$w/in/common/"
cp "$here/config.txt" "$w/in/common/config.txt"
cp "$here/autoboot.txt" "$w/in/autoboot.txt"
for slot in a b; do
	echo "console=ttyS1,115200 console=tty0 panic=10 fyr.slot=$slot fyr.data=LABEL=fyr-data" >"$w/in/$slot/cmdline.txt"
done
data_fs "$w/in/data.ext4" 512M

rm -f "$out/fyr-rpi4.img"
(cd "$w" && genimage --config "$here/genimage.cfg" --rootpath "$w/root" --tmppath "$w/tmp" \
	--inputpath "$w/in" --outputpath "$out" >"$w/genimage.log" 2>&1) || { cat "$w/genimage.log" >&2; exit 1; }
rm -rf "$w" "$out"/*.vfat
log "rpi4 image: $out/fyr-rpi4.img"
