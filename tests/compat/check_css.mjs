// CSS compatibility check for tests/test_compat.py: doiuse (caniuse data through browserslist) over each
// file given, against the engines in BROWSERS; prints one JSON object per unsupported feature that has no
// fallback, and exits 1 if there is any. What counts as a fallback (progressive enhancement):
//   * the declaration sits inside an @supports block;
//   * an earlier declaration in the same rule sets the same property (`display:block;display:grid`), or its
//     prefixed form (`-webkit-text-size-adjust` before `text-size-adjust`);
//   * per feature, the reasons in LENIENT below.
import { readFileSync } from 'node:fs';
import postcss from 'postcss';
import DoIUse from 'doiuse/lib/DoIUse.js';

// Chrome 53 (WeChat's X5 engine, old Chromium WebViews), Android's Chromium WebView (caniuse tracks only its
// current version, so the old ones are covered by `chrome >= 53`), iOS Safari 10.
export const BROWSERS = 'chrome >= 53, android >= 5, ios_saf >= 10';

const GENERIC = /(^|,)\s*(serif|sans-serif|monospace|cursive|fantasy)\s*$/;
const SINGLE = (v) => /^[a-z-]+(\s*!important)?$/i.test(v.trim());

// feature -> (declaration node) -> reason it is fine, or '' when it is not.
const LENIENT = {
  // Grid properties other than `display` do nothing unless the element is a grid container, and
  // `display:grid` itself is checked (it needs a fallback `display` before it).
  'css-grid': (d) => (d.type === 'decl' && d.prop !== 'display' ? 'inert without display:grid' : ''),
  // A font-family list is its own fallback: an engine without `ui-monospace` uses the next name.
  'extended-system-fonts': (d) => (d.type === 'decl' && GENERIC.test(d.value) ? 'generic family at the end' : ''),
  // The caniuse entry is about the shorthand's newer values (`underline dotted red`); a single CSS 2.1
  // keyword (none, underline, line-through) works everywhere.
  'mdn-text-decoration-shorthand': (d) => (d.type === 'decl' && SINGLE(d.value) ? 'single CSS 2.1 keyword' : ''),
  // Partial support is about `overflow: clip` and two-value `overflow`; one of visible/hidden/auto/scroll is CSS 2.1.
  'css-overflow': (d) => (d.type === 'decl' && /^(visible|hidden|auto|scroll)$/.test(d.value.trim()) ? 'CSS 2.1 value' : ''),
  // doiuse matches `min(` inside the grid function `minmax(`; a real min()/max()/clamp() still fails.
  'css-math-functions': (d) => (d.type === 'decl' && !/(^|[^\w-])(min|max|clamp)\(/.test(d.value) ? 'only minmax()' : ''),
  // `break-inside:avoid` (print only) is flagged as partial multi-column support: a page-break hint; an engine
  // without it may split a chart across two printed pages, nothing worse.
  'multicolumn': (d) => (d.type === 'decl' && /^break-(inside|before|after)$/.test(d.prop) ? 'print hint only' : ''),
  // @page (poster.css, printed by staff): an engine without it prints with its own page margins.
  'css-paged-media': (d) => (d.type === 'atrule' && d.name === 'page' ? 'print hint only' : ''),
};

// Properties that doiuse 6's feature data does not know, with the first engines that have them.
const NOT_IN_DOIUSE = { 'aspect-ratio': 'Chrome 88, iOS Safari 15' };

function insideSupports(node) {
  for (let p = node.parent; p; p = p.parent) if (p.type === 'atrule' && p.name === 'supports') return true;
  return false;
}

function hasFallbackBefore(decl) {
  if (decl.type !== 'decl' || !decl.parent) return false;
  const names = new Set([decl.prop]);
  for (const prefix of ['-webkit-', '-moz-', '-ms-']) names.add(prefix + decl.prop);
  let found = false;
  decl.parent.each((other) => {
    if (other === decl) return false;
    if (other.type === 'decl' && names.has(other.prop)) found = true;
    return undefined;
  });
  return found;
}

let failed = 0;
for (const file of process.argv.slice(2)) {
  const css = readFileSync(file, 'utf8');
  const usages = [];
  await postcss([new DoIUse({ browsers: BROWSERS, onFeatureUsage: (u) => usages.push(u) }).postcss])
    .process(css, { from: file });
  postcss.parse(css, { from: file }).walkDecls((decl) => {
    if (NOT_IN_DOIUSE[decl.prop]) {
      usages.push({ feature: decl.prop, usage: decl, featureData: { missing: `all before ${NOT_IN_DOIUSE[decl.prop]}` } });
    }
  });
  for (const u of usages) {
    const node = u.usage;
    if (insideSupports(node) || hasFallbackBefore(node)) continue;
    const lenient = LENIENT[u.feature];
    if (lenient && lenient(node)) continue;
    failed += 1;
    const where = node.source && node.source.start ? `${file}:${node.source.start.line}` : file;
    console.log(JSON.stringify({ where, feature: u.feature, css: node.toString().slice(0, 120),
      missing: u.featureData ? u.featureData.missing : '' }));
  }
}
process.exit(failed ? 1 : 0);
