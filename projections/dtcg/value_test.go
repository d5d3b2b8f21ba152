package dtcg

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// valueCase is one ValidateValue case. A case with an empty field is valid;
// otherwise the error's Field must equal field and its Msg contain msg.
type valueCase struct {
	name  string
	typ   string
	value string
	field string
	msg   string
}

const (
	srgbRed   = `{"colorSpace":"srgb","components":[1,0,0]}`
	dim16     = `{"value":16,"unit":"px"}`
	dur200    = `{"value":200,"unit":"ms"}`
	shadowObj = `{"color":` + srgbRed + `,"offsetX":` + dim16 + `,"offsetY":` + dim16 + `,"blur":` + dim16 + `,"spread":` + dim16 + `}`
)

var valueCases = []valueCase{
	// ---- color: 2025.10 object form ----
	{"color srgb", "color", srgbRed, "", ""},
	{"color full", "color", `{"colorSpace":"srgb","components":[1,0,1],"alpha":1,"hex":"#ff00ff"}`, "", ""},
	{"color hex upper", "color", `{"colorSpace":"srgb","components":[1,0,1],"hex":"#FF00FF"}`, "", ""},
	{"color srgb-linear", "color", `{"colorSpace":"srgb-linear","components":[1,0,1]}`, "", ""},
	{"color hsl", "color", `{"colorSpace":"hsl","components":[330,100,50]}`, "", ""},
	{"color hsl none hue", "color", `{"colorSpace":"hsl","components":["none",0,100],"alpha":1,"hex":"#ffffff"}`, "", ""},
	{"color hwb", "color", `{"colorSpace":"hwb","components":[330,0,0]}`, "", ""},
	{"color lab", "color", `{"colorSpace":"lab","components":[60.17,93.54,-60.5]}`, "", ""},
	{"color lab huge a", "color", `{"colorSpace":"lab","components":[50,-1000,1000]}`, "", ""},
	{"color lch", "color", `{"colorSpace":"lch","components":[60.17,111.4,327.11]}`, "", ""},
	{"color oklab", "color", `{"colorSpace":"oklab","components":[0.701,0.2746,-0.169]}`, "", ""},
	{"color oklch", "color", `{"colorSpace":"oklch","components":[0.7016,0.3225,328.363]}`, "", ""},
	{"color display-p3", "color", `{"colorSpace":"display-p3","components":[0.9,0.2,0.9]}`, "", ""},
	{"color a98-rgb", "color", `{"colorSpace":"a98-rgb","components":[0.9,0.2,0.9]}`, "", ""},
	{"color prophoto-rgb", "color", `{"colorSpace":"prophoto-rgb","components":[0.8,0.3,0.8]}`, "", ""},
	{"color rec2020", "color", `{"colorSpace":"rec2020","components":[0.8,0.2,0.8]}`, "", ""},
	{"color xyz-d65", "color", `{"colorSpace":"xyz-d65","components":[0.59,0.28,0.97]}`, "", ""},
	{"color xyz-d50", "color", `{"colorSpace":"xyz-d50","components":[0.57,0.27,0.73]}`, "", ""},
	{"color all none", "color", `{"colorSpace":"oklch","components":["none","none","none"]}`, "", ""},
	{"color whitespace", "color", " \n{ \"colorSpace\" : \"srgb\" , \"components\" : [ 0 , 0.5 , 1 ] }\t", "", ""},
	{"color escaped key", "color", `{"color\u0053pace":"srgb","components":[0,0,0]}`, "", ""},
	{"color alpha 0", "color", `{"colorSpace":"srgb","components":[0,0,0],"alpha":0}`, "", ""},

	{"color bad component kind", "color", `{"colorSpace":"srgb","components":[1,true,0]}`, "$value.components[1]", `must be a number or "none"`},
	{"color component string", "color", `{"colorSpace":"srgb","components":[1,0,"0.5"]}`, "$value.components[2]", `must be a number or "none"`},
	{"color component None", "color", `{"colorSpace":"srgb","components":["None",0,0]}`, "$value.components[0]", `must be a number or "none"`},
	{"color component alias", "color", `{"colorSpace":"srgb","components":["{a.b}",0,0]}`, "$value.components[0]", `must be a number or "none"`},
	{"color component $ref", "color", `{"colorSpace":"srgb","components":[{"$ref":"#/a/$value/components/0"},0,0]}`, "$value.components[0]", "not supported"},
	{"color srgb >1", "color", `{"colorSpace":"srgb","components":[1.5,0,0]}`, "$value.components[0]", "red must be in [0, 1]"},
	{"color srgb <0", "color", `{"colorSpace":"srgb","components":[0,-0.1,0]}`, "$value.components[1]", "green must be in [0, 1]"},
	{"color hue 360", "color", `{"colorSpace":"hsl","components":[360,50,50]}`, "$value.components[0]", "hue must be in [0, 360)"},
	{"color hsl sat 101", "color", `{"colorSpace":"hsl","components":[0,101,50]}`, "$value.components[1]", "saturation must be in [0, 100]"},
	{"color hwb black", "color", `{"colorSpace":"hwb","components":[0,0,-1]}`, "$value.components[2]", "blackness must be in [0, 100]"},
	{"color lab L", "color", `{"colorSpace":"lab","components":[101,0,0]}`, "$value.components[0]", "lightness must be in [0, 100]"},
	{"color lch chroma", "color", `{"colorSpace":"lch","components":[50,-1,0]}`, "$value.components[1]", "chroma must not be negative"},
	{"color lch hue", "color", `{"colorSpace":"lch","components":[50,10,400]}`, "$value.components[2]", "hue must be in [0, 360)"},
	{"color oklab L", "color", `{"colorSpace":"oklab","components":[1.2,0,0]}`, "$value.components[0]", "lightness must be in [0, 1]"},
	{"color oklch L 50", "color", `{"colorSpace":"oklch","components":[50,0.1,120]}`, "$value.components[0]", "lightness must be in [0, 1]"},
	{"color xyz", "color", `{"colorSpace":"xyz-d65","components":[0.95,1,1.09]}`, "$value.components[2]", "z must be in [0, 1]"},
	{"color 2 components", "color", `{"colorSpace":"srgb","components":[1,0]}`, "$value.components", "needs exactly 3 components, got 2"},
	{"color 4 components", "color", `{"colorSpace":"srgb","components":[1,0,0,1]}`, "$value.components", "got 4"},
	{"color components not array", "color", `{"colorSpace":"srgb","components":"1 0 0"}`, "$value.components", "must be an array of 3 components"},
	{"color unknown space", "color", `{"colorSpace":"cmyk","components":[1,0,0]}`, "$value.colorSpace", `unknown color space "cmyk"`},
	{"color space case", "color", `{"colorSpace":"sRGB","components":[1,0,0]}`, "$value.colorSpace", `unknown color space "sRGB"`},
	{"color space number", "color", `{"colorSpace":1,"components":[1,0,0]}`, "$value.colorSpace", "must be a color space name"},
	{"color missing space", "color", `{"components":[1,0,0]}`, "$value", `missing required property "colorSpace"`},
	{"color missing components", "color", `{"colorSpace":"srgb"}`, "$value", `missing required property "components"`},
	{"color alpha >1", "color", `{"colorSpace":"srgb","components":[1,0,0],"alpha":1.01}`, "$value.alpha", "must be between 0 and 1"},
	{"color alpha string", "color", `{"colorSpace":"srgb","components":[1,0,0],"alpha":"50%"}`, "$value.alpha", "must be a number between 0 and 1"},
	{"color hex 8 digits", "color", `{"colorSpace":"srgb","components":[1,0,0],"hex":"#ff000080"}`, "$value.hex", `must be a 6-digit hex color "#rrggbb"`},
	{"color hex 3 digits", "color", `{"colorSpace":"srgb","components":[1,0,0],"hex":"#f00"}`, "$value.hex", "6-digit"},
	{"color hex no hash", "color", `{"colorSpace":"srgb","components":[1,0,0],"hex":"ff0000"}`, "$value.hex", "6-digit"},
	{"color hex bad digit", "color", `{"colorSpace":"srgb","components":[1,0,0],"hex":"#ff00zz"}`, "$value.hex", "6-digit"},
	{"color unknown prop", "color", `{"colorSpace":"srgb","components":[1,0,0],"opacity":1}`, "$value.opacity", "unknown property"},
	{"color duplicate key", "color", `{"colorSpace":"srgb","components":[1,0,0],"colorSpace":"hsl"}`, "$value.colorSpace", "duplicate key"},
	{"color duplicate escaped key", "color", `{"colorSpace":"srgb","components":[1,0,0],"\u0061lpha":1,"alpha":1}`, "$value.alpha", "duplicate key"},
	{"color $ref prop", "color", `{"$ref":"#/base/blue/$value"}`, "$value.$ref", "not supported"},
	{"color number", "color", `12`, "$value", "must be a color object"},
	{"color null", "color", `null`, "$value", "got null"},
	{"color array", "color", `[1,0,0]`, "$value", "got an array"},

	// ---- color: legacy hex strings ----
	{"color legacy #rrggbb", "color", `"#ff00ff"`, "", ""},
	{"color legacy #rrggbbaa", "color", `"#FF00FF80"`, "", ""},
	{"color legacy #rgb", "color", `"#f0f"`, "", ""},
	{"color legacy #rgba", "color", `"#f0f8"`, "", ""},
	{"color legacy 5 digits", "color", `"#ff00f"`, "$value", "hex color string"},
	{"color legacy name", "color", `"red"`, "$value", "hex color string"},
	{"color legacy rgb()", "color", `"rgb(255, 0, 0)"`, "$value", "hex color string"},
	{"color legacy empty", "color", `""`, "$value", "hex color string"},

	// ---- dimension ----
	{"dimension px", "dimension", dim16, "", ""},
	{"dimension rem frac", "dimension", `{"value":0.5,"unit":"rem"}`, "", ""},
	{"dimension zero", "dimension", `{"value":0,"unit":"px"}`, "", ""},
	{"dimension negative", "dimension", `{"value":-4,"unit":"px"}`, "", ""},
	{"dimension exponent", "dimension", `{"value":1.5e1,"unit":"px"}`, "", ""},
	{"dimension unit em object", "dimension", `{"value":1,"unit":"em"}`, "$value.unit", `must be "px" or "rem", got "em"`},
	{"dimension unit percent object", "dimension", `{"value":100,"unit":"%"}`, "$value.unit", `must be "px" or "rem"`},
	{"dimension unit case", "dimension", `{"value":1,"unit":"PX"}`, "$value.unit", `got "PX"`},
	{"dimension unit number", "dimension", `{"value":1,"unit":1}`, "$value.unit", `must be "px" or "rem"`},
	{"dimension value string", "dimension", `{"value":"16","unit":"px"}`, "$value.value", "must be a number"},
	{"dimension value alias", "dimension", `{"value":"{a.b}","unit":"px"}`, "$value.value", "must be a number"},
	{"dimension value $ref", "dimension", `{"value":{"$ref":"#/base/spacing/$value/value"},"unit":"rem"}`, "$value.value", "not supported"},
	{"dimension missing unit", "dimension", `{"value":0}`, "$value", `missing required property "unit"`},
	{"dimension missing value", "dimension", `{"unit":"px"}`, "$value", `missing required property "value"`},
	{"dimension extra", "dimension", `{"value":1,"unit":"px","type":"x"}`, "$value.type", "unknown property"},
	{"dimension overflow", "dimension", `{"value":1e400,"unit":"px"}`, "$value.value", "must be a finite number"},
	{"dimension number", "dimension", `16`, "$value", `must be a dimension object {"value", "unit"}`},
	{"dimension legacy px", "dimension", `"16px"`, "", ""},
	{"dimension legacy rem", "dimension", `"1.5rem"`, "", ""},
	{"dimension legacy em", "dimension", `"0.5em"`, "", ""},
	{"dimension legacy percent", "dimension", `"100%"`, "", ""},
	{"dimension legacy pt", "dimension", `"12pt"`, "", ""},
	{"dimension legacy negative", "dimension", `"-4px"`, "", ""},
	{"dimension legacy leading dot", "dimension", `".5rem"`, "", ""},
	{"dimension legacy vw", "dimension", `"10vw"`, "$value", `unsupported dimension unit "vw"`},
	{"dimension legacy unitless", "dimension", `"16"`, "$value", "needs a unit"},
	{"dimension legacy space", "dimension", `"16 px"`, "$value", `unsupported dimension unit " px"`},
	{"dimension legacy trailing dot", "dimension", `"16.px"`, "$value", "must be a dimension object"},
	{"dimension legacy no number", "dimension", `"px"`, "$value", "must be a dimension object"},
	{"dimension legacy exponent", "dimension", `"1e3px"`, "$value", "unsupported dimension unit"},
	{"dimension legacy plus", "dimension", `"+4px"`, "$value", "must be a dimension object"},

	// ---- duration ----
	{"duration ms", "duration", dur200, "", ""},
	{"duration s", "duration", `{"value":1.5,"unit":"s"}`, "", ""},
	{"duration legacy ms", "duration", `"200ms"`, "", ""},
	{"duration legacy s", "duration", `"0.2s"`, "", ""},
	{"duration unit min", "duration", `{"value":1,"unit":"min"}`, "$value.unit", `must be "ms" or "s"`},
	{"duration legacy px", "duration", `"200px"`, "$value", `unsupported duration unit "px"`},
	{"duration legacy unitless", "duration", `"200"`, "$value", "needs a unit"},
	{"duration number", "duration", `200`, "$value", "must be a duration object"},
	{"duration missing unit", "duration", `{"value":1}`, "$value", `missing required property "unit"`},

	// ---- fontFamily ----
	{"fontFamily string", "fontFamily", `"Comic Sans MS"`, "", ""},
	{"fontFamily array", "fontFamily", `["Helvetica","Arial","sans-serif"]`, "", ""},
	{"fontFamily braces inside text", "fontFamily", `"My {weird} font"`, "", ""},
	{"fontFamily empty string", "fontFamily", `""`, "$value", "must not be empty"},
	{"fontFamily empty array", "fontFamily", `[]`, "$value", "at least one font name"},
	{"fontFamily number element", "fontFamily", `["Arial",1]`, "$value[1]", "must be a font name string"},
	{"fontFamily empty element", "fontFamily", `["Arial",""]`, "$value[1]", "must not be empty"},
	{"fontFamily alias element", "fontFamily", `["{font.base}","Arial"]`, "$value[0]", "aliases are not allowed inside a fontFamily array"},
	{"fontFamily object", "fontFamily", `{"name":"Arial"}`, "$value", "must be a font name string or a non-empty array"},

	// ---- fontWeight ----
	{"fontWeight 350", "fontWeight", `350`, "", ""},
	{"fontWeight 1", "fontWeight", `1`, "", ""},
	{"fontWeight 1000", "fontWeight", `1000`, "", ""},
	{"fontWeight bold", "fontWeight", `"bold"`, "", ""},
	{"fontWeight hairline", "fontWeight", `"hairline"`, "", ""},
	{"fontWeight extra-black", "fontWeight", `"extra-black"`, "", ""},
	{"fontWeight ultra-black", "fontWeight", `"ultra-black"`, "", ""},
	{"fontWeight 0", "fontWeight", `0`, "$value", "must be in [1, 1000], got 0"},
	{"fontWeight 1001", "fontWeight", `1001`, "$value", "must be in [1, 1000], got 1001"},
	{"fontWeight Bold", "fontWeight", `"Bold"`, "$value", `unknown font weight "Bold"`},
	{"fontWeight numeric string", "fontWeight", `"400"`, "$value", `unknown font weight "400"`},
	{"fontWeight bool", "fontWeight", `true`, "$value", "got true"},

	// ---- cubicBezier ----
	{"cubicBezier", "cubicBezier", `[0.5,0,1,1]`, "", ""},
	{"cubicBezier y out of range", "cubicBezier", `[0.68,-0.55,0.265,1.55]`, "", ""},
	{"cubicBezier x1 > 1", "cubicBezier", `[1.1,0,1,1]`, "$value[0]", "x coordinate must be in [0, 1]"},
	{"cubicBezier x2 < 0", "cubicBezier", `[0,0,-0.1,1]`, "$value[2]", "x coordinate must be in [0, 1]"},
	{"cubicBezier 3 numbers", "cubicBezier", `[0,0,1]`, "$value", "exactly 4 numbers"},
	{"cubicBezier 5 numbers", "cubicBezier", `[0,0,1,1,1]`, "$value", "exactly 4 numbers"},
	{"cubicBezier string element", "cubicBezier", `[0,"0",1,1]`, "$value[1]", "must be a number"},
	{"cubicBezier string", "cubicBezier", `"ease-in"`, "$value", "must be an array of 4 numbers"},

	// ---- number ----
	{"number int", "number", `2`, "", ""},
	{"number negative frac", "number", `-2.35e-3`, "", ""},
	{"number string", "number", `"2"`, "$value", "must be a number"},
	{"number overflow", "number", `-1e309`, "$value", "must be a finite number"},
	{"number leading zero", "number", `01`, "$value", "invalid JSON"},
	{"number NaN", "number", `NaN`, "$value", "invalid JSON"},
	{"number Infinity", "number", `Infinity`, "$value", "invalid JSON"},
	{"number bare dot", "number", `1.`, "$value", "invalid JSON"},
	{"number plus", "number", `+1`, "$value", "invalid JSON"},

	// ---- strokeStyle ----
	{"strokeStyle solid", "strokeStyle", `"solid"`, "", ""},
	{"strokeStyle inset", "strokeStyle", `"inset"`, "", ""},
	{"strokeStyle object", "strokeStyle", `{"dashArray":[{"value":0.5,"unit":"rem"},{"value":0.25,"unit":"rem"}],"lineCap":"round"}`, "", ""},
	{"strokeStyle object aliases", "strokeStyle", `{"dashArray":["{dash.long}",{"value":0.25,"unit":"rem"},"2px"],"lineCap":"butt"}`, "", ""},
	{"strokeStyle keyword case", "strokeStyle", `"Solid"`, "$value", `unknown stroke style "Solid"`},
	{"strokeStyle none", "strokeStyle", `"none"`, "$value", `unknown stroke style "none"`},
	{"strokeStyle bad lineCap", "strokeStyle", `{"dashArray":["1px"],"lineCap":"flat"}`, "$value.lineCap", `must be "round", "butt" or "square"`},
	{"strokeStyle missing lineCap", "strokeStyle", `{"dashArray":["1px"]}`, "$value", `missing required property "lineCap"`},
	{"strokeStyle empty dashArray", "strokeStyle", `{"dashArray":[],"lineCap":"round"}`, "$value.dashArray", "at least one dimension"},
	{"strokeStyle bad dash", "strokeStyle", `{"dashArray":["1px",{"value":1,"unit":"vh"}],"lineCap":"round"}`, "$value.dashArray[1].unit", `must be "px" or "rem"`},
	{"strokeStyle bad dash alias", "strokeStyle", `{"dashArray":["{a.}"],"lineCap":"round"}`, "$value.dashArray[0]", "malformed alias"},
	{"strokeStyle number", "strokeStyle", `1`, "$value", "must be a stroke style keyword"},

	// ---- border ----
	{"border", "border", `{"color":` + srgbRed + `,"width":{"value":3,"unit":"px"},"style":"solid"}`, "", ""},
	{"border aliases", "border", `{"color":"{color.focus}","width":"{border.width.thin}","style":"{stroke.dashed}"}`, "", ""},
	{"border legacy", "border", `{"color":"#36363600","width":"3px","style":"solid"}`, "", ""},
	{"border style object", "border", `{"color":"#000","width":"1px","style":{"dashArray":["0.5rem","0.25rem"],"lineCap":"round"}}`, "", ""},
	{"border bad color", "border", `{"color":{"colorSpace":"srgb","components":[2,0,0]},"width":"1px","style":"solid"}`, "$value.color.components[0]", "red must be in [0, 1]"},
	{"border bad width", "border", `{"color":"#000","width":"thin","style":"solid"}`, "$value.width", "must be a dimension object"},
	{"border bad style", "border", `{"color":"#000","width":"1px","style":"wavy"}`, "$value.style", `unknown stroke style "wavy"`},
	{"border bad alias", "border", `{"color":"{}","width":"1px","style":"solid"}`, "$value.color", "malformed alias"},
	{"border missing style", "border", `{"color":"#000","width":"1px"}`, "$value", `missing required property "style"`},
	{"border extra", "border", `{"color":"#000","width":"1px","style":"solid","radius":"2px"}`, "$value.radius", "unknown property; a border may only have color, width, style"},
	{"border string", "border", `"1px solid #000"`, "$value", "must be an object with color, width, style"},

	// ---- transition ----
	{"transition", "transition", `{"duration":` + dur200 + `,"delay":{"value":0,"unit":"ms"},"timingFunction":[0.5,0,1,1]}`, "", ""},
	{"transition aliases", "transition", `{"duration":"{duration.quick}","delay":"0ms","timingFunction":"{easing.accelerate}"}`, "", ""},
	{"transition bad timing", "transition", `{"duration":"200ms","delay":"0ms","timingFunction":[2,0,1,1]}`, "$value.timingFunction[0]", "x coordinate"},
	{"transition bad delay", "transition", `{"duration":"200ms","delay":"0","timingFunction":[0,0,1,1]}`, "$value.delay", "needs a unit"},
	{"transition missing delay", "transition", `{"duration":"200ms","timingFunction":[0,0,1,1]}`, "$value", `missing required property "delay"`},

	// ---- shadow ----
	{"shadow object", "shadow", shadowObj, "", ""},
	{"shadow inset", "shadow", `{"color":"#00000080","offsetX":"2px","offsetY":"2px","blur":"4px","spread":"0px","inset":true}`, "", ""},
	{"shadow aliases", "shadow", `{"color":"{color.shadow-050}","offsetX":"{space.small}","offsetY":"{space.small}","blur":{"value":1.5,"unit":"rem"},"spread":{"value":0,"unit":"rem"}}`, "", ""},
	{"shadow array", "shadow", `[` + shadowObj + `,"{base.shadow}",` + shadowObj + `]`, "", ""},
	{"shadow inset string", "shadow", `{"color":"#000","offsetX":"2px","offsetY":"2px","blur":"4px","spread":"0px","inset":"true"}`, "$value.inset", "must be true or false"},
	{"shadow missing spread", "shadow", `{"color":"#000","offsetX":"2px","offsetY":"2px","blur":"4px"}`, "$value", `missing required property "spread"`},
	{"shadow array bad element", "shadow", `[` + shadowObj + `,{"color":"#000","offsetX":"2px","offsetY":"2px","blur":"4px","spread":"1vw"}]`, "$value[1].spread", `unsupported dimension unit "vw"`},
	{"shadow array non-alias string", "shadow", `["0 0 4px #000"]`, "$value[0]", "must be a shadow object or an alias"},
	{"shadow array nested array", "shadow", `[[` + shadowObj + `]]`, "$value[0]", "must be a shadow object"},
	{"shadow empty array", "shadow", `[]`, "$value", "at least one shadow"},
	{"shadow bad color alias", "shadow", `[{"color":"{a.$b}","offsetX":"2px","offsetY":"2px","blur":"4px","spread":"0px"}]`, "$value[0].color", "malformed alias"},
	{"shadow extra", "shadow", `{"color":"#000","offsetX":"2px","offsetY":"2px","blur":"4px","spread":"0px","x":1}`, "$value.x", "unknown property"},

	// ---- gradient ----
	{"gradient", "gradient", `[{"color":{"colorSpace":"srgb","components":[0,0,1]},"position":0},{"color":` + srgbRed + `,"position":1}]`, "", ""},
	{"gradient aliases", "gradient", `["{gradient.start-stop}",{"color":"{brand.secondary}","position":0.333},{"color":"#000","position":"{position-end}"}]`, "", ""},
	{"gradient position > 1", "gradient", `[{"color":"#000","position":1.5}]`, "$value[0].position", "must be in [0, 1]"},
	{"gradient position < 0", "gradient", `[{"color":"#000","position":0},{"color":"#fff","position":-0.5}]`, "$value[1].position", "must be in [0, 1]"},
	{"gradient position string", "gradient", `[{"color":"#000","position":"50%"}]`, "$value[0].position", "must be a number in [0, 1] or an alias"},
	{"gradient bad stop color", "gradient", `[{"color":{"colorSpace":"srgb","components":[0,0,1]},"position":0},{"color":{"colorSpace":"srgb","components":[0,0,"x"]},"position":1}]`, "$value[1].color.components[2]", `must be a number or "none"`},
	{"gradient missing position", "gradient", `[{"color":"#000"}]`, "$value[0]", `missing required property "position"`},
	{"gradient empty", "gradient", `[]`, "$value", "at least one stop"},
	{"gradient object", "gradient", `{"color":"#000","position":0}`, "$value", "must be an array of gradient stops"},
	{"gradient non-alias string", "gradient", `["red"]`, "$value[0]", "must be a gradient stop object or an alias"},

	// ---- typography ----
	{"typography", "typography", `{"fontFamily":"Roboto","fontSize":{"value":42,"unit":"px"},"fontWeight":700,"letterSpacing":{"value":0.1,"unit":"px"},"lineHeight":1.2}`, "", ""},
	{"typography aliases", "typography", `{"fontFamily":"{font.serif}","fontSize":"{font.size.smallest}","fontWeight":"{font.weight.normal}","letterSpacing":{"value":0,"unit":"px"},"lineHeight":"{line.height}"}`, "", ""},
	{"typography legacy", "typography", `{"fontFamily":["Helvetica","Arial"],"fontSize":"16px","fontWeight":"bold","letterSpacing":"0.5px","lineHeight":1.5}`, "", ""},
	{"typography missing letterSpacing", "typography", `{"fontFamily":"Roboto","fontSize":"16px","fontWeight":700,"lineHeight":1.2}`, "$value", `missing required property "letterSpacing"`},
	{"typography bad fontWeight", "typography", `{"fontFamily":"Roboto","fontSize":"16px","fontWeight":"Bold","letterSpacing":"0px","lineHeight":1.2}`, "$value.fontWeight", `unknown font weight "Bold"`},
	{"typography lineHeight dimension", "typography", `{"fontFamily":"Roboto","fontSize":"16px","fontWeight":700,"letterSpacing":"0px","lineHeight":"24px"}`, "$value.lineHeight", "must be a number"},
	{"typography bad family", "typography", `{"fontFamily":[],"fontSize":"16px","fontWeight":700,"letterSpacing":"0px","lineHeight":1}`, "$value.fontFamily", "at least one font name"},
	{"typography extra", "typography", `{"fontFamily":"Roboto","fontSize":"16px","fontWeight":700,"letterSpacing":"0px","lineHeight":1,"fontStyle":"italic"}`, "$value.fontStyle", "unknown property"},

	// ---- whole-value aliases, for every type ----
	{"alias color", "color", `"{color.base.blue}"`, "", ""},
	{"alias typography", "typography", `"{type.body}"`, "", ""},
	{"alias root token", "dimension", `"{space.$root}"`, "", ""},
	{"alias with spaces", "number", `"{brand colors.primary}"`, "", ""},
	{"alias escaped braces", "number", `"\u007ba.b\u007d"`, "", ""},
	{"alias empty", "color", `"{}"`, "$value", "the token path is empty"},
	{"alias double dot", "color", `"{a..b}"`, "$value", "segment 2: name must not be empty"},
	{"alias dollar segment", "color", `"{a.$b}"`, "$value", "must not start with '$'"},
	{"alias root not last", "color", `"{a.$root.b}"`, "$value", "must not start with '$'"},
	{"alias nested brace", "color", `"{a.{b}}"`, "$value", "must not contain '{', '}' or '.'"},
	{"alias control char", "color", `"{a.\u0007}"`, "$value", "control characters"},

	// ---- generic input checks ----
	{"empty input", "number", ``, "$value", "unexpected end of input"},
	{"trailing data", "number", `1 2`, "$value", "unexpected data after the value"},
	{"unterminated", "color", `{"colorSpace":"srgb"`, "$value", "invalid JSON"},
	{"raw control char in string", "fontFamily", "\"a\tb\"", "$value", "control character in string"},
	{"bad escape", "fontFamily", `"a\qb"`, "$value", "invalid escape"},
	{"bad unicode escape", "fontFamily", `"a\u12g4"`, "$value", "invalid \\u escape"},
	{"single quotes", "fontFamily", `'Arial'`, "$value", "invalid JSON"},
	{"unknown type", "colour", `"#fff"`, "$type", `unknown type "colour"`},
	{"type case", "Color", `"#fff"`, "$type", `unknown type "Color"`},
}

func TestValidateValue(t *testing.T) {
	for _, c := range valueCases {
		t.Run(c.name, func(t *testing.T) {
			checkErr(t, ValidateValue(c.typ, json.RawMessage(c.value)), c.field, c.msg)
		})
	}
}

// checkErr asserts err is nil (field == "") or an *Error with the given
// field whose message contains msg.
func checkErr(t *testing.T, err error, field, msg string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("got error %v, want nil", err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want an *Error with field %q", err, err, field)
	}
	if e.Field != field {
		t.Fatalf("field: got %q, want %q (error %v)", e.Field, field, err)
	}
	if !strings.Contains(e.Msg, msg) {
		t.Fatalf("message: got %q, want it to contain %q", e.Msg, msg)
	}
	if got, want := e.Error(), e.Field+": "+e.Msg; got != want {
		t.Fatalf("Error(): got %q, want %q", got, want)
	}
}

// Every type must be covered by valid and invalid cases, in both forms where
// the type has a legacy form.
func TestValueCasesCoverEveryType(t *testing.T) {
	valid, invalid := map[string]int{}, map[string]int{}
	for _, c := range valueCases {
		if c.field == "" {
			valid[c.typ]++
		} else {
			invalid[c.typ]++
		}
	}
	for _, typ := range Types {
		if valid[typ] == 0 || invalid[typ] == 0 {
			t.Fatalf("type %s: got %d valid and %d invalid cases, want at least one of each", typ, valid[typ], invalid[typ])
		}
	}
}

func TestValidateValueInvalidUTF8(t *testing.T) {
	for _, typ := range []string{"fontFamily", "color", "number"} {
		err := ValidateValue(typ, json.RawMessage("\"Ari\xffal\""))
		checkErr(t, err, "$value", "not valid UTF-8")
	}
	// Invalid UTF-8 hidden in a key of a composite.
	checkErr(t, ValidateValue("border", json.RawMessage("{\"c\xc3\x28\":1}")), "$value", "not valid UTF-8")
}

func TestValidateValueLimits(t *testing.T) {
	deep := strings.Repeat("[", 40) + strings.Repeat("]", 40)
	checkErr(t, ValidateValue("shadow", json.RawMessage(deep)), "$value"+strings.Repeat("[0]", 32), "nesting is deeper than 32 levels")

	// A million-deep bomb must fail fast without exhausting the stack.
	bomb := strings.Repeat(`{"a":`, 1_000_000)
	err := ValidateValue("border", json.RawMessage(bomb))
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Msg, "nesting is deeper") {
		t.Fatalf("depth bomb: got %v, want a nesting error", err)
	}

	long := `"` + strings.Repeat("a", DefaultLimits.MaxStringBytes+1) + `"`
	checkErr(t, ValidateValue("fontFamily", json.RawMessage(long)), "$value", "string is longer than 65536 bytes")
	ok := `"` + strings.Repeat("a", DefaultLimits.MaxStringBytes) + `"`
	checkErr(t, ValidateValue("fontFamily", json.RawMessage(ok)), "", "")
	// Escapes count by their decoded size.
	esc := `"` + strings.Repeat(`\u00e9`, DefaultLimits.MaxStringBytes/2+1) + `"`
	checkErr(t, ValidateValue("fontFamily", json.RawMessage(esc)), "$value", "string is longer than")

	// Memory amplification: a huge flat array must not become a huge tree.
	flat := "[" + strings.Repeat("0,", maxValueNodes) + "0]"
	checkErr(t, ValidateValue("cubicBezier", json.RawMessage(flat)), "$value["+strconv.Itoa(maxValueNodes-1)+"]", "more than 262144 elements")
	if _, err := References(json.RawMessage(flat)); err == nil || !strings.Contains(err.Error(), "more than 262144 elements") {
		t.Fatalf("References on a huge array: got %v, want an element limit error", err)
	}

	longNum := strings.Repeat("1", DefaultLimits.MaxStringBytes+1)
	checkErr(t, ValidateValue("number", json.RawMessage(longNum)), "$value", "number literal is longer than")
}

func TestErrorMessagesAreSafe(t *testing.T) {
	// Long and control-character-laden input is quoted and truncated.
	v := `{"colorSpace":"` + strings.Repeat(`\n`, 500) + `","components":[0,0,0]}`
	err := ValidateValue("color", json.RawMessage(v))
	if err == nil {
		t.Fatalf("got nil, want an error")
	}
	if s := err.Error(); len(s) > 400 || strings.ContainsAny(s, "\n\r") {
		t.Fatalf("message: got %d bytes %q, want a short single line", len(s), s)
	}
}

func TestValidateValueAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	cases := map[string]string{
		"color":     `{"colorSpace":"oklch","components":[0.7016,0.3225,328.363],"alpha":1,"hex":"#ff00ff"}`,
		"dimension": `"16px"`,
	}
	for typ, v := range cases {
		raw := json.RawMessage(v)
		_ = ValidateValue(typ, raw) // warm the pool
		allocs := testing.AllocsPerRun(200, func() {
			if err := ValidateValue(typ, raw); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("%s: got %v allocs per ValidateValue, want 0", typ, allocs)
		}
	}
}
