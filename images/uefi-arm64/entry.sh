#!/bin/sh
# entry.sh SLOT VERSION [OPTION...] prints the systemd-boot entry of a slot (Boot Loader
# Specification type #1), with any OPTIONs added to the kernel command line. The file name
# carries the boot counter: fyr-SLOT+3.conf while on trial.
slot=${1:?usage: entry.sh SLOT VERSION [OPTION...]} version=${2:?usage: entry.sh SLOT VERSION [OPTION...]}
shift 2
cat <<END
title Fyr (slot $slot)
sort-key fyr
version $version
linux /fyr/$slot/vmlinuz
initrd /fyr/$slot/initrd.img
options console=tty0 console=ttyAMA0,115200 panic=5 fyr.slot=$slot fyr.data=PARTLABEL=fyr-data${*:+ $*}
END
