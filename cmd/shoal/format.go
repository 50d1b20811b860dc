package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"
)

// Output formatting shared by the commands: --format Go templates, docker
// style tables and human-readable units.

// templateFuncs are the functions --format templates may call.
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"json": func(v any) (string, error) {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(v); err != nil {
				return "", err
			}
			return strings.TrimSpace(buf.String()), nil
		},
		"upper": strings.ToUpper,
		"lower": strings.ToLower,
		"join":  strings.Join,
		"split": strings.Split,
		"truncate": func(s string, n int) string {
			if r := []rune(s); len(r) > n {
				return string(r[:n])
			}
			return s
		},
	}
}

// templateFormat is a parsed --format value. With a "table " prefix the
// rows are aligned in columns under a header.
type templateFormat struct {
	table bool
	tmpl  *template.Template
}

// parseFormat parses a --format value: "json" is shorthand for one JSON
// document per object, a "table" prefix asks for a table, and the escapes
// \t and \n stand for a tab and a newline.
func parseFormat(format string) (*templateFormat, error) {
	f := &templateFormat{}
	text := format
	if strings.TrimSpace(text) == "json" {
		text = "{{json .}}"
	}
	if rest, ok := strings.CutPrefix(text, "table"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
		f.table = true
		text = strings.TrimLeft(rest, " ")
	}
	text = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(text)
	t, err := template.New("").Funcs(templateFuncs()).Option("missingkey=zero").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %v", err)
	}
	f.tmpl = t
	return f, nil
}

// execute renders one object followed by a newline.
func (f *templateFormat) execute(w io.Writer, v any) error {
	var buf bytes.Buffer
	if err := f.tmpl.Execute(&buf, v); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// render writes a list of objects: one line each or, for a table, aligned
// columns under a header row made by running the template over header (a
// map from field name to column title).
func (f *templateFormat) render(w io.Writer, header map[string]string, items []any) error {
	var out io.Writer = w
	var tw *tabwriter.Writer
	if f.table {
		tw = tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		out = tw
		if err := f.execute(out, header); err != nil {
			return err
		}
	}
	for _, it := range items {
		if err := f.execute(out, it); err != nil {
			return err
		}
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// headerFor returns column titles for fields: the given titles, and the
// upper-cased field name for any other field.
func headerFor(fields []string, titles map[string]string) map[string]string {
	h := make(map[string]string, len(fields))
	for _, f := range fields {
		if t, ok := titles[f]; ok {
			h[f] = t
		} else {
			h[f] = strings.ToUpper(f)
		}
	}
	return h
}

// writeJSON writes v as indented JSON, as docker's inspect commands do.
func writeJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "    ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// humanDuration words a duration roughly ("5 seconds", "3 months").
func humanDuration(d time.Duration) string {
	secs := int64(d.Seconds())
	switch {
	case secs < 1:
		return "Less than a second"
	case secs == 1:
		return "1 second"
	case secs < 60:
		return fmt.Sprintf("%d seconds", secs)
	}
	mins := int64(d.Minutes())
	switch {
	case mins == 1:
		return "About a minute"
	case mins < 60:
		return fmt.Sprintf("%d minutes", mins)
	}
	hours := int64(math.Round(d.Hours()))
	const day, week, month, year = 24, 24 * 7, 24 * 30, 24 * 365
	switch {
	case hours == 1:
		return "About an hour"
	case hours < 2*day:
		return fmt.Sprintf("%d hours", hours)
	case hours < 2*week:
		return fmt.Sprintf("%d days", hours/day)
	case hours < 2*month:
		return fmt.Sprintf("%d weeks", hours/week)
	case hours < 2*year:
		return fmt.Sprintf("%d months", hours/month)
	}
	return fmt.Sprintf("%d years", int64(d.Hours())/year)
}

// binarySize words a byte count with binary units ("7.704GiB").
func binarySize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n)
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.4g%s", v, units[i])
}

// capitalize upper-cases the first letter of s.
func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
