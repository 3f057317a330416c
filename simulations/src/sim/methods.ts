import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BACKBONE_META_FILE, readBackboneMeta, type RunConfig } from '@ftl/coordinator';
import { createRng, ErrorCode, FtlError, loadLayersModelFromFolder, saveLayersModelToFolder } from '@ftl/shared';
import type { Baseline } from './config.js';

/** A method of a study: `transfer` (the run as configured) or a baseline. */
export type Method = 'transfer' | Baseline;

/** How a method changes the study's run: its run config, its backbone, and how its sites are formed. */
export interface MethodPlan {
  run: RunConfig;
  backboneDir: string;
  /** `federated`: the study's sites; `pooled`: one site with all their images; `each`: every site alone. */
  sites: 'federated' | 'pooled' | 'each';
}

const FEATURE_EXTRACTION = { mode: 'feature-extraction', layers: 1, everyRounds: 1, backboneLrFactor: 1 } as const;

/** The input shape a backbone folder declares. */
async function inputShapeOf(backboneDir: string): Promise<[number, number, number]> {
  const meta = await readBackboneMeta(backboneDir);
  return meta.inputShape as [number, number, number];
}

/**
 * A backbone that is no backbone: the image flattened, so the head is a linear model on the raw inputs —
 * the cheapest baseline a transferred representation has to beat.
 */
export async function rawInputsBackbone(dir: string, inputShape: readonly number[]): Promise<string> {
  const model = tf.sequential({ layers: [tf.layers.flatten({ inputShape: [...inputShape], name: 'features' })] });
  await saveLayersModelToFolder(model, dir);
  model.dispose();
  await writeFile(join(dir, BACKBONE_META_FILE), `${JSON.stringify({ name: 'raw-inputs', featureLayer: 'features', inputShape })}\n`);
  return dir;
}

/**
 * The backbone's architecture with seeded random weights (Glorot-uniform kernels, zero biases, batch
 * normalisation at γ = 1, β = 0 and its statistics at 0 and 1): what the pretrained weights are worth
 * is the gap between transfer and this.
 */
export async function randomizedBackbone(backboneDir: string, dir: string, seed: number): Promise<string> {
  const meta = JSON.parse(await readFile(join(backboneDir, BACKBONE_META_FILE), 'utf8')) as Record<string, unknown>;
  let model: tf.LayersModel;
  try {
    model = await loadLayersModelFromFolder(backboneDir);
  } catch (err) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `random-backbone needs a layers model, and ${backboneDir} did not load as one (${(err as Error).message}); leave the baseline out for a graph backbone`,
      { cause: err },
    );
  }
  const rng = createRng(seed);
  for (const layer of model.layers) {
    const fresh = layer.weights.map((w) => {
      const name = w.originalName;
      const shape = w.shape.map((d) => d ?? 1);
      const size = shape.reduce((a, b) => a * b, 1);
      const values = new Float32Array(size);
      if (/kernel|depthwise|pointwise/.test(name)) {
        const receptive = shape.slice(0, -2).reduce((a, b) => a * b, 1);
        const fanIn = (shape.at(-2) ?? 1) * receptive;
        const fanOut = (shape.at(-1) ?? 1) * receptive;
        const limit = Math.sqrt(6 / (fanIn + fanOut));
        for (let i = 0; i < size; i++) values[i] = (2 * rng.next() - 1) * limit;
      } else if (/gamma|moving_variance/.test(name)) {
        values.fill(1);
      }
      return tf.tensor(values, shape);
    });
    if (fresh.length > 0) layer.setWeights(fresh);
    tf.dispose(fresh);
  }
  await saveLayersModelToFolder(model, dir);
  model.dispose();
  await writeFile(join(dir, BACKBONE_META_FILE), `${JSON.stringify({ ...meta, name: `${String(meta['name'] ?? 'backbone')}-random` })}\n`);
  return dir;
}

/**
 * What each method runs, given the study's run and backbone. `scratch` trains the same network from
 * random weights with every layer federated; `linear` is a linear model on the raw inputs; the
 * `random-backbone` freezes the backbone's architecture at random weights; `centralized` trains the
 * configured run at one site holding every site's images; `local` trains it at each site alone.
 */
export async function planMethod(
  method: Method,
  run: RunConfig,
  backboneDir: string,
  scratchDir: (name: string) => string,
  seed: number,
): Promise<MethodPlan> {
  switch (method) {
    case 'transfer':
      return { run, backboneDir, sites: 'federated' };
    case 'scratch':
      return {
        run: { ...run, headInit: 'random', fineTuning: { ...FEATURE_EXTRACTION, mode: 'scratch' } },
        backboneDir,
        sites: 'federated',
      };
    case 'linear': {
      const dir = await rawInputsBackbone(scratchDir('raw-inputs'), await inputShapeOf(backboneDir));
      const { featureLayer: _cut, ...rest } = run;
      return { run: { ...rest, hidden: [], headInit: 'random', fineTuning: FEATURE_EXTRACTION }, backboneDir: dir, sites: 'federated' };
    }
    case 'random-backbone':
      return {
        run: { ...run, fineTuning: FEATURE_EXTRACTION },
        backboneDir: await randomizedBackbone(backboneDir, scratchDir(`random-backbone-${seed}`), seed),
        sites: 'federated',
      };
    case 'centralized':
      return { run, backboneDir, sites: 'pooled' };
    case 'local':
      return { run, backboneDir, sites: 'each' };
  }
}
