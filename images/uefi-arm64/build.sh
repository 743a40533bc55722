#!/bin/sh
# make image BOARD=uefi-arm64: a GPT disk image for arm64 UEFI machines. The EFI system
# partition holds systemd-boot and, per slot, a kernel and initramfs in /fyr/a and /fyr/b
# with a boot entry each in /loader/entries. Entries carry "sort-key fyr" and a version:
# systemd-boot boots the highest version whose boot counter is not used up. A new slot's
# entry is written as fyr-b+3.conf (three tries); systemd-boot counts each try down, the
# slot code renames it fyr-b.conf once the homeserver answers (blessed), and an entry at
# +0 is sorted last, so a slot that never comes up falls back to the other one.
# The image ships slot a only (version 1, blessed). Output: OUT/fyr-uefi-arm64.img.
. "$(dirname "$0")/../lib.sh"
out=${1:?usage: build.sh OUTDIR}
need genimage mkdosfs mcopy mke2fs
rm -rf "$out/work"
mkdir -p "$out/work/in/EFI/BOOT" "$out/work/in/loader/entries" "$out/work/in/fyr/a" "$out/work/root" "$out/work/tmp"
out=$(cd "$out" && pwd)
w=$out/work

build_fyr "$w/fyr"
build_initrd "$w/fyr" "$here/modules" "$w/in/fyr/a/initrd.img"
cp "$(kernel_tree)/boot/vmlinuz-$(kernel_release)" "$w/in/fyr/a/vmlinuz"
cp "$(unpack systemd-boot-efi)/usr/lib/systemd/boot/efi/systemd-bootaa64.efi" "$w/in/EFI/BOOT/BOOTAA64.EFI"
printf 'timeout 0\ndefault fyr-*\neditor no\n' >"$w/in/loader/loader.conf"
"$here/entry.sh" a 1 >"$w/in/loader/entries/fyr-a.conf"
data_fs "$w/in/data.ext4" 512M

rm -f "$out/fyr-uefi-arm64.img"
(cd "$w" && genimage --config "$here/genimage.cfg" --rootpath "$w/root" --tmppath "$w/tmp" \
	--inputpath "$w/in" --outputpath "$out" >"$w/genimage.log" 2>&1) || { cat "$w/genimage.log" >&2; exit 1; }
cp "$w/in/fyr/a/vmlinuz" "$out/vmlinuz"
cp "$w/in/fyr/a/initrd.img" "$out/initrd.img"
cp "$here/entry.sh" "$out/entry.sh"
rm -rf "$w" "$out/esp.vfat"
log "uefi-arm64 image: $out/fyr-uefi-arm64.img"
