import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, initBackend, isFtlError, MODEL_JSON } from '@ftl/shared';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backboneCatalog, BACKBONES_DIR, backboneTable, resolveBackboneSource, summarizeBackbones } from './backbone-catalog.js';
import { BACKBONE_META_FILE } from './backbone-meta.js';
import { loadServedBackbone } from './backbone-server.js';
import { DEFAULT_BACKBONE, DEFAULT_BACKBONE_DIR, SMALL_BACKBONE_DIR } from './config.js';

let scratch: string;

beforeAll(async () => {
  await initBackend();
  scratch = await mkdtemp(join(tmpdir(), 'ftl-catalog-'));
  await mkdir(join(scratch, 'with-model'));
  await writeFile(join(scratch, 'with-model', MODEL_JSON), '{}');
  await mkdir(join(scratch, 'empty'));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** Feature width each committed backbone promises (its description's, or the default backbone's 5×5×32). */
const COMMITTED = [
  { name: 'encoder-fmnist', featureDim: 128, inputShape: [28, 28, 1] },
  { name: 'encoder-fmnist-0to4', featureDim: 128, inputShape: [28, 28, 1] },
  { name: 'encoder-spatial-fmnist', featureDim: 256, inputShape: [28, 28, 1] },
  { name: 'encoder-spatial-fmnist-0to4', featureDim: 256, inputShape: [28, 28, 1] },
  { name: 'small-fmnist', featureDim: 800, inputShape: [28, 28, 1] },
  // The tabular encoder takes a breast-cancer row: 30 numeric columns, encoded as 1 × 30 × 1.
  { name: 'table-mlp-wdbc-source', featureDim: 16, inputShape: [1, 30, 1] },
];

describe('backboneCatalog', () => {
  test('lists the committed backbones by name; the default is one of them, and small-fmnist is read from its own folder', async () => {
    const catalog = await backboneCatalog();
    expect(catalog.map((b) => b.name)).toEqual(COMMITTED.map((b) => b.name));
    expect(catalog.find((b) => b.name === DEFAULT_BACKBONE)!.dir).toBe(DEFAULT_BACKBONE_DIR);
    expect(catalog.find((b) => b.name === 'small-fmnist')!.dir).toBe(SMALL_BACKBONE_DIR);
    expect(catalog.find((b) => b.name === 'encoder-fmnist')!.dir).toBe(join(BACKBONES_DIR, 'encoder-fmnist'));
  });

  test('only folders holding a model.json are backbones', async () => {
    expect((await backboneCatalog(scratch)).map((b) => b.name)).toEqual(['small-fmnist', 'with-model']);
  });
});

describe('resolveBackboneSource', () => {
  test.each(['https://example.org/backbone/', 'http://127.0.0.1:9/model.json', 'file:///tmp/backbone', './encoder-fmnist', '/no/such/folder'])(
    '%s is a source, used as it is',
    async (source) => {
      expect(await resolveBackboneSource(source)).toBe(source);
    },
  );

  test('a folder that exists wins over a name', async () => {
    const cwd = process.cwd();
    process.chdir(scratch);
    try {
      await mkdir('encoder-fmnist', { recursive: true });
      expect(await resolveBackboneSource('encoder-fmnist')).toBe('encoder-fmnist');
    } finally {
      process.chdir(cwd);
    }
  });

  test('an unknown name is refused in one line that lists the known ones', async () => {
    const err = await resolveBackboneSource('resnet-imagenet').catch((e: unknown) => e);
    expect(isFtlError(err, ErrorCode.BackboneLoad)).toBe(true);
    const message = (err as Error).message;
    expect(message).not.toContain('\n');
    expect(message).toMatch(
      /unknown backbone "resnet-imagenet".*encoder-fmnist, encoder-fmnist-0to4, encoder-spatial-fmnist, encoder-spatial-fmnist-0to4, small-fmnist, table-mlp-wdbc-source; or give a folder path or an http\(s\) address/,
    );
  });
});

describe("every committed backbone loads by name through the coordinator's loader", () => {
  test.each(COMMITTED)('$name: $featureDim features, the digest its description records', async ({ name, featureDim, inputShape }) => {
    const served = await loadServedBackbone(name);
    try {
      const meta = JSON.parse(await readFile(join(served.dir, BACKBONE_META_FILE), 'utf8')) as {
        sha256: string;
        architecture?: { featureDim: number };
      };
      expect([served.kind, served.featureLayer, served.featureDim, served.inputShape]).toEqual(['layers', 'features', featureDim, inputShape]);
      expect(served.sha256).toBe(meta.sha256);
      if (meta.architecture) expect(meta.architecture.featureDim).toBe(featureDim);
    } finally {
      served.extractor.dispose();
    }
  });
});

test('the table of committed backbones is read from their files', async () => {
  const rows = await summarizeBackbones();
  expect(rows.map((r) => r.name)).toEqual(COMMITTED.map((b) => b.name));
  expect(rows.find((r) => r.name === 'small-fmnist')).toMatchObject({
    architecture: 'conv 5×5/2 16 → conv 3×3/2 32 → flatten',
    encoderParameters: 5_056,
    linearHead10: 8_010,
    embedding: 800,
    sourceClasses: 'all',
  });
  for (const name of ['encoder-fmnist', 'encoder-fmnist-0to4']) {
    const meta = JSON.parse(await readFile(join(BACKBONES_DIR, name, BACKBONE_META_FILE), 'utf8')) as {
      parameters: { encoder: number; linearHead10: number };
      source: { testAccuracy: number };
    };
    expect(rows.find((r) => r.name === name)).toMatchObject({
      architecture: 'conv 3×3/2 16+BN → conv 3×3/2 32+BN → conv 3×3/2 64+BN → conv 3×3 128+BN → global average pool',
      encoderParameters: meta.parameters.encoder,
      linearHead10: meta.parameters.linearHead10,
      embedding: 128,
      sourceClasses: name === 'encoder-fmnist' ? 'all' : '0,1,2,3,4',
      testAccuracy: meta.source.testAccuracy,
    });
  }
  expect(rows.find((r) => r.name === 'encoder-spatial-fmnist')).toMatchObject({
    architecture: 'conv 3×3/2 16+BN → conv 3×3/2 32+BN → conv 3×3/2 64+BN → conv 3×3 128+BN → conv 1×1 16+BN → flatten',
    embedding: 256,
    linearHead10: 2_570,
    sourceClasses: 'all',
  });
  const table = backboneTable(rows).trimEnd().split('\n');
  expect(table).toHaveLength(2 + rows.length);
  expect(table[2]).toBe(
    '| encoder-fmnist | ' +
      rows[0]!.architecture +
      ` | ${rows[0]!.encoderParameters.toLocaleString('en-US')} | 1,290 | 128 | all | ` +
      `${(rows[0]!.testAccuracy! * 100).toFixed(2)}% | ${rows[0]!.trainingSeconds!.toFixed(0)} | \`${rows[0]!.command}\` |`,
  );
});
