#!/bin/sh
# Boots the qemu-arm64 image in this directory; the client API is forwarded to
# 127.0.0.1:${PORT:-8008}. Ctrl-a x quits qemu (a power cut: nothing is flushed).
cd "$(dirname "$0")"
exec qemu-system-aarch64 -M virt -cpu cortex-a57 -smp 2 -m 1024 -nographic \
	-kernel Image -initrd initrd.img -append "$(cat cmdline)" \
	-drive if=none,id=data,file=data.img,format=raw -device virtio-blk-pci,drive=data \
	-netdev user,id=net0,hostfwd=tcp:127.0.0.1:${PORT:-8008}-:8008 \
	-device virtio-net-pci,netdev=net0,romfile= \
	-device virtio-rng-pci -device i6300esb "$@"
