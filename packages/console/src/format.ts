/** Display helpers: numbers, bytes and times as the console prints them. */

export const percent = (x: number | null | undefined) => (typeof x === 'number' && Number.isFinite(x) ? `${(x * 100).toFixed(2)} %` : '–');
export const fixed = (x: number | null | undefined, d = 4) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '–');

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(2)} MiB`;
}

export function when(iso: string | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
