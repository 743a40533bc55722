package config

import (
	"fmt"
	"strings"
)

// Reference returns a Markdown table of every setting, for the README: YAML key, flag,
// environment variable, default, whether a running server reloads it, and its help. Secret
// defaults are left empty.
func Reference() string {
	var b strings.Builder
	b.WriteString("| YAML key | flag | environment | default | reload | meaning |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, s := range table() {
		def := ""
		if s.Default != "" && !s.Secret {
			def = "`" + s.Default + "`"
		}
		reload := "restart"
		if s.Reload {
			reload = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | `--%s` | `%s` | %s | %s | %s |\n",
			s.Key, s.Flag, s.Env, def, reload, strings.ReplaceAll(s.Help, "|", `\|`))
	}
	return b.String()
}
