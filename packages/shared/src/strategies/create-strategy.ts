import { ErrorCode, FtlError } from '../errors.js';
import { FedAvg } from './fed-avg.js';
import { FedAvgM } from './fed-avg-m.js';
import { FedOpt } from './fed-opt.js';
import { FedProx } from './fed-prox.js';
import { FedMedian, FedTrimmedAvg, Krum, NormBoundedFedAvg } from './robust-strategies.js';
import type { BaseStrategyOptions, Strategy } from './strategy.js';

type Range = { min?: number; max?: number; below?: number; integer?: boolean; default: number };

const FEDOPT = {
  eta: { min: Number.MIN_VALUE, default: 0.01 },
  beta1: { min: 0, below: 1, default: 0.9 },
  beta2: { min: 0, below: 1, default: 0.99 },
  tau: { min: Number.MIN_VALUE, default: 1e-3 },
} satisfies Record<string, Range>;

/** Every strategy ftl has, with its options, their ranges and defaults. */
export const STRATEGY_OPTIONS = {
  fedavg: {},
  fedprox: { mu: { min: 0, default: 0.01 } },
  fedavgm: { lr: { min: Number.MIN_VALUE, default: 1 }, momentum: { min: 0, below: 1, default: 0.9 } },
  fedadam: FEDOPT,
  fedyogi: FEDOPT,
  fedadagrad: FEDOPT,
  fedmedian: {},
  fedtrimmedavg: { beta: { min: 0, below: 0.5, default: 0.2 } },
  krum: { f: { min: 0, integer: true, default: 1 } },
  multikrum: { f: { min: 0, integer: true, default: 1 }, m: { min: 1, integer: true, default: 2 } },
  normbounded: { maxNorm: { min: Number.MIN_VALUE, default: 1 } },
} as const satisfies Record<string, Record<string, Range>>;

/** The name of a strategy. */
export type StrategyName = keyof typeof STRATEGY_OPTIONS;

/** A validated strategy choice: its name and every option (defaults filled in). */
export interface StrategyConfig {
  name: StrategyName;
  options: Record<string, number>;
}

/**
 * Validates a strategy name and its options given as `key=value,key=value` (unset keys take defaults).
 *
 * @example
 * parseStrategy('fedtrimmedavg', 'beta=0.2'); // { name: 'fedtrimmedavg', options: { beta: 0.2 } }
 * parseStrategy('krum', 'q=1'); // throws: unknown option "q" for krum; it takes f
 */
export function parseStrategy(name: string, optionsText = ''): StrategyConfig {
  if (!(name in STRATEGY_OPTIONS)) {
    throw new FtlError(ErrorCode.InvalidConfig, `strategy must be one of ${Object.keys(STRATEGY_OPTIONS).join(', ')} (got "${name}")`);
  }
  const spec: Record<string, Range> = STRATEGY_OPTIONS[name as StrategyName];
  const options: Record<string, number> = Object.fromEntries(Object.entries(spec).map(([k, r]) => [k, r.default]));
  for (const pair of optionsText
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [key, text, ...rest] = pair.split('=');
    const range = key === undefined ? undefined : spec[key];
    if (range === undefined || text === undefined || rest.length > 0) {
      const takes = Object.keys(spec).join(', ') || 'no options';
      throw new FtlError(ErrorCode.InvalidConfig, `unknown strategy option "${pair}" for ${name}; it takes ${takes} as key=value`);
    }
    const v = Number(text);
    const ok =
      text.trim() !== '' &&
      Number.isFinite(v) &&
      (!range.integer || Number.isInteger(v)) &&
      (range.min === undefined || v >= range.min) &&
      (range.max === undefined || v <= range.max) &&
      (range.below === undefined || v < range.below);
    if (!ok) {
      const bounds = [
        range.min !== undefined ? (range.min === Number.MIN_VALUE ? '> 0' : `≥ ${range.min}`) : '',
        range.below !== undefined ? `< ${range.below}` : '',
      ]
        .filter(Boolean)
        .join(' and ');
      throw new FtlError(
        ErrorCode.InvalidConfig,
        `${name} option ${key} must be ${range.integer ? 'an integer' : 'a number'} ${bounds} (got "${text}")`,
      );
    }
    options[key!] = v;
  }
  return { name: name as StrategyName, options };
}

/** Builds the strategy a validated config names. */
export function createStrategy(config: StrategyConfig, base: BaseStrategyOptions): Strategy {
  const o = config.options as Record<string, number>;
  switch (config.name) {
    case 'fedavg':
      return new FedAvg(base);
    case 'fedprox':
      return new FedProx(base, { mu: o['mu']! });
    case 'fedavgm':
      return new FedAvgM(base, { lr: o['lr']!, momentum: o['momentum']! });
    case 'fedadam':
    case 'fedyogi':
    case 'fedadagrad':
      return new FedOpt(base, config.name.slice(3) as 'adam' | 'yogi' | 'adagrad', {
        eta: o['eta']!,
        beta1: o['beta1']!,
        beta2: o['beta2']!,
        tau: o['tau']!,
      });
    case 'fedmedian':
      return new FedMedian(base);
    case 'fedtrimmedavg':
      return new FedTrimmedAvg(base, { beta: o['beta']! });
    case 'krum':
      return new Krum(base, { f: o['f']!, m: 1 });
    case 'multikrum':
      return new Krum(base, { f: o['f']!, m: o['m']! });
    case 'normbounded':
      return new NormBoundedFedAvg(base, { maxNorm: o['maxNorm']! });
  }
}
