// Finding elements of a page under jsdom: `q` may find nothing, `must` throws naming
// the selector it did not find.
import type { DomElement } from 'jsdom';

export function pageQueries(doc: { querySelector(sel: string): DomElement | null }): { q: (sel: string) => DomElement | null; must: (sel: string) => DomElement } {
  const q = (sel: string): DomElement | null => doc.querySelector(sel);
  const must = (sel: string): DomElement => {
    const el = q(sel);
    if (!el) throw new Error(`no ${sel} in the page`);
    return el;
  };
  return { q, must };
}
