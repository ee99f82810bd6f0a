// The web UI's files (index.html, lib.js, dom.js, app.js, app.css, next to this
// module). Run from source they are read from disk; scripts/build.mjs replaces this
// module in the executable with one that carries them as strings.
import { readFileSync } from 'node:fs';

export type UiFile = 'index.html' | 'lib.js' | 'dom.js' | 'app.js' | 'app.css';

const cache = new Map<UiFile, string>();

export function uiAsset(name: UiFile): string {
  let text = cache.get(name);
  if (text === undefined) {
    text = readFileSync(new URL(`./${name}`, import.meta.url), 'utf8');
    cache.set(name, text);
  }
  return text;
}
