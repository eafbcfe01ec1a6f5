// Package templates is the embedded, overridable implementation of
// flow.Renderer: the HTML pages a person sees while approving a device
// (enter the code, confirm, success, denied, expired, error, too many
// attempts), in several languages.
//
// The pages are html/template files embedded in the binary. [New] parses
// them once, optionally replacing any of them, and adding or overriding
// messages, from an operator's directory, and renders every page in every
// language with sample data so that a broken override fails at
// provisioning (caddy validate), not at request time. Rendering picks the
// language from PageData.AcceptLanguage and executes a pre-built,
// per-language clone of the page's template; nothing is parsed per request.
//
// See README.md in this directory for the data available to templates, the
// template functions and the message keys.
package templates

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/text/language"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

//go:embed *.html messages/*.json
var embedded embed.FS

// LayoutFile is the shared layout every page may use ({{template "layout" .}}).
const LayoutFile = "layout.html"

// PageNames are the pages, in the order they are listed in errors and docs.
var PageNames = []string{
	flow.PageEnter, flow.PageConfirm, flow.PageSuccess, flow.PageDenied,
	flow.PageExpired, flow.PageError, flow.PageTooMany, flow.PageTooFar,
}

// Pages renders the device-flow pages. It is safe for concurrent use; it
// implements flow.Renderer.
type Pages struct {
	langs   []*langPages // langs[0] is English, the fallback
	matcher language.Matcher
}

var _ flow.Renderer = (*Pages)(nil)

// langPages is one language's ready-to-execute page templates.
type langPages struct {
	cat   *catalogue
	pages map[string]*template.Template // page name -> clone with this language's functions
}

// source is one template file's text and where it came from.
type source struct {
	text   string
	origin string // "embedded enter.html" or "override /path/to/enter.html", for errors
	path   string // the override file's path; "" if embedded
}

// New parses the embedded pages and messages and, if overrideDir is not
// empty, the operator's replacements in it:
//
//   - <page>.html or layout.html replaces the embedded file of that name;
//     any other *.html name is an error (a typo must not silently do nothing);
//   - messages.<lang>.json (lang a BCP 47 tag such as de, pt-BR) adds to or
//     overrides the messages of that language, which may be a new one; any
//     other *.json name is an error;
//   - other files (and hidden files, and subdirectories) are ignored.
//
// Every page is then rendered in every language with representative data;
// a file that fails to parse or to execute is an error that names it.
func New(overrideDir string) (*Pages, error) {
	files := map[string]source{}
	for _, name := range append([]string{LayoutFile}, pageFiles()...) {
		b, err := embedded.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("embedded %s: %v", name, err)
		}
		files[name] = source{text: string(b), origin: "embedded " + name}
	}
	msgFiles, err := embeddedMessages()
	if err != nil {
		return nil, err
	}

	if overrideDir != "" {
		if err := readOverrides(overrideDir, files, msgFiles); err != nil {
			return nil, err
		}
	}

	cats, err := buildCatalogues(msgFiles)
	if err != nil {
		return nil, err
	}

	p := &Pages{}
	tags := make([]language.Tag, len(cats))
	for i, c := range cats {
		tags[i] = c.tag
		p.langs = append(p.langs, &langPages{cat: c, pages: map[string]*template.Template{}})
	}
	p.matcher = language.NewMatcher(tags)

	for _, page := range PageNames {
		layout, pg := files[LayoutFile], files[page+".html"]
		// "page" names the page being shown, for the layout's
		// <body data-page> (styling hooks, and how tests tell pages apart).
		pageName := template.FuncMap{"page": func() string { return page }}
		root, err := template.New(LayoutFile).Funcs(cats[0].funcs()).Funcs(pageName).Parse(layout.text)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", layout.origin, err)
		}
		if _, err := root.New(page + ".html").Parse(pg.text); err != nil {
			return nil, fmt.Errorf("%s: %v", pg.origin, err)
		}
		for _, lp := range p.langs {
			c, err := root.Clone()
			if err != nil {
				return nil, fmt.Errorf("%s: %v", pg.origin, err)
			}
			lp.pages[page] = c.Funcs(lp.cat.funcs()).Funcs(pageName)
		}
		// Render once per language and sample: this runs html/template's
		// escaper (which reports some errors only now) and catches
		// execution errors such as unknown fields or message keys.
		for _, lp := range p.langs {
			for _, data := range samples(page) {
				if err := lp.pages[page].ExecuteTemplate(io.Discard, page+".html", data); err != nil {
					return nil, fmt.Errorf("%s: rendering page %q in %q: %v",
						blame(err, pg, layout), page, lp.cat.name, err)
				}
			}
		}
	}
	return p, nil
}

// blame says which file an execution error is in. The embedded files are
// known to work together, so an override is to blame if only one of the
// two is overridden; if both are, the error's position decides (the
// escaper reports some errors against the executed page, not the file
// that caused them, hence naming both when unsure).
func blame(err error, page, layout source) string {
	switch {
	case page.path == "" && layout.path == "":
		return page.origin
	case page.path == "":
		return layout.origin
	case layout.path == "":
		return page.origin
	}
	msg := err.Error()
	if strings.Contains(msg, LayoutFile+":") {
		return layout.origin
	}
	if strings.Contains(msg, ": executing ") { // a runtime error, positioned in the page
		return page.origin
	}
	return page.origin + " (or " + layout.origin + ")"
}

func pageFiles() []string {
	out := make([]string, len(PageNames))
	for i, p := range PageNames {
		out[i] = p + ".html"
	}
	return out
}

func readOverrides(dir string, files map[string]source, msgFiles map[string][]msgSource) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("override directory: %v", err)
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		if strings.HasPrefix(name, ".") {
			continue
		}
		ext := filepath.Ext(name)
		if ext != ".html" && ext != ".json" {
			continue
		}
		fi, err := os.Stat(path) // follows symlinks
		if err != nil {
			return fmt.Errorf("override %s: %v", path, err)
		}
		if fi.IsDir() {
			continue
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("override %s: not a regular file", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("override %s: %v", path, err)
		}
		switch ext {
		case ".html":
			if _, ok := files[name]; !ok {
				return fmt.Errorf("override %s: unknown template %q (known: %s)",
					path, name, strings.Join(append([]string{LayoutFile}, pageFiles()...), ", "))
			}
			files[name] = source{text: string(b), origin: "override " + path, path: path}
		case ".json":
			lang, ok := strings.CutPrefix(strings.TrimSuffix(name, ".json"), "messages.")
			if !ok || lang == "" {
				return fmt.Errorf("override %s: unknown file %q (messages are messages.<lang>.json, e.g. messages.de.json)", path, name)
			}
			tag, err := parseCatalogueTag(lang)
			if err != nil {
				return fmt.Errorf("override %s: %v", path, err)
			}
			msgFiles[tag] = append(msgFiles[tag], msgSource{data: b, origin: "override " + path})
		}
	}
	return nil
}

// Render writes page in the language that best matches
// data.AcceptLanguage (English if none does).
func (p *Pages) Render(w io.Writer, page string, data *flow.PageData) error {
	if data == nil {
		data = &flow.PageData{}
	}
	lp := p.langs[p.pick(data.AcceptLanguage)]
	t, ok := lp.pages[page]
	if !ok {
		return fmt.Errorf("unknown page %q", page)
	}
	return t.ExecuteTemplate(w, page+".html", data)
}

// Languages lists the available languages (BCP 47 tags), English first.
func (p *Pages) Languages() []string {
	out := make([]string, len(p.langs))
	for i, lp := range p.langs {
		out[i] = lp.cat.name
	}
	return out
}

// pick returns the index in p.langs of the best language for an
// Accept-Language header value; 0 (English) if nothing matches.
func (p *Pages) pick(acceptLanguage string) int {
	prefs := parseAcceptLanguage(acceptLanguage)
	if len(prefs) == 0 {
		return 0
	}
	_, idx, conf := p.matcher.Match(prefs...)
	if conf == language.No || idx < 0 || idx >= len(p.langs) {
		return 0
	}
	return idx
}

// Accept-Language limits: the header is attacker-controlled.
const (
	maxAcceptLanguage = 1024
	maxLanguagePrefs  = 16
)

// parseAcceptLanguage returns the acceptable languages, most preferred
// first (by q-value, then by order). Unlike language.ParseAcceptLanguage it
// skips a malformed entry instead of rejecting the whole header. Entries
// with q=0 ("not acceptable") are dropped; the wildcard "*" stands for
// English, the language used when nothing else matches.
func parseAcceptLanguage(h string) []language.Tag {
	if len(h) > maxAcceptLanguage {
		h = h[:maxAcceptLanguage]
		if i := strings.LastIndexByte(h, ','); i >= 0 {
			h = h[:i]
		}
	}
	type pref struct {
		tag language.Tag
		q   float64
	}
	var prefs []pref
	for entry := range strings.SplitSeq(h, ",") {
		if len(prefs) == maxLanguagePrefs {
			break
		}
		name, params, _ := strings.Cut(entry, ";")
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		q, ok := qValue(params)
		if !ok || q == 0 {
			continue
		}
		tag := language.English // "*": any language, so the fallback
		if name != "*" {
			var err error
			if tag, err = language.Parse(name); err != nil {
				continue
			}
		}
		prefs = append(prefs, pref{tag, q})
	}
	sort.SliceStable(prefs, func(i, j int) bool { return prefs[i].q > prefs[j].q })
	out := make([]language.Tag, len(prefs))
	for i, p := range prefs {
		out[i] = p.tag
	}
	return out
}

// qValue reads the q parameter of an Accept-Language entry ("q=0.8";
// RFC 9110 §12.4.2: 0 to 1, at most three decimals). Absent means 1.
func qValue(params string) (float64, bool) {
	q := 1.0
	for param := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(param), "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		v = strings.TrimSpace(v)
		if !validQ(v) {
			return 0, false
		}
		q = parseQ(v)
	}
	return q, true
}

func validQ(v string) bool {
	if v == "" || len(v) > 5 {
		return false
	}
	whole, frac, hasDot := strings.Cut(v, ".")
	if whole != "0" && whole != "1" {
		return false
	}
	if !hasDot {
		return true
	}
	if len(frac) > 3 {
		return false
	}
	for _, c := range frac {
		if c < '0' || c > '9' || (whole == "1" && c != '0') {
			return false
		}
	}
	return true
}

func parseQ(v string) float64 {
	whole, frac, _ := strings.Cut(v, ".")
	if whole == "1" {
		return 1
	}
	q, scale := 0.0, 0.1
	for _, c := range frac {
		q += float64(c-'0') * scale
		scale /= 10
	}
	return q
}
