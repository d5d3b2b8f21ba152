// Terrazzo configuration for `tz check` in TestDTCGExportWithOutsideTools.
//
// Without a configuration file, `tz check` runs no lint rule at all: it only
// parses the file and resolves aliases, and would pass a color with two
// components or a dimension in "vw". So every core rule that validates one of
// the 13 DTCG 2025.10 types is turned on here, as an error.
import { defineConfig } from '@terrazzo/cli';

export default defineConfig({
  lint: {
    rules: {
      'core/valid-color': 'error',
      'core/valid-dimension': 'error',
      'core/valid-font-family': 'error',
      'core/valid-font-weight': 'error',
      'core/valid-duration': 'error',
      'core/valid-cubic-bezier': 'error',
      'core/valid-number': 'error',
      'core/valid-stroke-style': 'error',
      'core/valid-border': 'error',
      'core/valid-transition': 'error',
      'core/valid-shadow': 'error',
      'core/valid-gradient': 'error',
      'core/valid-typography': 'error',
    },
  },
});
