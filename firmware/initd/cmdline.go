package initd

import "strings"

// ParseCmdline splits a kernel command line (/proc/cmdline) into its key=value
// parameters; a bare word maps to "". Double quotes group a value with spaces, as the
// kernel's own parser does. Later duplicates win.
func ParseCmdline(s string) map[string]string {
	params := map[string]string{}
	var word strings.Builder
	inQuote := false
	flush := func() {
		if word.Len() == 0 {
			return
		}
		k, v, _ := strings.Cut(word.String(), "=")
		params[k] = v
		word.Reset()
	}
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			flush()
		default:
			word.WriteRune(r)
		}
	}
	flush()
	return params
}
