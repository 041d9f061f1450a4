package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var durationType = reflect.TypeOf(time.Duration(0))

// yamlName returns the yaml key of a struct field, or "" if it has none.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

// fieldByKey finds the field of struct type t whose yaml key is key.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); yamlName(f) != "" && yamlName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// eachLeaf calls fn for every section.key leaf of the Config pointed to by
// c, in declaration order, with a settable value.
func eachLeaf(c *Config, fn func(section, key string, v reflect.Value)) {
	root := reflect.ValueOf(c).Elem()
	for i := 0; i < root.NumField(); i++ {
		section := yamlName(root.Type().Field(i))
		if section == "" {
			continue
		}
		sv := root.Field(i)
		for j := 0; j < sv.NumField(); j++ {
			if key := yamlName(sv.Type().Field(j)); key != "" {
				fn(section, key, sv.Field(j))
			}
		}
	}
}

// EnvName returns the environment variable for a YAML key given as section
// and key: EnvName("redis", "url") is "PIGEONPOST_REDIS_URL".
func EnvName(section, key string) string {
	return "PIGEONPOST_" + strings.ToUpper(section) + "_" + strings.ToUpper(key)
}

// EnvNames lists the environment variable of every key, in the order of
// the Config's fields: deployment files are checked against it.
func EnvNames() []string {
	var names []string
	eachLeaf(&Config{}, func(section, key string, _ reflect.Value) {
		names = append(names, EnvName(section, key))
	})
	return names
}

// applyEnv overrides every leaf whose environment variable is non-empty.
func applyEnv(c *Config, getenv func(string) string) error {
	var problems []string
	eachLeaf(c, func(section, key string, v reflect.Value) {
		name := EnvName(section, key)
		raw := getenv(name)
		if raw == "" {
			return
		}
		if err := setFromString(v, raw); err != nil {
			problems = append(problems, name+": "+err.Error())
		}
	})
	if len(problems) > 0 {
		return &ValidationError{Problems: problems}
	}
	return nil
}

// setFromString parses raw into v according to v's type. Error messages
// never quote string values (they may be secrets).
func setFromString(v reflect.Value, raw string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("invalid duration %q (want a number with a unit, e.g. \"90s\", \"5m\", \"1h\")", raw)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported type %s", v.Type())
		}
		var list []string
		for item := range strings.SplitSeq(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		v.Set(reflect.ValueOf(list))
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("invalid boolean %q (want true or false)", raw)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, v.Type().Bits())
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return fmt.Errorf("integer %q out of range", raw)
			}
			return fmt.Errorf("invalid integer %q", raw)
		}
		v.SetInt(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(raw), v.Type().Bits())
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("invalid number %q", raw)
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// lintYAML walks a parsed document against Config's yaml tags and reports
// every unknown or duplicate key, every empty (null) value and every value
// that does not decode into its field, each prefixed by its dotted key.
func lintYAML(doc *yaml.Node) []string {
	root := doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	root = deref(root)
	if isNull(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return []string{fmt.Sprintf("line %d: the top level must be a mapping of sections (smtp:, http:, ...)", root.Line)}
	}
	var problems []string
	lintMapping(root, reflect.TypeOf(Config{}), "", &problems)
	return problems
}

func lintMapping(n *yaml.Node, t reflect.Type, prefix string, problems *[]string) {
	add := func(format string, args ...any) {
		*problems = append(*problems, fmt.Sprintf(format, args...))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			continue // merge keys (<<) are left to the decoder
		}
		if k.Kind != yaml.ScalarNode {
			add("%sline %d: keys must be plain strings", orPrefix(prefix), k.Line)
			continue
		}
		full := k.Value
		if prefix != "" {
			full = prefix + "." + k.Value
		}
		if first, dup := seen[k.Value]; dup {
			add("%s: duplicate key (line %d, first at line %d)", full, k.Line, first)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fieldByKey(t, k.Value)
		if !ok {
			add("%s: unknown key (line %d)", full, k.Line)
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			if isNull(v) {
				continue // "smtp:" with nothing under it changes nothing
			}
			if v.Kind != yaml.MappingNode {
				add("%s: line %d: must be a mapping of keys", full, v.Line)
				continue
			}
			lintMapping(v, f.Type, full, problems)
			continue
		}
		if isNull(v) {
			add("%s: line %d: no value (write \"\" for an empty string)", full, k.Line)
			continue
		}
		if err := v.Decode(reflect.New(f.Type).Interface()); err != nil {
			msg := flattenYAMLError(err).Error()
			if f.Type == durationType {
				msg += ` (durations need a unit, e.g. "90s", "5m", "1h")`
			}
			add("%s: %s", full, msg)
		}
	}
}

func orPrefix(prefix string) string {
	if prefix == "" {
		return ""
	}
	return prefix + ": "
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// flattenYAMLError turns yaml.v3's multi-line errors into one line.
func flattenYAMLError(err error) error {
	if te, ok := err.(*yaml.TypeError); ok {
		return fmt.Errorf("%s", oneLine(strings.Join(te.Errors, "; ")))
	}
	return fmt.Errorf("%s", oneLine(strings.TrimPrefix(err.Error(), "yaml: ")))
}
