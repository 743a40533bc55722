// Package configfile changes fyr.yaml on behalf of the box's own tools, such as the
// first-boot setup page. It edits settings in place, keeping the operator's comments, checks
// the whole result with server/config's own loader and validation, and only then replaces
// the file, atomically: a change that would not load never reaches the disk, so the running
// server's watcher (config.Watch, which reloads on every save) only ever sees files that
// load. Settings that can change live take effect at once; the rest at the next restart.
//
// It is not for reading the configuration (server/config.Load does that).
package configfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"fyr/server/config"
	"fyr/storage/atomicfile"
)

// Set changes settings in the configuration file at path and returns the configuration the
// result loads as. values maps dotted keys ("server_name", "client.tls_cert") to Go values of
// the setting's kind (string, bool, int, float64, or a duration as a string like "24h"); a
// nil value removes the key, so the setting goes back to its default. A missing file starts
// from server/config's commented default file.
//
// The file is edited line by line: a setting already set is changed on its line; a new one
// goes right under its commented-out default when the file has one (as the default file
// does), else after the last setting of its section. Everything else, comments included, stays as it was.
//
// The candidate is loaded exactly as fyr serve loads a file (without the environment and
// flags): an unknown key, a wrong type or a failed validation is returned, naming the
// setting, and the file is left as it was.
func Set(path string, values map[string]any) (*config.Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = defaultFile(filepath.Dir(path))
	}
	if err != nil {
		return nil, fmt.Errorf("configfile: %w", err)
	}
	known := map[string]bool{}
	for _, s := range config.Settings() {
		known[s.Key] = true
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !known[k] {
			return nil, fmt.Errorf("configfile: no setting is called %s", k)
		}
		if data, err = edit(data, strings.Split(k, "."), values[k]); err != nil {
			return nil, fmt.Errorf("configfile: %s: %s: %w", path, k, err)
		}
	}
	cfg, err := Check(path, data)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("configfile: %w", err)
	}
	return cfg, nil
}

// Check loads data as fyr serve would load it from a file beside path, without the
// environment and flags, and returns the configuration or the error naming the setting.
func Check(path string, data []byte) (*config.Config, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("configfile: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".check*")
	if err != nil {
		return nil, fmt.Errorf("configfile: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("configfile: %w", err)
	}
	cfg, _, err := config.Load([]string{"--config", f.Name()}, nil)
	if err != nil {
		// The temporary name means nothing to the operator.
		return nil, &renamedError{msg: strings.ReplaceAll(err.Error(), f.Name(), path), err: err}
	}
	return cfg, nil
}

// renamedError is config.Load's error with the candidate file's name replaced by the real
// one; errors.As still finds a *config.ValidationError inside.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

// defaultFile renders server/config's commented default file.
func defaultFile(dir string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(dir, ".default*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	name := filepath.Join(tmp, "fyr.yaml")
	if err := config.WriteDefault(name); err != nil {
		return nil, err
	}
	return os.ReadFile(name)
}

// edit sets key (a top-level name, or section and name) to value in the YAML text src, or
// removes it when value is nil.
func edit(src []byte, key []string, value any) ([]byte, error) {
	if len(key) > 2 {
		return nil, errors.New("settings nest one section deep at most")
	}
	var scalar string
	if value != nil {
		var n yaml.Node
		if err := n.Encode(value); err != nil {
			return nil, err
		}
		if n.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%T is not a single value", value)
		}
		out, err := yaml.Marshal(&n)
		if err != nil {
			return nil, err
		}
		scalar = strings.TrimSuffix(string(out), "\n")
		if strings.Contains(scalar, "\n") {
			return nil, errors.New("the value spans lines")
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	var root *yaml.Node
	if len(doc.Content) > 0 && doc.Content[0].Kind == yaml.MappingNode {
		root = doc.Content[0]
	} else if len(doc.Content) > 0 && !isNull(doc.Content[0]) {
		return nil, errors.New("the file does not hold key: value settings")
	}
	lines := strings.SplitAfter(string(src), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > 0 && !strings.HasSuffix(lines[len(lines)-1], "\n") {
		lines[len(lines)-1] += "\n"
	}
	name := key[len(key)-1]

	// The mapping the key belongs in, and the lines that mapping spans.
	parent, indent, from, to := root, 0, 0, len(lines)
	if len(key) == 2 {
		i := find(root, key[0])
		if i < 0 {
			if value == nil {
				return src, nil
			}
			// A new section at the end.
			lines = append(lines, key[0]+":\n", "  "+name+": "+scalar+"\n")
			return []byte(strings.Join(lines, "")), nil
		}
		sk, sv := root.Content[i], root.Content[i+1]
		switch {
		case sv.Kind == yaml.MappingNode && sv.Style&yaml.FlowStyle == 0:
			parent = sv
		case isNull(sv):
			parent = nil
		default:
			return nil, fmt.Errorf("%s is written in a form this tool does not edit; change it by hand", key[0])
		}
		indent, from = sk.Column-1+2, sk.Line
		if parent != nil && len(parent.Content) > 0 {
			indent = parent.Content[0].Column - 1
		}
		if i+2 < len(root.Content) {
			to = root.Content[i+2].Line - 1
		}
	} else if root != nil && root.Style&yaml.FlowStyle != 0 {
		return nil, errors.New("the file is written in a form this tool does not edit; change it by hand")
	}

	if i := find(parent, name); i >= 0 {
		k, v := parent.Content[i], parent.Content[i+1]
		if v.Kind != yaml.ScalarNode || v.Line != k.Line || v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			return nil, fmt.Errorf("%s is written in a form this tool does not edit; change it by hand", name)
		}
		if value == nil {
			lines = slices.Delete(lines, k.Line-1, k.Line)
		} else {
			lines[k.Line-1] = strings.Repeat(" ", k.Column-1) + name + ": " + scalar + "\n"
		}
		return []byte(strings.Join(lines, "")), nil
	}
	if value == nil {
		return src, nil
	}
	line := strings.Repeat(" ", indent) + name + ": " + scalar + "\n"
	at := from // after the section's last setting, under an empty section's line, or at the end
	switch {
	case len(key) == 1:
		at = len(lines)
	case parent != nil && len(parent.Content) > 0:
		at = parent.Content[len(parent.Content)-1].Line
	}
	for n := from; n < to && n < len(lines); n++ {
		l := lines[n]
		trimmed := strings.TrimLeft(l, " ")
		if len(l)-len(trimmed) == indent && strings.HasPrefix(trimmed, "#"+name+":") {
			at = n + 1 // under its commented-out default
			break
		}
	}
	lines = slices.Insert(lines, at, line)
	return []byte(strings.Join(lines, "")), nil
}

// find returns the index of key's key node in mapping m, or -1.
func find(m *yaml.Node, key string) int {
	if m == nil {
		return -1
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}
