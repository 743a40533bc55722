package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unicode/utf16"

	"fyr/firmware/update"
)

// fakeUEFIRoot lays out a system root as a UEFI Fyr box running slot a leaves it.
func fakeUEFIRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	efivars := filepath.Join(root, "sys/firmware/efi/efivars")
	entries := filepath.Join(root, "boot/loader/entries")
	for _, d := range []string{efivars, entries, filepath.Join(root, "boot/fyr/a")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	v := []byte{7, 0, 0, 0}
	for _, c := range utf16.Encode([]rune("fyr-a.conf\x00")) {
		v = append(v, byte(c), byte(c>>8))
	}
	os.WriteFile(filepath.Join(efivars, "LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"), v, 0o644)
	os.WriteFile(filepath.Join(entries, "fyr-a.conf"), []byte("title Fyr\nsort-key fyr\nversion 1\nlinux /fyr/a/vmlinuz\n"), 0o644)
	return root
}

func TestUpdateCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	root := fakeUEFIRoot(t)
	data := filepath.Join(dir, "data")
	run := func(args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		err := updateCmd(ctx, args, &out)
		return out.String(), err
	}

	key := filepath.Join(dir, "release")
	if out, err := run("keygen", key); err != nil || !strings.Contains(out, "key ID") {
		t.Fatalf("keygen = %q, %v", out, err)
	}
	if _, err := run("keygen", key); err == nil {
		t.Error("keygen overwrote an existing key")
	}
	slot := filepath.Join(dir, "slot")
	os.MkdirAll(filepath.Join(slot, "sub"), 0o755)
	os.WriteFile(filepath.Join(slot, "vmlinuz"), []byte("the new kernel"), 0o644)
	os.WriteFile(filepath.Join(slot, "sub", "initrd.img"), []byte("the new initramfs"), 0o644)
	bundle := filepath.Join(dir, "fyr-2.bundle")
	board := "uefi-" + runtime.GOARCH
	if out, err := run("sign", "--key", key+".key", "--version", "2", "--label", "2026.11.1", "--board", board, "-o", bundle, slot); err != nil {
		t.Fatalf("sign = %q, %v", out, err)
	}
	if _, err := run("sign", "--key", key+".key", "-o", bundle, slot); !errors.Is(err, errUsage) {
		t.Errorf("sign without --version and --board = %v, want a usage error", err)
	}

	if out, err := run("verify", "--keys", key+".pub", bundle); err != nil || !strings.Contains(out, "good: 2026.11.1 (version 2)") {
		t.Errorf("verify = %q, %v", out, err)
	}
	if _, err := run("verify", bundle); err == nil {
		t.Error("verify without any trusted key succeeded")
	}

	box := []string{"--data-dir", data, "--root", root}
	if _, err := run(append([]string{"apply"}, append(box, bundle)...)...); !errors.Is(err, update.ErrUntrustedKey) {
		t.Errorf("apply before the key is trusted = %v, want ErrUntrustedKey", err)
	}
	pub, _ := os.ReadFile(key + ".pub")
	os.MkdirAll(filepath.Join(data, "update"), 0o700)
	os.WriteFile(filepath.Join(data, "update", update.TrustedKeysFile), pub, 0o644)
	out, err := run(append([]string{"apply"}, append(box, bundle)...)...)
	if err != nil || !strings.Contains(out, "into slot b") {
		t.Fatalf("apply = %q, %v", out, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "boot/fyr/b/sub/initrd.img")); err != nil || string(b) != "the new initramfs" {
		t.Errorf("slot b's initrd = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, "boot/loader/entries/fyr-b+3.conf")); err != nil {
		t.Errorf("no trial entry: %v", err)
	}
	out, err = run(append([]string{"status"}, box...)...)
	for _, want := range []string{"running      slot a\n", "installed    version 2", "slot b       trial, version 2 2026.11.1", "trial        version 2 in slot b, armed"} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s%v", want, out, err)
		}
	}
	if _, err := run(append([]string{"apply"}, append(box, bundle)...)...); !errors.Is(err, update.ErrDowngrade) {
		t.Errorf("applying the same bundle again = %v, want ErrDowngrade", err)
	}
	if _, err := run(append([]string{"bless"}, box...)...); !errors.Is(err, update.ErrNoTrial) {
		t.Errorf("bless outside a trial = %v, want ErrNoTrial", err)
	}
	if _, err := run("apply", "--data-dir", data, "--root", t.TempDir(), bundle); err == nil || !strings.Contains(err.Error(), "Fyr box") {
		t.Errorf("apply on a machine that is no box = %v", err)
	}
	if _, err := run("frobnicate"); !errors.Is(err, errUsage) {
		t.Errorf("fyr update frobnicate = %v, want a usage error", err)
	}
}
