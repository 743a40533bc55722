// Command mkinitramfs builds the initramfs of a Fyr image: the static fyr binary as /init,
// the kernel modules a board needs (with their dependencies, listed in load order in
// /lib/modules/fyr.modules for firmware/initd), the CA certificates federation needs, and
// /dev/console. It runs on the build machine, needs no root, and writes a gzip'd newc cpio.
//
//	go run ./images/mkinitramfs -o initrd.img -init dist/fyr-linux-arm64 \
//	    -kernel-modules /tmp/linux/lib/modules/6.1.0-56-arm64 -modules "virtio_blk ext4" \
//	    -ca-dir /tmp/ca/usr/share/ca-certificates
package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkinitramfs:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fset := flag.NewFlagSet("mkinitramfs", flag.ContinueOnError)
	out := fset.String("o", "", "output file (gzip'd cpio)")
	initBin := fset.String("init", "", "the static fyr binary, installed as /init")
	kmods := fset.String("kernel-modules", "", "the kernel's module directory, /lib/modules/VERSION of an unpacked linux-image package")
	names := fset.String("modules", "", "modules to load at boot, separated by spaces or commas; dependencies are added")
	caDir := fset.String("ca-dir", "", "directory whose *.crt files (searched recursively) become /etc/ssl/certs/ca-certificates.crt")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if *out == "" || *initBin == "" {
		return errors.New("-o and -init are required")
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	c := newCPIO(zw)
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "data", "etc/ssl/certs", "lib/modules"} {
		c.Dir(d, 0o755)
	}
	c.CharDev("dev/console", 0o600, 5, 1)
	c.CharDev("dev/null", 0o666, 1, 3)

	fyr, err := os.ReadFile(*initBin)
	if err != nil {
		return err
	}
	c.File("init", 0o755, fyr)

	if *kmods != "" {
		tree, err := openModuleTree(*kmods)
		if err != nil {
			return err
		}
		order, err := tree.resolve(strings.FieldsFunc(*names, func(r rune) bool { return r == ' ' || r == ',' || r == '\n' }))
		if err != nil {
			return err
		}
		var list strings.Builder
		list.WriteString("# kernel modules in load order, written by images/mkinitramfs\n")
		for _, rel := range order {
			b, err := os.ReadFile(filepath.Join(*kmods, rel))
			if err != nil {
				return err
			}
			c.File("lib/modules/"+filepath.ToSlash(rel), 0o644, b)
			list.WriteString(filepath.ToSlash(rel) + "\n")
		}
		c.File("lib/modules/fyr.modules", 0o644, []byte(list.String()))
		fmt.Fprintf(os.Stderr, "mkinitramfs: %d modules: %s\n", len(order), strings.Join(baseNames(order), " "))
	}

	if *caDir != "" {
		bundle, n, err := caBundle(*caDir)
		if err != nil {
			return err
		}
		c.File("etc/ssl/certs/ca-certificates.crt", 0o644, bundle)
		fmt.Fprintf(os.Stderr, "mkinitramfs: %d CA certificates\n", n)
	}
	if err := c.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, *out)
}

func baseNames(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, modName(p))
	}
	return out
}

// caBundle concatenates the PEM files below dir in name order.
func caBundle(dir string) ([]byte, int, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".crt") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	if len(files) == 0 {
		return nil, 0, fmt.Errorf("no *.crt files below %s", dir)
	}
	sort.Strings(files)
	var b bytes.Buffer
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, 0, err
		}
		b.Write(bytes.TrimSpace(data))
		b.WriteByte('\n')
	}
	return b.Bytes(), len(files), nil
}
