package config

import (
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"fyr/storage/atomicfile"
)

// readFile applies the YAML file at path over c. It is strict: a key that names no setting,
// a key given twice, a value of the wrong type or a section written as a value is an error
// naming the file, the line and the dotted key. A key with no value (or null) leaves the
// setting as it was, so a section line with only comments beneath it keeps its defaults.
func readFile(path string, c *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty, or only comments
	}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config: %s:%d: want settings as `key: value` lines, such as `server_name: example.org`", path, root.Line)
	}
	return decodeSection(path, root, "", c)
}

// decodeSection applies mapping m, whose keys sit under the dotted prefix ("" or "client.").
func decodeSection(path string, m *yaml.Node, prefix string, c *Config) error {
	seen := make(map[string]int)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], resolve(m.Content[i+1])
		key := prefix + k.Value
		if k.Kind != yaml.ScalarNode {
			return fmt.Errorf("config: %s:%d: a key under %q is not a plain name", path, k.Line, strings.TrimSuffix(prefix, "."))
		}
		if first, dup := seen[k.Value]; dup {
			return fmt.Errorf("config: %s:%d: %s is set twice (first on line %d); keep one", path, k.Line, key, first)
		}
		seen[k.Value] = k.Line
		if s := lookup(key); s != nil {
			if err := decodeValue(path, s, v, c); err != nil {
				return err
			}
			continue
		}
		if children := childKeys(key + "."); len(children) > 0 {
			if isNull(v) {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return fmt.Errorf("config: %s:%d: %s is a section, not a value; indent its settings beneath it (%s)", path, v.Line, key, strings.Join(children, ", "))
			}
			if err := decodeSection(path, v, key+".", c); err != nil {
				return err
			}
			continue
		}
		where := "at the top level"
		if prefix != "" {
			where = "in " + strings.TrimSuffix(prefix, ".")
		}
		return fmt.Errorf("config: %s:%d: unknown key %s; known %s: %s", path, k.Line, key, where, strings.Join(childKeys(prefix), ", "))
	}
	return nil
}

// decodeValue sets one setting from its YAML value.
func decodeValue(path string, s *Setting, v *yaml.Node, c *Config) error {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.ScalarNode {
		return fmt.Errorf("config: %s:%d: %s wants a single value, not a list or mapping", path, v.Line, s.Key)
	}
	p := reflect.New(s.typ)
	err := v.Decode(p.Interface())
	switch k := s.typ.Kind(); {
	case (k == reflect.Int || k == reflect.Int64) && s.typ != durationType && v.ShortTag() != "!!int":
		err = s.typeError() // yaml.v3 would truncate 1.5 to 1
	case k == reflect.Float64 && err == nil && (math.IsNaN(p.Elem().Float()) || math.IsInf(p.Elem().Float(), 0)):
		err = s.typeError()
	}
	if err != nil {
		return fmt.Errorf("config: %s:%d: %s = %s: %w", path, v.Line, s.Key, s.quote(v.Value), s.typeError())
	}
	s.field(c).Set(p.Elem())
	return nil
}

// childKeys lists the names directly under a dotted prefix ("" for the top level), in
// table order.
func childKeys(prefix string) []string {
	var out []string
	for _, s := range table() {
		if rest, ok := strings.CutPrefix(s.Key, prefix); ok {
			name, _, _ := strings.Cut(rest, ".")
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// defaultHeader opens the file WriteDefault writes.
const defaultHeader = `## Fyr configuration. Every setting is listed below, commented out, at its built-in default.
## To change one, delete the '#' in front of it. Leave section lines such as "client:" as
## they are: a section with nothing set beneath it keeps its defaults.
##
## Precedence, lowest first: built-in defaults < this file < FYR_… environment variables
## < command-line flags; each setting's flag and variable follow its value. Settings marked
## (restart) need a restart; the others apply when the server gets SIGHUP or this file is saved.
`

// WriteDefault writes, atomically and with mode 0600, a YAML file in which every setting
// appears commented out with its help and default, grouped by section. Removing the '#' from
// any one line leaves a valid file.
func WriteDefault(path string) error {
	if err := atomicfile.WriteFile(path, []byte(defaultFile()), 0o600); err != nil {
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	return nil
}

// defaultFile renders the file WriteDefault writes. Section lines stay uncommented: YAML reads
// a key with only comments beneath it as null, which leaves the section's defaults alone.
func defaultFile() string {
	var b strings.Builder
	b.WriteString(defaultHeader + "\n")
	var open []string // the sections around the previous setting
	for _, s := range table() {
		parts := strings.Split(s.Key, ".")
		sections, name := parts[:len(parts)-1], parts[len(parts)-1]
		n := 0
		for n < len(open) && n < len(sections) && open[n] == sections[n] {
			n++
		}
		for i := n; i < len(sections); i++ {
			fmt.Fprintf(&b, "%s%s:\n", indent(i), sections[i])
		}
		open = sections
		restart := ""
		if !s.Reload {
			restart = " (restart)"
		}
		in := indent(len(sections))
		fmt.Fprintf(&b, "%s## %s%s\n", in, s.Help, restart)
		fmt.Fprintf(&b, "%s#%s: %s  # --%s, %s\n\n", in, name, yamlDefault(&s), s.Flag, s.Env)
	}
	return b.String()
}

func indent(depth int) string { return strings.Repeat("  ", depth) }

// yamlDefault is the setting's default as a YAML scalar; a secret's is always "".
func yamlDefault(s *Setting) string {
	var v any = ""
	if !s.Secret {
		v = s.field(Default()).Interface()
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("config: marshal the default of %s: %v", s.Key, err)) // scalars always marshal
	}
	return strings.TrimSuffix(string(out), "\n")
}
