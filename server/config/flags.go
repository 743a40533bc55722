package config

import (
	"flag"
	"fmt"
	"os"
	"reflect"
)

// flagSet holds the command line as parsed, before it is applied over the file and the
// environment.
type flagSet struct {
	set    *flag.FlagSet
	config string            // --config, or empty
	values map[string]string // raw value by flag name, for the flags given
}

// newFlagSet defines --config and one flag per setting. Each value is checked for its type
// when parsed, so a mistake is reported by the flag package with the usage.
func newFlagSet() *flagSet {
	f := &flagSet{
		set:    flag.NewFlagSet("fyr", flag.ContinueOnError),
		values: make(map[string]string),
	}
	f.set.SetOutput(os.Stderr)
	f.set.StringVar(&f.config, "config", "", "YAML configuration file")
	for i := range table() {
		s := &table()[i]
		f.set.Var(&flagValue{s: s, values: f.values}, s.Flag, s.Help)
	}
	f.set.Usage = f.usage
	return f
}

// usage lists every flag with its environment variable and default.
func (f *flagSet) usage() {
	w := f.set.Output()
	fmt.Fprintf(w, "Usage of %s:\n", f.set.Name())
	fmt.Fprintf(w, "Precedence, lowest first: defaults, the YAML file, %s… variables, flags.\n", envPrefix)
	fmt.Fprintf(w, "Settings marked (restart) need a restart; the others reload on SIGHUP or file save.\n\n")
	fmt.Fprintf(w, "  --config FILE\n    \tYAML configuration file, created with every setting commented out if missing\n")
	fmt.Fprintf(w, "    \t(default <data-dir>/%s; env %s)\n", DefaultConfigFile, envConfig)
	for _, s := range table() {
		arg := " " + placeholder(s.typ)
		if s.typ.Kind() == reflect.Bool {
			arg = ""
		}
		restart := ""
		if !s.Reload {
			restart = " (restart)"
		}
		fmt.Fprintf(w, "  --%s%s\n    \t%s%s\n    \t(", s.Flag, arg, s.Help, restart)
		if s.Default != "" {
			fmt.Fprintf(w, "default %s; ", s.Default)
		}
		fmt.Fprintf(w, "env %s; yaml %s)\n", s.Env, s.Key)
	}
}

// placeholder names a flag's argument in the usage.
func placeholder(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.Float64:
		return "number"
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		return "int"
	}
	return "string"
}

// flagValue records one setting's raw flag value after checking that it parses.
type flagValue struct {
	s      *Setting
	values map[string]string
}

func (v *flagValue) Set(raw string) error {
	if _, err := v.s.parse(raw); err != nil {
		return err
	}
	v.values[v.s.Flag] = raw
	return nil
}

func (v *flagValue) String() string {
	if v == nil || v.s == nil {
		return ""
	}
	if raw, ok := v.values[v.s.Flag]; ok && !v.s.Secret {
		return raw
	}
	return v.s.Default
}

// IsBoolFlag lets a bool be given as --open-registration as well as --open-registration=false.
func (v *flagValue) IsBoolFlag() bool {
	return v != nil && v.s != nil && v.s.typ.Kind() == reflect.Bool
}
