package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// moduleTree is the modules of one kernel (/lib/modules/VERSION) as the kernel's own
// depmod would see them, enough to load a few by hand in dependency order.
type moduleTree struct {
	dir string
	// paths maps a module name (dashes as underscores) to its path below dir.
	paths map[string]string
	// builtin names the modules compiled into the kernel.
	builtin map[string]bool
	// aliases maps an alias (e.g. crypto-crc32c) to module names; filled on first use.
	aliases map[string][]string
}

func modName(file string) string {
	return strings.ReplaceAll(strings.TrimSuffix(filepath.Base(file), ".ko"), "-", "_")
}

func openModuleTree(dir string) (*moduleTree, error) {
	t := &moduleTree{dir: dir, paths: map[string]string{}, builtin: map[string]bool{}}
	err := filepath.WalkDir(filepath.Join(dir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".ko") {
			rel, _ := filepath.Rel(dir, p)
			t.paths[modName(p)] = rel
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "modules.builtin"))
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			t.builtin[modName(line)] = true
		}
	}
	return t, nil
}

// modinfo reads the key=value strings of a module's .modinfo section.
func modinfo(path string) (map[string][]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("%s: no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, err
	}
	info := map[string][]string{}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			info[k] = append(info[k], v)
		}
	}
	return info, nil
}

// resolve returns the files to load for names, dependencies first (each once), and
// skips built-in modules. Soft pre-dependencies (softdep=pre: …, which modprobe would
// honour and the box has no modprobe for) are loaded first too, found by name or alias.
func (t *moduleTree) resolve(names []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(name string, optional bool) error
	visit = func(name string, optional bool) error {
		name = strings.ReplaceAll(name, "-", "_")
		if t.builtin[name] || state[name] == 2 {
			return nil
		}
		if state[name] == 1 {
			return fmt.Errorf("module dependency cycle at %s", name)
		}
		rel, ok := t.paths[name]
		if !ok {
			if optional {
				return nil
			}
			return fmt.Errorf("no module %q in %s (and not built in)", name, t.dir)
		}
		state[name] = 1
		info, err := modinfo(filepath.Join(t.dir, rel))
		if err != nil {
			return err
		}
		for _, sd := range info["softdep"] {
			pre, _, _ := strings.Cut(sd, "post:")
			if _, after, ok := strings.Cut(pre, "pre:"); ok {
				for _, dep := range strings.Fields(after) {
					for _, m := range t.byAlias(dep) {
						if err := visit(m, true); err != nil {
							return err
						}
					}
				}
			}
		}
		for _, deps := range info["depends"] {
			for _, dep := range strings.Split(deps, ",") {
				if dep = strings.TrimSpace(dep); dep != "" {
					if err := visit(dep, false); err != nil {
						return err
					}
				}
			}
		}
		state[name] = 2
		order = append(order, rel)
		return nil
	}
	for _, n := range names {
		if err := visit(n, false); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// byAlias returns the modules named or aliased a (crc32c → crc32c_generic).
func (t *moduleTree) byAlias(a string) []string {
	a = strings.ReplaceAll(a, "-", "_")
	if _, ok := t.paths[a]; ok || t.builtin[a] {
		return []string{a}
	}
	if t.aliases == nil {
		t.aliases = map[string][]string{}
		for name, rel := range t.paths {
			info, err := modinfo(filepath.Join(t.dir, rel))
			if err != nil {
				continue
			}
			for _, al := range info["alias"] {
				al = strings.ReplaceAll(al, "-", "_")
				t.aliases[al] = append(t.aliases[al], name)
			}
		}
	}
	if m := t.aliases[a]; len(m) > 0 {
		return m
	}
	return t.aliases["crypto_"+a]
}
