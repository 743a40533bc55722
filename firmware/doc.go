// Package firmware holds what runs on a Fyr box besides the homeserver. It has no code of its
// own; its packages are:
//
//	firmware/initd       PID 1: mounts, modules, the boot checklist below, supervision, shutdown
//	firmware/supervisor  runs fyr serve as a child: restarts, first answer, crash loops
//	firmware/watchdog    feeds the hardware watchdog while the homeserver answers
//	firmware/netup       DHCP with a static or link-local fallback, over netlink
//	firmware/ringlog     the bounded log on the data disk
//	firmware/slots       A/B slot switching: Raspberry Pi tryboot, systemd-boot boot counting
//	firmware/update      signed bundles into the inactive slot, trial, bless, rollback
//	firmware/setup       the first-boot page behind a console claim code; factory reset
//	firmware/configfile  validated, comment-keeping edits of fyr.yaml
//	firmware/mdns        <host>.local and DNS-SD (_matrix._tcp, _http(s)._tcp) on the LAN
//	firmware/clock       saved time, RTC and SNTP; the clock never steps back
//
// The homeserver does not import any of them; cmd/fyr wires the updater into fyr serve (the
// admin upload endpoint, and update.Manager.Boot before the database opens) and starts
// firmware/initd when the kernel runs fyr as PID 1.
//
// # What PID 1 does at boot, in order (firmware/initd, boot_linux.go)
//
// Paths: the data partition is mounted on /data (fyr.data= on the kernel command line), the
// boot partition read-write on /boot (fyr.boot=, else partition 1 of the data partition's
// disk: the ESP on UEFI, the autoboot partition on a Raspberry Pi), with MS_DIRSYNC so that
// a rename on FAT is on the disk when it returns. Only the data disk is essential: a board
// without a boot partition, RTC, network or watchdog logs what it lacks and still serves.
//
//  1. Factory reset: setup.FactoryReset("/boot", "/data") before anything opens the data
//     directory, not even the log ring (it keeps update/state.json, the downgrade
//     protection). Then the log ring and network.yaml.
//  2. Clock: clock.Keeper{File: /data/clock, RTC: clock.OpenRTC(""), Servers: network.yaml's
//     ntp (else pool.ntp.org), Floor: the commit time of the build}; Boot, then Run.
//  3. Network and LAN presence: netup in the background; its OnAddr feeds an mDNS responder
//     announcing fyr.local, started anew at each address, with the setup page's
//     _http._tcp service during setup and the homeserver's _matrix._tcp (TXT server_name)
//     and _http._tcp or _https._tcp on the client port after.
//  4. Updates: update.Detect("/", /data/update, the database) (slots.ErrNoBootloader: not a
//     box, updates off), then Manager.Boot: a trial's database snapshot, or the rollback of a
//     failed trial. RebootNow: reboot at once, without starting the homeserver.
//  5. The database check (fyr check) if the last run ended without a clean shutdown.
//  6. First boot: while setup.DBAdmins reports no admin, setup.Banner with a fresh claim
//     code goes to the console only (never to the log ring), again at each new address,
//     and setup.Setup serves the page on :80 until an admin exists; PID 1 then reloads the
//     configuration the page wrote. If the page cannot be served, the homeserver starts
//     anyway and prints its one-time registration token.
//  7. The watchdog, then fyr serve under the supervisor. On a trial (Report.Trial), PID 1
//     blesses the update (Manager.Bless) once the homeserver has answered every health
//     check for fyr.bless_after (default 3m; a missed check or a restart starts the wait
//     over), and if the homeserver crash-loops first (5 short runs), gives it up
//     (Manager.Rollback) and reboots. A crash loop outside a trial changes no slot.
//  8. Every reboot, once the homeserver has stopped and before /data is unmounted:
//     arg := Manager.RebootArg(), then /data and /boot are unmounted and slots.Reboot(arg)
//     restarts ("0 tryboot" when an installed update waits for its trial on a Raspberry Pi;
//     asking records that the trial is being attempted).
//
// Kernel command line settings besides fyr.data= and fyr.slot=: fyr.boot=,
// fyr.bless_after=, and FYR_… homeserver settings (the kernel hands unknown KEY=value
// parameters to PID 1, which passes FYR_ ones on to fyr serve).
//
// # Checking it by hand on real hardware (release checks)
//
// qemu covers the UEFI board (images/boottest). On a Raspberry Pi 4 and on an arm64 UEFI
// machine, before a release (images/README.md has the image side):
//
//   - First boot: the console shows the banner with http://fyr.local/, the DHCP address
//     and a claim code; the page on a laptop on the same LAN takes the code, a server name
//     and the admin; Element then signs in at http://fyr.local:8008 (or https with the
//     self-signed mode). The claim code is not in /data/log/fyr.log.
//   - LAN: `avahi-browse -rt _matrix._tcp` on the laptop lists Fyr with server_name=….
//   - Update: upload a good bundle (POST /_fyr/admin/v1/update, see fyr update help), then
//     reboot through PID 1: Ctrl-Alt-Del on the box's keyboard (PID 1 gets SIGINT), since
//     only PID 1's reboot passes "0 tryboot" (on UEFI a power cycle tries the new slot
//     too). The new slot logs "this boot is a system update's trial", and after
//     fyr.bless_after "update: new slot blessed": autoboot.txt's [all] now names the new
//     partition; on UEFI its loader/entries file lost its +N counter.
//   - Rollback: a bundle whose homeserver cannot start: after the crash loop (about half a
//     minute) the box logs "giving the trial up", reboots by itself into the old slot, and
//     logs "a system update failed its trial and was rolled back".
//   - Factory reset: create fyr-factory-reset.txt on the boot partition from any computer;
//     the next boot wipes /data (keeping update/state.json) and shows the setup banner.
//   - Fail soft: without a network cable the box still boots and serves on loopback and
//     the console; with the RTC battery out, the clock starts from the saved time.
//
// # What an image must hold (images/)
//
// Raspberry Pi: partition 1 (FAT) with the bootloader files and autoboot.txt
// ("[all] tryboot_a_b=1 boot_partition=2 [tryboot] boot_partition=3", one per line);
// partitions 2 and 3 (FAT) are slots a and b, each a complete boot partition (kernel,
// initramfs with fyr, config.txt, cmdline.txt, overlays/). The firmware reports the booted
// one in /proc/device-tree/chosen/bootloader/partition.
//
// UEFI: systemd-boot on the ESP, loader/entries/fyr-a.conf with "sort-key fyr" and
// "version 1", and slot a's files in fyr/a/: fyr.efi (a unified kernel image), or vmlinuz
// with initrd.img, plus cmdline.txt, whose options get fyr.slot=a appended.
//
// A bundle is `make bundle KEY=… BUNDLE_VERSION=… BUNDLE_BOARD=… SLOT=dir` over such a slot's files.
package firmware
