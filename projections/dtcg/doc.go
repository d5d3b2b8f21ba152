// Package dtcg validates design tokens in the W3C Design Tokens Community
// Group format, version 2025.10 (the "Design Tokens Format Module 2025.10"
// and the "Design Tokens Color Module 2025.10").
//
// Every token value that reaches the sync service from outside passes
// through this package, so it is written for hostile input: it never
// panics, bounds recursion and memory (see Limits), rejects invalid UTF-8 and
// non-finite numbers, and returns an *Error naming the offending field, for
// example `$value.components[1]: must be a number or "none", got true`.
// It depends only on the standard library.
//
// # What is validated
//
// ValidateValue checks one $value against its $type:
//
//   - color: an object with "colorSpace" (one of the 14 spaces of the color
//     module: srgb, srgb-linear, hsl, hwb, lab, lch, oklab, oklch,
//     display-p3, a98-rgb, prophoto-rgb, rec2020, xyz-d65, xyz-d50),
//     "components" (exactly 3, each a number in the range the color module
//     gives for that space and component, or "none"), optional "alpha" in
//     [0, 1] and optional "hex" of the form "#rrggbb". Ranges: RGB-like and
//     XYZ components [0, 1]; hue [0, 360); HSL/HWB saturation, lightness,
//     whiteness, blackness and CIELAB/LCH lightness [0, 100]; OKLAB/OKLCH
//     lightness [0, 1]; chroma [0, +inf); Lab/OKLab a and b unbounded.
//   - dimension: {"value": number, "unit": "px" | "rem"}.
//   - duration: {"value": number, "unit": "ms" | "s"}.
//   - fontFamily: a non-empty font name, or a non-empty array of them.
//   - fontWeight: a number in [1, 1000] or one of the 18 names of the spec
//     ("thin", "hairline", ..., "extra-black", "ultra-black"),
//     case-sensitively.
//   - cubicBezier: exactly 4 numbers, the x coordinates (1st and 3rd) in
//     [0, 1].
//   - number: any JSON number.
//   - strokeStyle: one of the 8 keywords ("solid", "dashed", ...) or
//     {"dashArray": non-empty array of dimensions, "lineCap": "round" |
//     "butt" | "square"}.
//   - border {color, width, style}, transition {duration, delay,
//     timingFunction} and typography {fontFamily, fontSize, fontWeight,
//     letterSpacing, lineHeight}: every property is required, as in the
//     2025.10 JSON schema.
//   - shadow: an object {color, offsetX, offsetY, blur, spread, inset?} or a
//     non-empty array of such objects; inset is a boolean.
//   - gradient: a non-empty array of stops {color, position}, position in
//     [0, 1].
//
// Objects may not carry properties other than those listed (the spec's
// schemas forbid additional properties) nor the same key twice.
//
// # Aliases
//
// A curly brace alias "{group.token}" is accepted as any whole $value and
// as any composite sub-value the spec allows to be a reference (and as an
// element of shadow, gradient and dashArray arrays). Aliases are checked
// for syntax only; resolving them, detecting cycles and checking the
// target's type are the caller's job (References lists them). Only a whole
// string of the form "{...}" is an alias; a string such as "Use {a.b}" is
// plain text. A string that starts with "{" and ends with "}" but whose
// path is malformed is an error rather than plain text. The reserved
// root-token name is allowed as the last path segment ("{color.accent.$root}").
//
// 2025.10's JSON Pointer references ("$ref" objects and tokens) and group
// "$extends" are not supported and are rejected with an explicit message.
//
// # Legacy forms
//
// Older drafts of the format, still widely produced by tools, used strings.
// They are accepted wherever a color, dimension or duration is expected,
// including inside composites:
//
//   - color: CSS hex strings "#rgb", "#rgba", "#rrggbb" and "#rrggbbaa"
//     (case-insensitive). The "hex" property of the object form remains
//     strictly "#rrggbb", as the color module requires.
//   - dimension: "<number><unit>" such as "16px", "1.5rem", "-4px" or
//     ".5rem", with unit "px", "rem", "em", "%" or "pt". The object form
//     accepts only "px" and "rem" as 2025.10 requires; the legacy string form
//     is deliberately more lenient because these units are common in files
//     exported by existing tools, and a translation tool can still handle
//     them. Unitless strings and exponents are rejected.
//   - duration: "<number><unit>" with unit "ms" or "s", e.g. "200ms", "0.2s".
//
// The number in a legacy string matches -?([0-9]+(\.[0-9]+)?|\.[0-9]+).
//
// # Decisions where the spec is open
//
//   - Gradient stop positions outside [0, 1] are rejected, as the 2025.10
//     JSON schema does, although the prose says consumers must clamp them.
//   - Empty font names are rejected.
//   - Negative dimensions and durations are accepted (the spec does not
//     forbid them and shadow offsets need them).
//   - "none" is accepted for every color component, as the color module's
//     schema allows.
//   - A token whose value is an alias takes the $type of its nearest group
//     when it has none of its own (Token.Type); the spec takes it from the
//     alias target, so callers should check the two agree when resolving.
//   - A lone UTF-16 surrogate escape ("\ud800") is accepted, as
//     encoding/json accepts it (decoding it to U+FFFD).
//
// # Limits
//
// Limits bounds the input: MaxDepth (nesting of arrays and objects, default
// 32, hard cap 10000), MaxStringBytes (decoded length of any string, and of
// number literals, default 64 KiB), MaxTokens (tokens per document, default
// 1,000,000) and MaxBytes (raw input size, default 256 MiB). ValidateValue,
// References and ParseAlias use DefaultLimits; ParseDocument takes Limits
// and checks them while it streams, before data is buffered. Paths are also
// bounded: at most 32 segments of at most 128 bytes, 512 bytes in total. One
// value (or $extensions object) may hold at most 262,144 JSON values, which
// caps the validator's memory at a few MiB whatever the input size.
package dtcg
