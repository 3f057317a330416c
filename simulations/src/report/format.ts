import type { MeanInterval } from '../confidence.js';

/** `1.23 MB`: bytes in decimal units with three significant digits, `–` when unknown. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toPrecision(3)} ${units[unit]}`;
}

/** `1h 02m`, `4m 05s`, `12s`: a duration for a person, not a parser. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** `12.3 ± 1.5`, the mean alone with one value, `–` with none. */
export function formatInterval(m: MeanInterval, digits = 1): string {
  if (!Number.isFinite(m.mean)) return '–';
  return Number.isFinite(m.half) ? `${m.mean.toFixed(digits)} ± ${m.half.toFixed(digits)}` : m.mean.toFixed(digits);
}

/** A mean of bytes with its interval in the mean's unit: `1.23 MB ± 0.04`. */
export function formatBytesInterval(m: MeanInterval): string {
  const mean = formatBytes(m.mean);
  if (!Number.isFinite(m.half) || mean === '–') return mean;
  const [digits = '', unit = 'B'] = mean.split(' ');
  const scale = ({ B: 1, kB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 } as Record<string, number>)[unit] ?? 1;
  return `${mean} ± ${(m.half / scale).toFixed(digits.split('.')[1]?.length ?? 0)}`;
}
