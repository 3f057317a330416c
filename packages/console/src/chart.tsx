import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/** One line of a chart over rounds. */
export interface Line {
  label: string;
  values: Array<number | null>;
  color: string;
  dash?: number[];
}

/**
 * A line chart over rounds (uPlot): `rounds` on x, each line's values on y (null where a round has
 * none). The chart is drawn once and its data replaced as rounds arrive.
 */
export function RoundChart({ title, rounds, lines, percent }: { title: string; rounds: number[]; lines: Line[]; percent?: boolean }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = lines.map((l) => l.label).join('|');

  useEffect(() => {
    if (!box.current) return;
    const width = Math.max(280, box.current.clientWidth || 480);
    const opts: uPlot.Options = {
      title,
      width,
      height: 220,
      scales: { x: { time: false } },
      axes: [
        { label: 'round', values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : '')) },
        { values: (_u, ticks) => ticks.map((t) => (percent ? `${(t * 100).toFixed(0)}%` : t.toPrecision(2))) },
      ],
      series: [{ label: 'round' }, ...lines.map((l) => ({ label: l.label, stroke: l.color, width: 2, ...(l.dash ? { dash: l.dash } : {}) }))],
    };
    plot.current = new uPlot(opts, [rounds, ...lines.map((l) => l.values)] as uPlot.AlignedData, box.current);
    const resize = () => box.current && plot.current?.setSize({ width: Math.max(280, box.current.clientWidth), height: 220 });
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      plot.current?.destroy();
      plot.current = null;
    };
    // Rebuilt only when the set of lines changes; new rounds go through setData below.
  }, [shape, title]);

  useEffect(() => {
    plot.current?.setData([rounds, ...lines.map((l) => l.values)] as uPlot.AlignedData);
  }, [rounds, lines]);

  return (
    <figure class="chart">
      <div ref={box} role="img" aria-label={`${title} over ${rounds.length} rounds`} />
    </figure>
  );
}
