// Package firmware holds what runs on a Fyr box besides the homeserver. It has no code of its
// own; its packages are:
//
//	firmware/slots       A/B slot switching: Raspberry Pi tryboot, systemd-boot boot counting
//	firmware/update      signed bundles into the inactive slot, trial, bless, rollback
//	firmware/setup       the first-boot page behind a console claim code; factory reset
//	firmware/configfile  validated, comment-keeping edits of fyr.yaml
//	firmware/mdns        <host>.local and DNS-SD (_matrix._tcp, _https._tcp) on the LAN
//	firmware/clock       saved time, RTC and SNTP; the clock never steps back
//
// The homeserver does not import any of them; cmd/fyr wires the updater into fyr serve (the
// admin upload endpoint, and update.Manager.Boot before the database opens).
//
// # What the supervisor (PID 1) calls, in boot order
//
// Paths: the boot partition is mounted at /boot (on a Raspberry Pi, partition 1 with
// autoboot.txt; on UEFI, the EFI system partition), the data partition at the data
// directory (cfg.DataDir below). Optional hardware is logged and skipped, never fatal.
//
//  1. Clock: k := &clock.Keeper{File: <data>/clock, RTC: clock.OpenRTC(""), Servers: NTP
//     servers, Floor: the build time}; k.Boot() sets the clock forward to the best time
//     known; go k.Run(ctx) saves it and asks NTP. k.Trusted() says whether an RTC or NTP
//     has vouched for it yet.
//  2. Factory reset: setup.FactoryReset("/boot", cfg.DataDir, log) before anything opens the
//     data directory. It keeps <data>/update/state.json, the downgrade protection.
//  3. Updates: bl, err := slots.Detect("/") (slots.ErrNoBootloader: not a box, skip updates);
//     keys, _ := update.LoadKeyring(<data>/update/trusted_keys.pem);
//     m := &update.Manager{Dir: <data>/update, Board: update.Board("/"), Keys: keys,
//     Loader: bl, DB: cfg.DatabasePath()}; rep, err := m.Boot(ctx). It snapshots the database
//     on a trial's first boot and restores it after a failed one; fyr serve calls it too
//     (it is idempotent). If rep.RebootNow, reboot at once without starting the homeserver.
//  4. First boot: if has, _ := (setup.DBAdmins{Path: cfg.DatabasePath()}).HasAdmin(ctx);
//     !has, print setup.Banner(code, urls...) with code := setup.NewClaimCode() on the
//     console, and run (&setup.Setup{ClaimCode: code, ConfigPath: <fyr.yaml>, DataDir:
//     cfg.DataDir, Admins: setup.DBAdmins{…}}).Serve(ctx, a listener on :80); it returns
//     once an admin exists. Reload the configuration afterwards: setup wrote server_name.
//  5. LAN presence: go (&mdns.Responder{Host: "fyr", Services: []mdns.Service{
//     {Instance: "Fyr", Type: "_matrix._tcp", Port: <client port>, Text:
//     []string{"server_name=" + cfg.ServerName}}, {Instance: "Fyr", Type: "_https._tcp",
//     Port: 443}}}).Run(ctx).
//  6. Start fyr serve and watch it. While rep.Trial != nil: once it has answered its health
//     check for a few minutes, m.Bless(ctx); if it crash-loops instead (say three exits
//     within five minutes), m.Rollback(ctx, "why") and reboot.
//  7. Every reboot, after stopping services and unmounting: arg, _ := m.RebootArg(); then
//     slots.Reboot(arg). The argument is "0 tryboot" when an installed update waits for its
//     trial on a Raspberry Pi; asking for it also records that the trial is being attempted.
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
