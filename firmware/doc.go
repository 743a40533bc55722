// Package firmware will hold what runs on a Fyr box besides the homeserver: the supervisor,
// signed A/B updates with rollback, first boot and LAN discovery. It is empty until the
// appliance issue builds it; the homeserver does not depend on it.
package firmware
