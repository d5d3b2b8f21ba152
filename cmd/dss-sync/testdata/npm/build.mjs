// Builds a DTCG token file with Style Dictionary:
//
//	node build.mjs TOKENS.json OUTDIR
//
// writes OUTDIR/variables.css (CSS custom properties) and OUTDIR/tokens.js
// (ES module constants). TestDTCGExportWithOutsideTools runs it on a
// dss-sync export. Any warning fails the build, so a token Style Dictionary
// cannot place or resolve is an error, not a line in a log.
import StyleDictionary from 'style-dictionary';

const [tokens, out] = process.argv.slice(2);
if (!tokens || !out) {
  console.error('usage: node build.mjs TOKENS.json OUTDIR');
  process.exit(2);
}

// Style Dictionary 5.5 lags DTCG 2025.10 on durations: its time/seconds
// transform only matches the non-DTCG type "time", and its transition
// shorthand has "TODO: add support for DTCG duration object value type", so a
// {"value": 200, "unit": "ms"} duration comes out as "[object Object]". These
// two transforms write duration objects as CSS ("200ms"), in duration tokens
// and inside transitions; they run before Style Dictionary's own, which leave
// a value already made a string alone.
const cssDuration = (v) =>
  v !== null && typeof v === 'object' && 'value' in v && 'unit' in v ? `${v.value}${v.unit}` : v;
const cssBezier = (v) => (Array.isArray(v) ? `cubic-bezier(${v.join(', ')})` : v);
StyleDictionary.registerTransform({
  name: 'dss/duration/css',
  type: 'value',
  transitive: true,
  filter: (token) => token.$type === 'duration',
  transform: (token) => cssDuration(token.$value),
});
StyleDictionary.registerTransform({
  name: 'dss/transition/css',
  type: 'value',
  transitive: true,
  filter: (token) => token.$type === 'transition' && typeof token.$value === 'object',
  transform: ({ $value: { duration, delay, timingFunction } }) =>
    `${cssDuration(duration)} ${cssBezier(timingFunction)} ${cssDuration(delay)}`,
});

const sd = new StyleDictionary({
  source: [tokens],
  usesDtcg: true,
  log: { warnings: 'error', verbosity: 'verbose' },
  platforms: {
    css: {
      transforms: ['dss/duration/css', 'dss/transition/css', ...StyleDictionary.hooks.transformGroups.css],
      // CSS's font shorthand has no letter-spacing, so Style Dictionary would
      // drop a typography token's letterSpacing (and warn), and it has no
      // transform for gradients at all; expanded, each property of a
      // typography token and each stop of a gradient becomes a variable of
      // its own, which the standard transforms handle.
      expand: { include: ['typography', 'gradient'] },
      buildPath: out + '/',
      files: [{ destination: 'variables.css', format: 'css/variables' }],
    },
    js: {
      transformGroup: 'js',
      buildPath: out + '/',
      files: [{ destination: 'tokens.js', format: 'javascript/es6' }],
    },
  },
});
await sd.buildAllPlatforms();
