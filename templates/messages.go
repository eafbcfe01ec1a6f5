package templates

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"path"
	"slices"
	"strings"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// msgSource is one messages file.
type msgSource struct {
	data   []byte
	origin string
}

// catalogue is one language's messages, English filled in for every key
// the language does not have.
type catalogue struct {
	name string // canonical BCP 47 tag, e.g. "de", "pt-BR"
	tag  language.Tag
	msgs map[string]string
	dir  string // "ltr" or "rtl", from the "meta.dir" message
}

// Keys with these prefixes may be added by operators even though the
// embedded English catalogue does not have them: custom.* for their own
// templates, scope.* to describe their own scopes on the confirm page.
// Any other unknown key is an error, so a misspelt key does not silently
// do nothing.
var freeKeyPrefixes = []string{"custom.", "scope."}

func embeddedMessages() (map[string][]msgSource, error) {
	entries, err := embedded.ReadDir("messages")
	if err != nil {
		return nil, fmt.Errorf("embedded messages: %v", err)
	}
	out := map[string][]msgSource{}
	for _, e := range entries {
		name := e.Name()
		lang, ok := strings.CutSuffix(name, ".json")
		if !ok {
			continue
		}
		tag, err := parseCatalogueTag(lang)
		if err != nil {
			return nil, fmt.Errorf("embedded messages/%s: %v", name, err)
		}
		b, err := embedded.ReadFile(path.Join("messages", name))
		if err != nil {
			return nil, fmt.Errorf("embedded messages/%s: %v", name, err)
		}
		out[tag] = append(out[tag], msgSource{data: b, origin: "embedded messages/" + name})
	}
	return out, nil
}

// parseCatalogueTag canonicalises a language tag from a file name.
func parseCatalogueTag(s string) (string, error) {
	tag, err := language.Parse(s)
	if err != nil || tag == language.Und {
		return "", fmt.Errorf("%q is not a language tag (BCP 47, e.g. de, pt-BR)", s)
	}
	return tag.String(), nil
}

func decodeMessages(src msgSource) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(src.data))
	var m map[string]string
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %v (want a JSON object of strings)", src.origin, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: trailing data after the JSON object", src.origin)
	}
	return m, nil
}

// buildCatalogues merges the message files into one catalogue per
// language: English first (the fallback and the matcher's default), then
// the others in tag order. Within a language, later files (overrides)
// replace earlier ones (embedded) key by key.
func buildCatalogues(files map[string][]msgSource) ([]*catalogue, error) {
	enSrc := files["en"]
	if len(enSrc) == 0 {
		return nil, fmt.Errorf("no English messages (embedded messages/en.json)")
	}
	// The embedded English file defines the set of known keys.
	known, err := decodeMessages(enSrc[0])
	if err != nil {
		return nil, err
	}
	// Languages may need plural forms English does not have (few, many...).
	for _, unit := range []string{"seconds", "minutes", "hours"} {
		for _, form := range pluralForms {
			known["duration."+unit+"."+form] = ""
		}
	}

	merge := func(name string, into map[string]string) error {
		for _, src := range files[name] {
			m, err := decodeMessages(src)
			if err != nil {
				return err
			}
			for _, k := range slices.Sorted(maps.Keys(m)) {
				if _, ok := known[k]; !ok && !hasFreePrefix(k) {
					return fmt.Errorf("%s: unknown message key %q (new keys must start with %s)",
						src.origin, k, strings.Join(freeKeyPrefixes, " or "))
				}
				if k == "meta.dir" && m[k] != "ltr" && m[k] != "rtl" {
					return fmt.Errorf("%s: meta.dir is %q, want \"ltr\" or \"rtl\"", src.origin, m[k])
				}
				into[k] = m[k]
			}
		}
		return nil
	}

	en := map[string]string{}
	if err := merge("en", en); err != nil {
		return nil, err
	}
	cats := []*catalogue{newCatalogue("en", en)}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if name == "en" {
			continue
		}
		msgs := maps.Clone(en)
		if err := merge(name, msgs); err != nil {
			return nil, err
		}
		cats = append(cats, newCatalogue(name, msgs))
	}
	return cats, nil
}

func newCatalogue(name string, msgs map[string]string) *catalogue {
	dir := msgs["meta.dir"]
	if dir == "" {
		dir = "ltr"
	}
	return &catalogue{name: name, tag: language.Make(name), msgs: msgs, dir: dir}
}

func hasFreePrefix(k string) bool {
	for _, p := range freeKeyPrefixes {
		if strings.HasPrefix(k, p) && len(k) > len(p) {
			return true
		}
	}
	return false
}

// funcs are the template functions, bound to this language.
func (c *catalogue) funcs() template.FuncMap {
	return template.FuncMap{
		"t":         c.translate,
		"errorText": c.errorText,
		"scopeText": c.scopeText,
		"duration":  c.duration,
		"ago":       c.ago,
		"place":     c.place,
		"where":     c.where,
		"lang":      func() string { return c.name },
		"dir":       func() string { return c.dir },
	}
}

// translate returns the message for key, formatted with args (fmt verbs,
// e.g. %s, %[1]d) if there are any. An unknown key is an error, which New's
// sample rendering turns into a provisioning error.
func (c *catalogue) translate(key string, args ...any) (string, error) {
	msg, ok := c.msgs[key]
	if !ok {
		return "", fmt.Errorf("unknown message key %q", key)
	}
	if len(args) > 0 {
		msg = fmt.Sprintf(msg, args...)
	}
	return msg, nil
}

// errorText is the message for a PageData.Error key ("error.<key>"), or
// the generic "error.unknown" for "" and keys without a message, so a new
// error kind in the flow package never breaks a page.
func (c *catalogue) errorText(key string) string {
	if msg, ok := c.msgs["error."+key]; ok && key != "" {
		return msg
	}
	return c.msgs["error.unknown"]
}

// scopeText describes a scope in words ("scope.<scope>"), or "" if there
// is no description for it.
func (c *catalogue) scopeText(scope string) string {
	return c.msgs["scope."+scope]
}

// duration says a number of seconds in words, rounded up to a unit that
// reads well: seconds below one minute, minutes up to two hours, then
// hours. Plural forms follow CLDR rules for the language
// ("duration.minutes.one", ".few", ".other", ...), falling back to ".other".
func (c *catalogue) duration(seconds int) string {
	unit, n := "seconds", max(seconds, 1)
	switch {
	case seconds >= 2*3600+1:
		unit, n = "hours", (seconds+3599)/3600
	case seconds >= 60:
		unit, n = "minutes", (seconds+59)/60
	}
	return c.count(unit, n)
}

// ago is duration for the past, rounded down ("asked 2 minutes ago" for
// 150 seconds): seconds below one minute, minutes below two hours, then
// hours.
func (c *catalogue) ago(seconds int) string {
	unit, n := "seconds", max(seconds, 1)
	switch {
	case seconds >= 2*3600:
		unit, n = "hours", seconds/3600
	case seconds >= 60:
		unit, n = "minutes", seconds/60
	}
	return c.count(unit, n)
}

// count says n of a unit ("seconds", "minutes", "hours") in words.
func (c *catalogue) count(unit string, n int) string {
	key := "duration." + unit + "."
	form := plural.Cardinal.MatchPlural(c.tag, n, 0, 0, 0, 0)
	msg, ok := c.msgs[key+pluralForms[form]]
	if !ok {
		msg = c.msgs[key+"other"]
	}
	return fmt.Sprintf(msg, n)
}

var pluralForms = map[plural.Form]string{
	plural.Other: "other", plural.Zero: "zero", plural.One: "one",
	plural.Two: "two", plural.Few: "few", plural.Many: "many",
}

// place names a place in the page's language ("Berlin, Germany"), or ""
// when p is nil or holds no name: the city and country names in this
// language, else in its base language (pt for pt-BR), else in English;
// the country's ISO code when it has no name.
func (c *catalogue) place(p *flow.Place) string {
	if p == nil {
		return ""
	}
	country := c.localName(p.CountryNames)
	if country == "" {
		country = p.Country
	}
	city := c.localName(p.CityNames)
	switch {
	case city != "" && country != "":
		return city + ", " + country
	case city != "":
		return city
	}
	return country
}

func (c *catalogue) localName(names map[string]string) string {
	if n := names[c.name]; n != "" {
		return n
	}
	if base, _, ok := strings.Cut(c.name, "-"); ok {
		if n := names[base]; n != "" {
			return n
		}
	}
	return names["en"]
}

// where is a network and, if known, its place: "198.51.100.x (Berlin,
// Germany)"; "" when the network is unknown.
func (c *catalogue) where(network string, p *flow.Place) string {
	if network == "" {
		return ""
	}
	if name := c.place(p); name != "" {
		return network + " (" + name + ")"
	}
	return network
}
