package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Setting describes one field of Config: where it is read from and what it means. The table
// is built once from Config's struct tags; see the package comment.
type Setting struct {
	Key     string // dotted YAML path, e.g. "client.addr"
	Flag    string // command-line flag without dashes, e.g. "client-addr"
	Env     string // environment variable, e.g. "FYR_CLIENT_ADDR"
	Help    string // one line for the operator
	Default string // built-in default as a flag would spell it; always empty for secrets
	Reload  bool   // a running server applies a change without restarting
	Secret  bool   // never logged or echoed in an error

	index []int        // field path from Config, for reflect.Value.FieldByIndex
	typ   reflect.Type // the field's type
}

// envPrefix starts every environment variable; FYR_CONFIG names the YAML file.
const envPrefix = "FYR_"

var durationType = reflect.TypeFor[time.Duration]()

// Settings returns every setting in the order of Config's fields. The caller may modify the
// returned slice.
func Settings() []Setting {
	return append([]Setting(nil), table()...)
}

// table is the settings table, built on first use. A malformed struct tag is a programming
// error and panics, which the package's tests catch.
var table = sync.OnceValue(func() []Setting {
	var out []Setting
	collect(&out, reflect.TypeFor[Config](), nil, "")
	def := reflect.ValueOf(Default()).Elem()
	flags := map[string]string{"config": "--config"}
	for i := range out {
		s := &out[i]
		if other, dup := flags[s.Flag]; dup {
			panic(fmt.Sprintf("config: flag --%s used by both %s and %s", s.Flag, other, s.Key))
		}
		flags[s.Flag] = s.Key
		if !s.Secret {
			s.Default = s.format(def.FieldByIndex(s.index))
		}
	}
	return out
})

// collect appends the settings of struct type t, whose fields sit at index below Config and
// under the YAML key prefix.
func collect(out *[]Setting, t reflect.Type, index []int, prefix string) {
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("yaml")
		if key == "" || key == "-" {
			panic(fmt.Sprintf("config: field %s.%s has no yaml tag", t.Name(), f.Name))
		}
		idx := append(append([]int(nil), index...), i)
		flagName := f.Tag.Get("flag")
		if f.Type.Kind() == reflect.Struct && flagName == "" {
			collect(out, f.Type, idx, prefix+key+".")
			continue
		}
		reload := f.Tag.Get("reload")
		if flagName == "" || f.Tag.Get("help") == "" || (reload != "yes" && reload != "no") {
			panic(fmt.Sprintf("config: field %s.%s needs flag, help and reload (yes or no) tags", t.Name(), f.Name))
		}
		switch f.Type.Kind() {
		case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Float64:
		default:
			panic(fmt.Sprintf("config: field %s.%s has unsupported type %s", t.Name(), f.Name, f.Type))
		}
		*out = append(*out, Setting{
			Key:    prefix + key,
			Flag:   flagName,
			Env:    envName(flagName),
			Help:   f.Tag.Get("help"),
			Reload: reload == "yes",
			Secret: f.Tag.Get("secret") == "yes",
			index:  idx,
			typ:    f.Type,
		})
	}
}

// envName is the environment variable for a flag: --client-addr is FYR_CLIENT_ADDR.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// lookup returns the setting with the given dotted key, or nil.
func lookup(key string) *Setting {
	t := table()
	for i := range t {
		if t[i].Key == key {
			return &t[i]
		}
	}
	return nil
}

// field returns the setting's field in c, settable.
func (s *Setting) field(c *Config) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByIndex(s.index)
}

// set parses raw as a flag or environment variable spells it and stores it in c.
func (s *Setting) set(c *Config, raw string) error {
	v, err := s.parse(raw)
	if err != nil {
		return err
	}
	s.field(c).Set(v)
	return nil
}

// parse turns the flag or environment spelling of a value into a value of the field's type.
// Its error says what was expected, without repeating raw (which may be secret).
func (s *Setting) parse(raw string) (reflect.Value, error) {
	v := reflect.New(s.typ).Elem()
	switch {
	case s.typ == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return v, s.typeError()
		}
		v.SetInt(int64(d))
	case s.typ.Kind() == reflect.String:
		v.SetString(raw)
	case s.typ.Kind() == reflect.Bool:
		b, ok := parseBool(raw)
		if !ok {
			return v, s.typeError()
		}
		v.SetBool(b)
	case s.typ.Kind() == reflect.Int || s.typ.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, s.typ.Bits())
		if err != nil {
			return v, s.typeError()
		}
		v.SetInt(n)
	case s.typ.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return v, s.typeError()
		}
		v.SetFloat(f)
	}
	return v, nil
}

// parseBool accepts what operators write in environment files: true/false, 1/0, yes/no.
func parseBool(raw string) (value, ok bool) {
	switch strings.ToLower(raw) {
	case "true", "1", "yes":
		return true, true
	case "false", "0", "no":
		return false, true
	}
	return false, false
}

// typeError says what kind of value the setting wants, with an example.
func (s *Setting) typeError() error {
	want := "a string"
	switch {
	case s.typ == durationType:
		want = "a duration such as 30s or 5m"
	case s.typ.Kind() == reflect.Bool:
		want = "true or false (1/0, yes/no also work)"
	case s.typ.Kind() == reflect.Int || s.typ.Kind() == reflect.Int64:
		want = "a whole number"
	case s.typ.Kind() == reflect.Float64:
		want = "a finite number"
	}
	if s.Default != "" && s.typ.Kind() != reflect.Bool {
		return fmt.Errorf("want %s, e.g. %s", want, s.Default)
	}
	return fmt.Errorf("want %s", want)
}

// format spells a value of the setting's type as a flag would.
func (s *Setting) format(v reflect.Value) string {
	switch {
	case s.typ == durationType:
		return time.Duration(v.Int()).String()
	case s.typ.Kind() == reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	}
	return fmt.Sprint(v.Interface())
}

// shown is the value of the setting in c as an error message prints it: quoted if a
// string, "(hidden)" if secret.
func (s *Setting) shown(c *Config) string {
	switch {
	case s.Secret:
		return hidden
	case s.typ.Kind() == reflect.String:
		return strconv.Quote(s.field(c).String())
	}
	return s.format(s.field(c))
}

// quote is raw text as given for the setting, as an error message prints it: quoted, or
// "(hidden)" if secret.
func (s *Setting) quote(raw string) string {
	if s.Secret {
		return hidden
	}
	return strconv.Quote(raw)
}

// hidden stands for a secret value in messages.
const hidden = "(hidden)"
