package servertest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

// SpecDir finds the Matrix specification's sources: $FYR_MATRIX_SPEC, or ../shared/matrix-spec
// next to the repository. It returns "" when neither exists.
func SpecDir() string {
	if d := os.Getenv("FYR_MATRIX_SPEC"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(dir, "..", "shared", "matrix-spec")
			if _, err := os.Stat(filepath.Join(d, "data", "api")); err == nil {
				return d
			}
			return ""
		}
	}
	return ""
}

// CheckShape checks a response body against the schema the spec's OpenAPI gives for it:
// file is relative to data/api/client-server (e.g. "message_pagination.yaml"), path is the
// spec's path template ("/rooms/{roomId}/messages"). Without the spec's sources the check is
// skipped with a log line, so a checkout without them still tests behaviour.
func CheckShape(t testing.TB, file, method, path string, status int, body []byte) {
	t.Helper()
	dir := SpecDir()
	if dir == "" {
		t.Logf("matrix-spec sources not found; not checking the shape of %s %s", method, path)
		return
	}
	full := filepath.Join(dir, "data", "api", "client-server", file)
	doc, err := loadYAML(full)
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	op := dig(doc, "paths", path, strings.ToLower(method))
	if op == nil {
		t.Fatalf("spec: %s has no %s %s", file, method, path)
	}
	schema := dig(op, "responses", strconv.Itoa(status), "content", "application/json", "schema")
	if schema == nil {
		t.Fatalf("spec: %s %s has no JSON schema for status %d", method, path, status)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v", method, path, err)
	}
	c := &checker{}
	c.check(full, schema, v, "$")
	for _, p := range c.problems {
		t.Errorf("%s %s %d does not match the spec: %s", method, path, status, p)
	}
}

var yamlCache sync.Map // path → any

func loadYAML(path string) (any, error) {
	if v, ok := yamlCache.Load(path); ok {
		return v, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	yamlCache.Store(path, v)
	return v, nil
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

type checker struct {
	problems []string
}

func (c *checker) fail(at, format string, args ...any) {
	c.problems = append(c.problems, at+": "+fmt.Sprintf(format, args...))
}

// resolve follows a $ref (relative file plus optional #/pointer).
func (c *checker) resolve(file string, schema map[string]any) (string, map[string]any) {
	for {
		ref, ok := schema["$ref"].(string)
		if !ok {
			return file, schema
		}
		target, pointer, _ := strings.Cut(ref, "#")
		if target != "" {
			file = filepath.Join(filepath.Dir(file), target)
		}
		doc, err := loadYAML(file)
		if err != nil {
			c.fail("$ref", "%v", err)
			return file, map[string]any{}
		}
		var next any = doc
		for _, part := range strings.Split(strings.Trim(pointer, "/"), "/") {
			if part != "" {
				next = dig(next, part)
			}
		}
		m, ok := next.(map[string]any)
		if !ok {
			c.fail("$ref", "cannot resolve %s", ref)
			return file, map[string]any{}
		}
		schema = m
	}
}

// check validates v against the subset of JSON Schema the spec uses.
func (c *checker) check(file string, s any, v any, at string) {
	schema, ok := s.(map[string]any)
	if !ok {
		return
	}
	file, schema = c.resolve(file, schema)
	if all, ok := schema["allOf"].([]any); ok {
		for _, sub := range all {
			c.check(file, sub, v, at)
		}
	}
	for _, kw := range []string{"oneOf", "anyOf"} {
		if alts, ok := schema[kw].([]any); ok {
			matched := false
			for _, sub := range alts {
				trial := &checker{}
				trial.check(file, sub, v, at)
				if len(trial.problems) == 0 {
					matched = true
					break
				}
			}
			if !matched {
				c.fail(at, "matches none of the %s alternatives", kw)
			}
		}
	}
	if !c.checkType(schema, v, at) {
		return
	}
	if enum, ok := schema["enum"].([]any); ok && v != nil {
		if !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
			c.fail(at, "%v is not one of %v", v, enum)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		for _, r := range asList(schema["required"]) {
			if _, ok := x[r]; !ok {
				c.fail(at, "required property %q is missing", r)
			}
		}
		for k, val := range x {
			if p, ok := props[k]; ok {
				c.check(file, p, val, at+"."+k)
				continue
			}
			if pp, ok := schema["patternProperties"].(map[string]any); ok {
				for pat, sub := range pp {
					if re, err := regexp.Compile(pat); err == nil && re.MatchString(k) {
						c.check(file, sub, val, at+"."+k)
					}
				}
			}
			if ap, ok := schema["additionalProperties"]; ok {
				if b, isBool := ap.(bool); isBool && !b {
					c.fail(at, "unexpected property %q", k)
				} else if !isBool {
					c.check(file, ap, val, at+"."+k)
				}
			}
		}
	case []any:
		for i, item := range x {
			c.check(file, schema["items"], item, at+"["+strconv.Itoa(i)+"]")
		}
	case string:
		if pat, ok := schema["pattern"].(string); ok {
			if re, err := regexp.Compile(pat); err == nil && !re.MatchString(x) {
				c.fail(at, "%q does not match %s", x, pat)
			}
		}
	}
}

// checkType checks the type keyword; it reports whether to look deeper.
func (c *checker) checkType(schema map[string]any, v any, at string) bool {
	var types []string
	switch t := schema["type"].(type) {
	case string:
		types = []string{t}
	case []any:
		types = asList(t)
	default:
		return true
	}
	for _, t := range types {
		if jsonType(v, t) {
			return true
		}
	}
	c.fail(at, "is %s, want %v", kind(v), types)
	return false
}

func jsonType(v any, t string) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	}
	return false
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func asList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
