package boottest

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestRPi4Image checks the layout of the rpi4 SD card image. qemu cannot boot it (its
// raspi4b machine is newer than Debian 12's qemu, and the Pi's tryboot lives in the
// bootloader EEPROM), so booting it on a Pi 4 is a release check (images/README.md).
func TestRPi4Image(t *testing.T) {
	dir := image(t, boardRPi4, diskTools...)
	img := filepath.Join(dir, "fyr-rpi4.img")
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		t.Fatal(err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		t.Fatal("no MBR boot signature")
	}
	type part struct {
		boot  bool
		typ   byte
		start int64
	}
	var parts []part
	for i := range 4 {
		e := mbr[446+16*i:]
		parts = append(parts, part{e[0] == 0x80, e[4], int64(binary.LittleEndian.Uint32(e[8:])) * 512})
	}
	for i, want := range []byte{0x0c, 0x0c, 0x0c, 0x83} {
		if parts[i].typ != want {
			t.Fatalf("partition %d has type %#x, want %#x", i+1, parts[i].typ, want)
		}
	}
	fat := func(p int, args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], append([]string{"-i", fmt.Sprintf("%s@@%d", img, parts[p-1].start)}, args[1:]...)...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("partition %d: %s: %v\n%s", p, strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	want, _ := os.ReadFile("../rpi4/autoboot.txt")
	if got := fat(1, "mtype", "::/autoboot.txt"); strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
		t.Errorf("autoboot.txt = %q, want %q", got, want)
	}
	for p, slot := range map[int]string{2: "a", 3: "b"} {
		files := fat(p, "mdir", "-b", "::/")
		for _, name := range []string{"start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "vmlinuz", "initrd.img", "config.txt", "cmdline.txt"} {
			if !strings.Contains(files, "::/"+name) {
				t.Errorf("slot %s (partition %d) lacks %s", slot, p, name)
			}
		}
		if cmdline := fat(p, "mtype", "::/cmdline.txt"); !strings.Contains(cmdline, "fyr.slot="+slot) || !strings.Contains(cmdline, "fyr.data=LABEL=fyr-data") {
			t.Errorf("slot %s cmdline.txt = %q", slot, cmdline)
		}
		if config := fat(p, "mtype", "::/config.txt"); !strings.Contains(config, "kernel=vmlinuz") || !strings.Contains(config, "initramfs initrd.img followkernel") {
			t.Errorf("slot %s config.txt = %q", slot, config)
		}
	}

	sb := make([]byte, 0x88)
	if _, err := f.ReadAt(sb, parts[3].start+1024); err != nil {
		t.Fatal(err)
	}
	if binary.LittleEndian.Uint16(sb[0x38:]) != 0xEF53 || !strings.HasPrefix(string(sb[0x78:0x88]), "fyr-data\x00") {
		t.Errorf("partition 4 is not the ext4 file system labelled fyr-data")
	}

	// The initramfs: fyr as /init and the Pi's drivers in the module list.
	tmp := filepath.Join(t.TempDir(), "initrd.img")
	fat(2, "mcopy", "::/initrd.img", tmp)
	files := cpioFiles(t, tmp)
	if _, ok := files["init"]; !ok {
		t.Error("the initramfs has no /init")
	}
	list := files["lib/modules/fyr.modules"]
	for _, m := range []string{"sdhci-iproc.ko", "genet.ko", "bcm2835_wdt.ko", "ext4.ko", "crc32c_generic.ko"} {
		if !strings.Contains(list, "/"+m+"\n") {
			t.Errorf("the module list lacks %s:\n%s", m, list)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		if _, ok := files["lib/modules/"+line]; !strings.HasPrefix(line, "#") && !ok {
			t.Errorf("the module list names %s, which the initramfs lacks", line)
		}
	}
}

// cpioFiles reads a gzip'd newc cpio and returns its regular files' names; the module list
// and other small files also with their contents.
func cpioFiles(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(zr)
	files := map[string]string{}
	var off int64
	read := func(n int64) []byte {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			t.Fatalf("cpio at %d: %v", off, err)
		}
		off += n
		return b
	}
	pad := func() { read((4 - off%4) % 4) }
	for {
		h := read(110)
		if string(h[:6]) != "070701" {
			t.Fatalf("cpio at %d: bad magic %q", off-110, h[:6])
		}
		field := func(i int) int64 {
			v, _ := strconv.ParseInt(string(h[6+8*i:14+8*i]), 16, 64)
			return v
		}
		mode, size, namesize := field(1), field(6), field(11)
		name := strings.TrimSuffix(string(read(namesize)), "\x00")
		pad()
		if name == "TRAILER!!!" {
			return files
		}
		data := read(size)
		pad()
		if mode&0o170000 == 0o100000 {
			if size < 64<<10 {
				files[name] = string(data)
			} else {
				files[name] = ""
			}
		}
	}
}
