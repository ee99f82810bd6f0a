// Durations ("90s", "1h30m", "250ms", "2h") and sizes ("256m", "1g", "512MiB") as users type them.

const DURATION_UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** Seconds in a duration such as "90s", "1h30m", "1.5h", "250ms"; a bare number is seconds. */
export function parseDurationSeconds(text: string): number {
  const s = text.trim().toLowerCase();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * (DURATION_UNITS[m[2] ?? 's'] ?? 1);
    matched = re.lastIndex;
  }
  if (matched !== s.length || s.length === 0) throw new Error(`'${text}' is not a duration (e.g. 90s, 1h30m, 250ms)`);
  return total;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1 / 1024, kb: 1 / 1024, kib: 1 / 1024, m: 1, mb: 1, mib: 1, g: 1024, gb: 1024, gib: 1024 };

/** Mebibytes in a size such as "256m", "1g", "512MiB"; a bare number is MiB. */
export function parseSizeMB(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = SIZE_UNITS[(m?.[2] ?? '').toLowerCase()];
  if (!m || unit === undefined) throw new Error(`'${text}' is not a size (e.g. 256m, 1g)`);
  return Number(m[1]) * unit;
}

export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds * 10) / 10}s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (m < 60) return s ? `${m}m${s}s` : `${m}m`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
}

/** A byte count as people read it: "812 B", "3.4 KiB", "270.0 MiB", "1.9 GiB". */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
