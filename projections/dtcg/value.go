package dtcg

import (
	"encoding/json"
	"strconv"
	"strings"
)

// ValidateValue checks that v, a raw JSON value, is a valid $value for a token
// of type typ, which must be one of Types. It uses DefaultLimits.
//
// A whole-value alias ("{group.token}") is accepted for every type, and an
// alias is accepted wherever DTCG 2025.10 lets a composite sub-value be a
// reference (a border's color, width and style; a transition's duration,
// delay and timingFunction; a shadow's color, offsets, blur and spread and
// each element of a shadow array; each gradient element and a stop's color
// and position; each dashArray element; each typography property). Aliases
// are only checked for syntax, never resolved. Aliases are not accepted
// inside simple values (color components, a dimension's value, fontFamily
// array elements, cubicBezier numbers, ...), as the spec does not allow it.
//
// Both the 2025.10 object forms and the older string forms are accepted for
// color, dimension and duration; see the package documentation for details.
// The returned error is an *Error whose Field is the location inside the
// value, e.g. "$value.components[1]" or "$value[0].offsetX.unit".
func ValidateValue(typ string, v json.RawMessage) error {
	return asError(validateValue(typ, v, DefaultLimits))
}

func validateValue(typ string, v []byte, lim Limits) *Error {
	t := lookupType(typ)
	if t == tInvalid {
		return newErr("$type", "unknown type "+quote(typ)+"; must be one of "+strings.Join(Types, ", "))
	}
	if e := precheck(v, lim); e != nil {
		return e
	}
	p := getParser(v, lim)
	defer putParser(p)
	if e := p.parse(); e != nil {
		return e.in("$value")
	}
	if e := p.sub(t, 0); e != nil {
		return e.in("$value")
	}
	return nil
}

// sub validates node i as a value of type t that may also be an alias.
func (p *parser) sub(t typeID, i int32) *Error {
	if p.nodes[i].kind == kString {
		if s := p.str(i); aliasLike(s) {
			return checkAliasString(s)
		}
	}
	return p.typed(t, i)
}

// typed validates node i as an explicit (non-alias) value of type t.
func (p *parser) typed(t typeID, i int32) *Error {
	switch t {
	case tColor:
		return p.color(i)
	case tDimension:
		return p.dimension(i)
	case tFontFamily:
		return p.fontFamily(i)
	case tFontWeight:
		return p.fontWeight(i)
	case tDuration:
		return p.duration(i)
	case tCubicBezier:
		return p.cubicBezier(i)
	case tNumber:
		return p.numberValue(i)
	case tStrokeStyle:
		return p.strokeStyle(i)
	case tBorder:
		return p.border(i)
	case tTransition:
		return p.transition(i)
	case tShadow:
		return p.shadow(i)
	case tGradient:
		return p.gradient(i)
	case tTypography:
		return p.typography(i)
	}
	return newErr("", "unknown type")
}

const refUnsupported = `JSON Pointer "$ref" references are not supported; use a curly brace alias such as "{group.token}" where the spec allows one`

// wrong builds a type-mismatch error for node i. An object carrying "$ref"
// (a 2025.10 JSON Pointer property reference) gets a specific message.
func (p *parser) wrong(i int32, msg string) *Error {
	if p.nodes[i].kind == kObject {
		for k := i + 1; k < p.end(i); k = p.after(k + 1) {
			if string(p.str(k)) == "$ref" {
				return newErr("", refUnsupported)
			}
		}
	}
	return newErr("", msg+", got "+p.describe(i))
}

// describe names the JSON kind of node i for error messages.
func (p *parser) describe(i int32) string {
	n := &p.nodes[i]
	switch n.kind {
	case kNull:
		return "null"
	case kFalse:
		return "false"
	case kTrue:
		return "true"
	case kNumber:
		lit := p.b[n.start:n.end]
		if len(lit) > maxQuoted {
			return string(lit[:maxQuoted]) + "…"
		}
		return string(lit)
	case kString:
		return "string " + quoteBytes(p.str(i))
	case kArray:
		return "an array"
	}
	return "an object"
}

// fields matches the members of object node obj against names, storing the
// value node index of each in out (or -1 when absent). It rejects unknown and
// duplicate keys. what names the object in messages.
func (p *parser) fields(obj int32, names []string, out []int32, what string) *Error {
	for j := range out {
		out[j] = -1
	}
	for k := obj + 1; k < p.end(obj); {
		v := k + 1
		key := p.str(k)
		j := 0
		for j < len(names) && string(key) != names[j] {
			j++
		}
		if j == len(names) {
			if string(key) == "$ref" {
				return newErr(p.keySeg(k), refUnsupported)
			}
			return newErr(p.keySeg(k), "unknown property; "+what+" may only have "+strings.Join(names, ", "))
		}
		if out[j] >= 0 {
			return newErr(p.keySeg(k), "duplicate key")
		}
		out[j] = v
		k = p.after(v)
	}
	return nil
}

func missing(name string) *Error {
	return newErr("", "missing required property "+strconv.Quote(name))
}

// requireAll reports the first absent property among names.
func requireAll(names []string, got []int32) *Error {
	for j, v := range got {
		if v < 0 {
			return missing(names[j])
		}
	}
	return nil
}

// num returns the number held by node i, or an error naming want.
func (p *parser) num(i int32, want string) (float64, *Error) {
	if p.nodes[i].kind != kNumber {
		return 0, p.wrong(i, "must be "+want)
	}
	return p.numVal(i), nil
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// ---- color (color module 2025.10, section 4) ----

var colorFields = []string{"colorSpace", "components", "alpha", "hex"}

type compKind uint8

const (
	cUnit      compKind = iota // [0, 1]
	cHue                       // [0, 360)
	cPercent                   // [0, 100]
	cChroma                    // [0, +inf)
	cUnbounded                 // (-inf, +inf)
)

type colorSpace struct {
	name  string
	comps [3]compKind
	names [3]string
}

var colorSpaces = []colorSpace{
	{"srgb", [3]compKind{cUnit, cUnit, cUnit}, [3]string{"red", "green", "blue"}},
	{"srgb-linear", [3]compKind{cUnit, cUnit, cUnit}, [3]string{"red", "green", "blue"}},
	{"hsl", [3]compKind{cHue, cPercent, cPercent}, [3]string{"hue", "saturation", "lightness"}},
	{"hwb", [3]compKind{cHue, cPercent, cPercent}, [3]string{"hue", "whiteness", "blackness"}},
	{"lab", [3]compKind{cPercent, cUnbounded, cUnbounded}, [3]string{"lightness", "a", "b"}},
	{"lch", [3]compKind{cPercent, cChroma, cHue}, [3]string{"lightness", "chroma", "hue"}},
	{"oklab", [3]compKind{cUnit, cUnbounded, cUnbounded}, [3]string{"lightness", "a", "b"}},
	{"oklch", [3]compKind{cUnit, cChroma, cHue}, [3]string{"lightness", "chroma", "hue"}},
	{"display-p3", [3]compKind{cUnit, cUnit, cUnit}, [3]string{"red", "green", "blue"}},
	{"a98-rgb", [3]compKind{cUnit, cUnit, cUnit}, [3]string{"red", "green", "blue"}},
	{"prophoto-rgb", [3]compKind{cUnit, cUnit, cUnit}, [3]string{"red", "green", "blue"}},
	{"rec2020", [3]compKind{cUnit, cUnit, cUnit}, [3]string{"red", "green", "blue"}},
	{"xyz-d65", [3]compKind{cUnit, cUnit, cUnit}, [3]string{"x", "y", "z"}},
	{"xyz-d50", [3]compKind{cUnit, cUnit, cUnit}, [3]string{"x", "y", "z"}},
}

func colorSpaceNames() string {
	names := make([]string, len(colorSpaces))
	for i, cs := range colorSpaces {
		names[i] = cs.name
	}
	return strings.Join(names, ", ")
}

func (p *parser) color(i int32) *Error {
	switch p.nodes[i].kind {
	case kString:
		if isHexColor(p.str(i), true) {
			return nil
		}
		return newErr("", `must be a color object {"colorSpace", "components"} or a hex color string "#rgb", "#rgba", "#rrggbb" or "#rrggbbaa", got `+p.describe(i))
	case kObject:
	default:
		return p.wrong(i, `must be a color object {"colorSpace", "components", "alpha", "hex"} or a hex color string`)
	}
	var f [4]int32
	if e := p.fields(i, colorFields, f[:], "a color"); e != nil {
		return e
	}
	if e := requireAll(colorFields[:2], f[:2]); e != nil {
		return e
	}
	csNode, compNode, alpha, hex := f[0], f[1], f[2], f[3]
	if p.nodes[csNode].kind != kString {
		return p.wrong(csNode, "must be a color space name").in(".colorSpace")
	}
	name := p.str(csNode)
	var cs *colorSpace
	for j := range colorSpaces {
		if colorSpaces[j].name == string(name) {
			cs = &colorSpaces[j]
			break
		}
	}
	if cs == nil {
		return newErr(".colorSpace", "unknown color space "+quoteBytes(name)+"; must be one of "+colorSpaceNames())
	}
	if p.nodes[compNode].kind != kArray {
		return p.wrong(compNode, "must be an array of 3 components").in(".components")
	}
	n := 0
	for c := compNode + 1; c < p.end(compNode); c = p.after(c) {
		if n < 3 {
			if e := p.component(c, cs, n); e != nil {
				return e.in(".components" + indexSeg(n))
			}
		}
		n++
	}
	if n != 3 {
		return newErr(".components", "color space "+strconv.Quote(cs.name)+" needs exactly 3 components, got "+strconv.Itoa(n))
	}
	if alpha >= 0 {
		a, e := p.num(alpha, "a number between 0 and 1")
		if e != nil {
			return e.in(".alpha")
		}
		if a < 0 || a > 1 {
			return newErr(".alpha", "must be between 0 and 1, got "+fmtNum(a))
		}
	}
	if hex >= 0 {
		if p.nodes[hex].kind != kString {
			return p.wrong(hex, `must be a 6-digit hex color string "#rrggbb"`).in(".hex")
		}
		if s := p.str(hex); !isHexColor(s, false) {
			return newErr(".hex", `must be a 6-digit hex color "#rrggbb" (alpha belongs in "alpha"), got `+quoteBytes(s))
		}
	}
	return nil
}

func (p *parser) component(c int32, cs *colorSpace, idx int) *Error {
	n := &p.nodes[c]
	if n.kind == kString && string(p.str(c)) == "none" {
		return nil
	}
	if n.kind != kNumber {
		return p.wrong(c, `must be a number or "none"`)
	}
	v := p.numVal(c)
	name := cs.names[idx]
	switch cs.comps[idx] {
	case cUnit:
		if v < 0 || v > 1 {
			return newErr("", name+" must be in [0, 1] for "+strconv.Quote(cs.name)+", got "+fmtNum(v))
		}
	case cHue:
		if v < 0 || v >= 360 {
			return newErr("", name+" must be in [0, 360) for "+strconv.Quote(cs.name)+", got "+fmtNum(v))
		}
	case cPercent:
		if v < 0 || v > 100 {
			return newErr("", name+" must be in [0, 100] for "+strconv.Quote(cs.name)+", got "+fmtNum(v))
		}
	case cChroma:
		if v < 0 {
			return newErr("", name+" must not be negative for "+strconv.Quote(cs.name)+", got "+fmtNum(v))
		}
	}
	return nil
}

// isHexColor reports whether s is "#rrggbb" or, when legacy is set, any of
// the CSS hex forms "#rgb", "#rgba", "#rrggbb", "#rrggbbaa".
func isHexColor(s []byte, legacy bool) bool {
	if len(s) == 0 || s[0] != '#' {
		return false
	}
	switch len(s) - 1 {
	case 6:
	case 3, 4, 8:
		if !legacy {
			return false
		}
	default:
		return false
	}
	for _, c := range s[1:] {
		if unhex(c) < 0 {
			return false
		}
	}
	return true
}

// ---- dimension and duration (format module 8.2 and 8.5) ----

var valueUnitFields = []string{"value", "unit"}

// measure validates an object {"value": number, "unit": one of units} or a
// legacy string "<number><unit>" with a unit from legacyUnits.
func (p *parser) measure(i int32, what, example string, units, legacyUnits []string) *Error {
	switch p.nodes[i].kind {
	case kString:
		s := p.str(i)
		if unit, ok := splitNumberUnit(s); ok {
			for _, u := range legacyUnits {
				if string(unit) == u {
					return nil
				}
			}
			if len(unit) == 0 {
				return newErr("", "a "+what+" string needs a unit ("+quoteList(legacyUnits)+"), got "+quoteBytes(s))
			}
			return newErr("", "unsupported "+what+" unit "+quoteBytes(unit)+"; must be one of "+quoteList(legacyUnits))
		}
		return newErr("", `must be a `+what+` object {"value", "unit"} or a string such as `+strconv.Quote(example)+", got "+quoteBytes(s))
	case kObject:
	default:
		return p.wrong(i, `must be a `+what+` object {"value", "unit"}`)
	}
	var f [2]int32
	if e := p.fields(i, valueUnitFields, f[:], "a "+what); e != nil {
		return e
	}
	if e := requireAll(valueUnitFields, f[:]); e != nil {
		return e
	}
	if _, e := p.num(f[0], "a number"); e != nil {
		return e.in(".value")
	}
	u := f[1]
	if p.nodes[u].kind != kString {
		return p.wrong(u, "must be "+quoteList(units)).in(".unit")
	}
	unit := p.str(u)
	for _, ok := range units {
		if string(unit) == ok {
			return nil
		}
	}
	return newErr(".unit", "must be "+quoteList(units)+", got "+quoteBytes(unit))
}

var (
	dimensionUnits       = []string{"px", "rem"}
	legacyDimensionUnits = []string{"px", "rem", "em", "%", "pt"}
	durationUnits        = []string{"ms", "s"}
)

func (p *parser) dimension(i int32) *Error {
	return p.measure(i, "dimension", "16px", dimensionUnits, legacyDimensionUnits)
}

func (p *parser) duration(i int32) *Error {
	return p.measure(i, "duration", "200ms", durationUnits, durationUnits)
}

func quoteList(l []string) string {
	var sb strings.Builder
	for j, s := range l {
		if j > 0 {
			if j == len(l)-1 {
				sb.WriteString(" or ")
			} else {
				sb.WriteString(", ")
			}
		}
		sb.WriteString(strconv.Quote(s))
	}
	return sb.String()
}

// splitNumberUnit splits a legacy string such as "1.5rem" or "-4px" into its
// unit. The number must match -?([0-9]+(\.[0-9]+)?|\.[0-9]+) with no spaces;
// ok is false when it does not.
func splitNumberUnit(s []byte) (unit []byte, ok bool) {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intDigits := i - start
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == fs {
			return nil, false
		}
	} else if intDigits == 0 {
		return nil, false
	}
	return s[i:], true
}

// ---- fontFamily (8.3) ----

func (p *parser) fontFamily(i int32) *Error {
	switch p.nodes[i].kind {
	case kString:
		if len(p.str(i)) == 0 {
			return newErr("", "font name must not be empty")
		}
		return nil
	case kArray:
		n := 0
		for c := i + 1; c < p.end(i); c = p.after(c) {
			if p.nodes[c].kind != kString {
				return p.wrong(c, "must be a font name string").in(indexSeg(n))
			}
			s := p.str(c)
			if len(s) == 0 {
				return newErr(indexSeg(n), "font name must not be empty")
			}
			if aliasLike(s) {
				return newErr(indexSeg(n), "aliases are not allowed inside a fontFamily array; alias the whole value instead")
			}
			n++
		}
		if n == 0 {
			return newErr("", "must contain at least one font name")
		}
		return nil
	}
	return p.wrong(i, "must be a font name string or a non-empty array of font names")
}

// ---- fontWeight (8.4) ----

var fontWeightNames = []string{
	"thin", "hairline", "extra-light", "ultra-light", "light", "normal", "regular", "book",
	"medium", "semi-bold", "demi-bold", "bold", "extra-bold", "ultra-bold", "black", "heavy",
	"extra-black", "ultra-black",
}

func (p *parser) fontWeight(i int32) *Error {
	switch n := &p.nodes[i]; n.kind {
	case kNumber:
		if v := p.numVal(i); v < 1 || v > 1000 {
			return newErr("", "must be in [1, 1000], got "+fmtNum(v))
		}
		return nil
	case kString:
		s := p.str(i)
		for _, w := range fontWeightNames {
			if string(s) == w {
				return nil
			}
		}
		return newErr("", "unknown font weight "+quoteBytes(s)+" (names are case-sensitive); must be a number in [1, 1000] or one of "+strings.Join(fontWeightNames, ", "))
	}
	return p.wrong(i, "must be a number in [1, 1000] or a font weight name such as \"bold\"")
}

// ---- cubicBezier (8.6) ----

func (p *parser) cubicBezier(i int32) *Error {
	if p.nodes[i].kind != kArray {
		return p.wrong(i, "must be an array of 4 numbers [P1x, P1y, P2x, P2y]")
	}
	n := 0
	for c := i + 1; c < p.end(i); c = p.after(c) {
		if n < 4 {
			v, e := p.num(c, "a number")
			if e != nil {
				return e.in(indexSeg(n))
			}
			if (n == 0 || n == 2) && (v < 0 || v > 1) {
				return newErr(indexSeg(n), "x coordinate must be in [0, 1], got "+fmtNum(v))
			}
		}
		n++
	}
	if n != 4 {
		return newErr("", "must have exactly 4 numbers [P1x, P1y, P2x, P2y], got "+strconv.Itoa(n))
	}
	return nil
}

// ---- number (8.7) ----

func (p *parser) numberValue(i int32) *Error {
	_, e := p.num(i, "a number")
	return e
}

// ---- strokeStyle (9.3) ----

var (
	strokeKeywords    = []string{"solid", "dashed", "dotted", "double", "groove", "ridge", "outset", "inset"}
	lineCaps          = []string{"round", "butt", "square"}
	strokeStyleFields = []string{"dashArray", "lineCap"}
)

func (p *parser) strokeStyle(i int32) *Error {
	switch p.nodes[i].kind {
	case kString:
		s := p.str(i)
		for _, k := range strokeKeywords {
			if string(s) == k {
				return nil
			}
		}
		return newErr("", "unknown stroke style "+quoteBytes(s)+"; must be one of "+strings.Join(strokeKeywords, ", ")+` or an object {"dashArray", "lineCap"}`)
	case kObject:
	default:
		return p.wrong(i, `must be a stroke style keyword such as "solid" or an object {"dashArray", "lineCap"}`)
	}
	var f [2]int32
	if e := p.fields(i, strokeStyleFields, f[:], "a stroke style"); e != nil {
		return e
	}
	if e := requireAll(strokeStyleFields, f[:]); e != nil {
		return e
	}
	da := f[0]
	if p.nodes[da].kind != kArray {
		return p.wrong(da, "must be a non-empty array of dimensions").in(".dashArray")
	}
	n := 0
	for c := da + 1; c < p.end(da); c = p.after(c) {
		if e := p.sub(tDimension, c); e != nil {
			return e.in(".dashArray" + indexSeg(n))
		}
		n++
	}
	if n == 0 {
		return newErr(".dashArray", "must contain at least one dimension")
	}
	lc := f[1]
	if p.nodes[lc].kind != kString {
		return p.wrong(lc, "must be "+quoteList(lineCaps)).in(".lineCap")
	}
	s := p.str(lc)
	for _, k := range lineCaps {
		if string(s) == k {
			return nil
		}
	}
	return newErr(".lineCap", "must be "+quoteList(lineCaps)+", got "+quoteBytes(s))
}

// ---- object composites: border (9.4), transition (9.5), typography (9.8) ----

type composite struct {
	what   string
	fields []string
	types  []typeID
}

var (
	borderSpec     = composite{"a border", []string{"color", "width", "style"}, []typeID{tColor, tDimension, tStrokeStyle}}
	transitionSpec = composite{"a transition", []string{"duration", "delay", "timingFunction"}, []typeID{tDuration, tDuration, tCubicBezier}}
	typographySpec = composite{"a typography value", []string{"fontFamily", "fontSize", "fontWeight", "letterSpacing", "lineHeight"},
		[]typeID{tFontFamily, tDimension, tFontWeight, tDimension, tNumber}}
)

// objectComposite validates an object whose properties are all required and
// each is a value of the given type or an alias.
func (p *parser) objectComposite(i int32, c *composite) *Error {
	if p.nodes[i].kind != kObject {
		return p.wrong(i, "must be an object with "+strings.Join(c.fields, ", "))
	}
	var buf [8]int32
	f := buf[:len(c.fields)]
	if e := p.fields(i, c.fields, f, c.what); e != nil {
		return e
	}
	if e := requireAll(c.fields, f); e != nil {
		return e
	}
	for j, v := range f {
		if e := p.sub(c.types[j], v); e != nil {
			return e.in(fieldSeg(c.fields[j]))
		}
	}
	return nil
}

func (p *parser) border(i int32) *Error     { return p.objectComposite(i, &borderSpec) }
func (p *parser) transition(i int32) *Error { return p.objectComposite(i, &transitionSpec) }
func (p *parser) typography(i int32) *Error { return p.objectComposite(i, &typographySpec) }

// ---- shadow (9.6) ----

var shadowFields = []string{"color", "offsetX", "offsetY", "blur", "spread", "inset"}
var shadowTypes = []typeID{tColor, tDimension, tDimension, tDimension, tDimension}

func (p *parser) shadow(i int32) *Error {
	switch p.nodes[i].kind {
	case kObject:
		return p.shadowObject(i)
	case kArray:
		n := 0
		for c := i + 1; c < p.end(i); c = p.after(c) {
			var e *Error
			if p.nodes[c].kind == kString {
				e = p.aliasOnly(c, "must be a shadow object or an alias to a shadow token")
			} else {
				e = p.shadowObject(c)
			}
			if e != nil {
				return e.in(indexSeg(n))
			}
			n++
		}
		if n == 0 {
			return newErr("", "a shadow array must contain at least one shadow")
		}
		return nil
	}
	return p.wrong(i, "must be a shadow object or an array of shadow objects")
}

// aliasOnly accepts string node i only when it is an alias.
func (p *parser) aliasOnly(i int32, msg string) *Error {
	if s := p.str(i); aliasLike(s) {
		return checkAliasString(s)
	}
	return newErr("", msg+", got "+p.describe(i))
}

func (p *parser) shadowObject(i int32) *Error {
	if p.nodes[i].kind != kObject {
		return p.wrong(i, "must be a shadow object with color, offsetX, offsetY, blur, spread")
	}
	var f [6]int32
	if e := p.fields(i, shadowFields, f[:], "a shadow"); e != nil {
		return e
	}
	if e := requireAll(shadowFields[:5], f[:5]); e != nil {
		return e
	}
	for j, t := range shadowTypes {
		if e := p.sub(t, f[j]); e != nil {
			return e.in("." + shadowFields[j])
		}
	}
	if in := f[5]; in >= 0 {
		if k := p.nodes[in].kind; k != kTrue && k != kFalse {
			return p.wrong(in, "must be true or false").in(".inset")
		}
	}
	return nil
}

// ---- gradient (9.7) ----

var stopFields = []string{"color", "position"}

func (p *parser) gradient(i int32) *Error {
	if p.nodes[i].kind != kArray {
		return p.wrong(i, `must be an array of gradient stops {"color", "position"}`)
	}
	n := 0
	for c := i + 1; c < p.end(i); c = p.after(c) {
		var e *Error
		if p.nodes[c].kind == kString {
			e = p.aliasOnly(c, "must be a gradient stop object or an alias to a gradient token")
		} else {
			e = p.stop(c)
		}
		if e != nil {
			return e.in(indexSeg(n))
		}
		n++
	}
	if n == 0 {
		return newErr("", "a gradient must contain at least one stop")
	}
	return nil
}

func (p *parser) stop(i int32) *Error {
	if p.nodes[i].kind != kObject {
		return p.wrong(i, `must be a gradient stop object {"color", "position"}`)
	}
	var f [2]int32
	if e := p.fields(i, stopFields, f[:], "a gradient stop"); e != nil {
		return e
	}
	if e := requireAll(stopFields, f[:]); e != nil {
		return e
	}
	if e := p.sub(tColor, f[0]); e != nil {
		return e.in(".color")
	}
	pos := f[1]
	if p.nodes[pos].kind == kString {
		if e := p.aliasOnly(pos, "must be a number in [0, 1] or an alias to a number token"); e != nil {
			return e.in(".position")
		}
		return nil
	}
	v, e := p.num(pos, "a number in [0, 1] or an alias to a number token")
	if e != nil {
		return e.in(".position")
	}
	if v < 0 || v > 1 {
		return newErr(".position", "must be in [0, 1], got "+fmtNum(v))
	}
	return nil
}
