// Every document the repository points to is in the repository: relative links in the
// Markdown files (and their #anchors), repository paths cited in those files, and
// paths cited in code comments: a path from the root (under src, docs, test, …), one
// relative to the citing file, or a bare upper-case Markdown name.
// A file that moves or a doc that is not in the repo fails here, naming the citation.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Top-level folders a cited path may start with; anything else (DATA/, /tmp, data/n1) is not a repo path. */
const ROOT_DIRS = ['src', 'raft', 'cli', 'test', 'scripts', 'docs', 'config', 'bench'];
const SKIP_DIRS = new Set(['node_modules', 'dist', 'test-results', '.git', '.tap']);
const CODE_EXTENSIONS = ['.ts', '.mjs', '.js', '.sh'];

interface Problem {
  file: string;
  line: number;
  cited: string;
  why: string;
}

function walk(root: string, dir: string, out: string[]): void {
  for (const name of readdirSync(join(root, dir))) {
    if (SKIP_DIRS.has(name)) continue;
    const rel = dir === '' ? name : `${dir}/${name}`;
    if (statSync(join(root, rel)).isDirectory()) walk(root, rel, out);
    else out.push(rel);
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A cited source file: ESM imports name `x.js` for `x.ts`. */
function sourceExists(path: string): boolean {
  return exists(path) || (path.endsWith('.js') && exists(`${path.slice(0, -3)}.ts`));
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[`*_]/g, '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of a Markdown file's headings, with GitHub's -1, -2 … for repeats. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const m of withoutFences(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(m[1] ?? '');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Fenced code blocks blanked out (same length, so offsets and lines stay right). */
function withoutFences(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, (block) => block.replace(/[^\n]/g, ' '));
}

/** Relative links `[text](target)` and `[ref]: target` of one Markdown file that do not resolve. */
export function checkMarkdownLinks(root: string, file: string): Problem[] {
  const text = readFileSync(join(root, file), 'utf8');
  const prose = withoutFences(text).replace(/`[^`\n]*`/g, (code) => ' '.repeat(code.length));
  const problems: Problem[] = [];
  const targets = [
    ...[...prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => ({ target: m[1] ?? '', at: m.index })),
    ...[...prose.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/gm)].map((m) => ({ target: m[1] ?? '', at: m.index })),
  ];
  for (const { target, at } of targets) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
    const [pathPart = '', anchor] = target.split('#', 2);
    const path = decodeURIComponent(pathPart);
    const abs = path === '' ? join(root, file) : resolve(root, dirname(file), path);
    const problem = (why: string): void => {
      problems.push({ file, line: lineOf(text, at), cited: target, why });
    };
    if (!abs.startsWith(root)) problem('points outside the repository');
    else if (!exists(abs)) problem('no such file');
    else if (anchor !== undefined && anchor !== '' && abs.endsWith('.md') && !anchorsOf(readFileSync(abs, 'utf8')).has(anchor.toLowerCase())) {
      problem(`no heading with anchor #${anchor} in ${relative(root, abs)}`);
    }
  }
  return problems;
}

/**
 * Repository paths cited in a piece of text (a comment, a document) that do not
 * resolve: paths under src, docs and the other top-level folders from the root,
 * `./…` and `../…` from the citing file, a bare Markdown file name beside the file, at
 * the root or in docs/, and any absolute path to a Markdown file (a document outside
 * the repository).
 */
export function checkCitedPaths(root: string, file: string, text: string, firstLine = 1): Problem[] {
  const problems: Problem[] = [];
  const token = /[A-Za-z0-9_.\-/]+/g;
  for (const m of text.matchAll(token)) {
    const before = text[m.index - 1] ?? '';
    const after = text[m.index + m[0].length] ?? '';
    // A glob, a placeholder or part of a larger word/URL/package name: not a path.
    if (/[*{}<>$@:\\~=]/.test(before) || /[*{}<>$\\]/.test(after)) continue;
    if (/[A-Za-z0-9]/.test(before)) continue;
    let cited = m[0].replace(/[.,]+$/, '');
    if (cited.includes('//')) continue;
    const line = firstLine + lineOf(text, m.index) - 1;
    let abs: string | null = null;
    if (cited.startsWith('/')) {
      if (cited.endsWith('.md')) problems.push({ file, line, cited, why: 'a document outside the repository' });
      continue;
    } else if (cited.startsWith('./') || cited.startsWith('../')) {
      abs = resolve(root, dirname(file), cited);
    } else if (ROOT_DIRS.some((d) => cited.startsWith(`${d}/`))) {
      abs = join(root, cited);
    } else if (/^[A-Za-z0-9_-]+\.md$/.test(cited)) {
      const candidates = [join(root, dirname(file), cited), join(root, cited), join(root, 'docs', cited)];
      if (!candidates.some(exists)) problems.push({ file, line, cited, why: 'no such document beside it, at the root or in docs/' });
      continue;
    } else {
      continue;
    }
    cited = cited.replace(/\/+$/, '');
    if (!abs.startsWith(root)) problems.push({ file, line, cited, why: 'points outside the repository' });
    else if (!sourceExists(abs.replace(/\/+$/, ''))) problems.push({ file, line, cited, why: 'no such file or folder' });
  }
  return problems;
}

/** The comments of a TypeScript/JavaScript file, each with the line it starts on. */
function scriptComments(path: string, text: string): Array<{ text: string; line: number }> {
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true, path.endsWith('.ts') ? ts.ScriptKind.TS : ts.ScriptKind.JS);
  const seen = new Set<number>();
  const out: Array<{ text: string; line: number }> = [];
  const take = (ranges: ts.CommentRange[] | undefined): void => {
    for (const r of ranges ?? []) {
      if (seen.has(r.pos)) continue;
      seen.add(r.pos);
      out.push({ text: text.slice(r.pos, r.end), line: source.getLineAndCharacterOfPosition(r.pos).line + 1 });
    }
  };
  const visit = (node: ts.Node): void => {
    take(ts.getLeadingCommentRanges(text, node.getFullStart()));
    take(ts.getTrailingCommentRanges(text, node.getEnd()));
    for (const child of node.getChildren(source)) visit(child);
  };
  visit(source);
  return out;
}

/** The `#` comments of a shell script or Makefile. */
function hashComments(text: string): Array<{ text: string; line: number }> {
  return text.split('\n').flatMap((l, i) => {
    const m = /^\s*#(?!!)(.*)$/.exec(l);
    return m ? [{ text: m[1] ?? '', line: i + 1 }] : [];
  });
}

export function checkCodeComments(root: string, file: string): Problem[] {
  const text = readFileSync(join(root, file), 'utf8');
  const comments = file.endsWith('.sh') || file === 'Makefile' ? hashComments(text) : scriptComments(join(root, file), text);
  return comments.flatMap((c) => checkCitedPaths(root, file, c.text, c.line));
}

function format(problems: Problem[]): string[] {
  return problems.map((p) => `${p.file}:${p.line} ${p.cited}: ${p.why}`);
}

function repoFiles(): string[] {
  const files: string[] = [];
  walk(repoRoot, '', files);
  return files.sort();
}

t.test('relative links in the Markdown files resolve', async (t) => {
  const problems = repoFiles()
    .filter((f) => f.endsWith('.md'))
    .flatMap((f) => checkMarkdownLinks(repoRoot, f));
  t.same(format(problems), [], 'every link resolves');
});

t.test('repository paths cited in the documentation exist', async (t) => {
  const problems = repoFiles()
    .filter((f) => f.endsWith('.md'))
    .flatMap((f) => checkCitedPaths(repoRoot, f, withoutFences(readFileSync(join(repoRoot, f), 'utf8'))));
  t.same(format(problems), [], 'every cited path exists');
});

t.test('paths and documents cited in code comments exist', async (t) => {
  const code = repoFiles().filter(
    (f) => f === 'Makefile' || (ROOT_DIRS.includes(f.split('/')[0] ?? '') && CODE_EXTENSIONS.some((e) => f.endsWith(e))),
  );
  t.ok(code.length > 100, `${code.length} code files read`);
  t.same(format(code.flatMap((f) => checkCodeComments(repoRoot, f))), [], 'every cited path exists');
});

t.test('the checks fail on what they are meant to catch', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'doc-links-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'docs'));
  mkdirSync(join(root, 'src/a'), { recursive: true });
  writeFileSync(join(root, 'docs/x.md'), '# Title\n\n## The `make test` target\n\nSee [y](y.md), [x](#title), [z](#nowhere) and [api](x.md#the-make-test-target).\n\n```\n[not a link](missing.md)\n```\n');
  writeFileSync(join(root, 'src/a/b.ts'), "// See docs/x.md and docs/gone.md, ../a/c.ts, API.md and /work/shared/HOST.md.\nconst s = 'docs/in-a-string.md';\n");
  writeFileSync(join(root, 'src/a/c.ts'), '');
  t.same(format(checkMarkdownLinks(root, 'docs/x.md')), [
    'docs/x.md:5 y.md: no such file',
    'docs/x.md:5 #nowhere: no heading with anchor #nowhere in docs/x.md',
  ]);
  t.same(format(checkCodeComments(root, 'src/a/b.ts')), [
    'src/a/b.ts:1 docs/gone.md: no such file or folder',
    'src/a/b.ts:1 API.md: no such document beside it, at the root or in docs/',
    'src/a/b.ts:1 /work/shared/HOST.md: a document outside the repository',
  ]);
  t.equal(slug('The `make test` target'), 'the-make-test-target');
});
