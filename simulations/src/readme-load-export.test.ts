import { execFile } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_BACKBONE_DIR, exportGlobalModel, loadServedBackbone } from '@ftl/coordinator';
import { createHead, getTrainableWeights, initBackend, loadExportedModel, type HeadConfig } from '@ftl/shared';
import { readmeBlock } from '@ftl/shared/testing';
import { beforeAll, describe, expect, test } from 'vitest';
import { scratch } from './test-federation.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);
const CLASSES = ['cat', 'dog', 'owl'];

let work: string;
let expected: string;
beforeAll(async () => {
  await initBackend();
  work = await scratch('readme-export');
  // The script resolves @ftl/client and tfjs as a site's would: from a node_modules beside it (here the
  // repository's, whose @ftl/client is the built package).
  await symlink(join(ROOT, 'node_modules'), join(work, 'node_modules'), 'dir');
  // A real export, by the coordinator's own export path, where the block expects it.
  const backbone = await loadServedBackbone(DEFAULT_BACKBONE_DIR);
  const head: HeadConfig = { featureDim: backbone.extractor.featureDim, hidden: [8], classes: CLASSES.length };
  const model = createHead(head, 11);
  await mkdir(join(work, '.ftl'), { recursive: true });
  const dir = join(work, '.ftl', 'global-model');
  await exportGlobalModel({ backbone, head, weights: getTrainableWeights(model), dir, meta: { runId: 'readme', classes: CLASSES } });
  model.dispose();
  // What the block should print, from the same export loaded here.
  const loaded = await loadExportedModel(dir);
  const best = tf.tidy(
    () =>
      loaded
        .predict(tf.zeros([2, 28, 28, 1]))
        .argMax(1)
        .arraySync() as number[],
  );
  loaded.dispose();
  expected = best.map((k) => CLASSES[k]).join(' ');
});

describe('README: using an exported model', () => {
  // tfjs-node is not installed here, so this is also the proof that loading needs no tfjs-node.
  test.each(['cpu', 'wasm'])('the block runs as a Node script on the %s backend and prints each image’s label', async (backend) => {
    const script = join(work, `load-${backend}.mjs`);
    await writeFile(script, await readmeBlock('load-export', 'js'));
    const { stdout, stderr } = await run(process.execPath, [script], {
      cwd: work,
      env: { ...process.env, FTL_BACKEND: backend, FTL_LOG: 'warn' },
      timeout: 60_000,
    });
    // On cpu, tfjs itself suggests tfjs-node on stderr; nothing else may appear there.
    expect(stderr).not.toMatch(/error|fetch failed|not implemented/i);
    expect(stdout).toBe(`${expected}\n`);
    expect(CLASSES).toEqual(expect.arrayContaining(stdout.trim().split(' ')));
  });
});
