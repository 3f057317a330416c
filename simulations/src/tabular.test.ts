import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FtlClient } from '@ftl/client';
import { parseRunConfig, Store } from '@ftl/coordinator';
import {
  createLogger,
  initBackend,
  loadCsvTable,
  parseCsvTable,
  partitionIndices,
  rawLabels,
  splitRawTable,
  subsetRawTable,
  type RawTable,
  type TableSpec,
} from '@ftl/shared';
import { describe, expect, test } from 'vitest';
import { heldOutTableAccuracy } from './holdout.js';
import { expandStudy } from './sim/config.js';
import { runStudy } from './sim/study.js';
import { tableTask } from './sim/table-task.js';
import { rawInputsBackbone } from './sim/methods.js';
import { createCoordinator, scratch } from './test-federation.js';

const WDBC = new URL('../data/breast-cancer/wdbc.csv', import.meta.url).pathname;

/** The breast-cancer table's run config block: every column numeric, the diagnosis the label. */
function wdbcTable(header: readonly string[]): TableSpec {
  const columns = header.map((name) => (name === 'diagnosis' ? { name, type: 'categorical', role: 'label' } : { name, type: 'numeric' }));
  return parseRunConfig({ table: { columns } }).table!;
}

/** Three hospitals holding a label-skewed (Dirichlet 0.5) share each of the table's first 70 %, the rest held out. */
function hospitals(raw: RawTable, spec: TableSpec): { sites: RawTable[]; test: RawTable } {
  const [pool, test] = splitRawTable(raw, 0.3, 11);
  const names = rawLabels(pool, spec);
  const labels = Int32Array.from(names, (n) => (n === 'malignant' ? 1 : 0));
  const parts = partitionIndices(labels, 2, { kind: 'dirichlet', alpha: 0.5 }, 3, 3, 20);
  return { sites: parts.map((p) => subsetRawTable(pool, p)), test };
}

/** A CSV file of `t`'s rows, with `edit` applied to each data line (its 1-based index among them). */
async function writeTable(path: string, t: RawTable, edit: (cells: string[], i: number) => string[] = (c) => c): Promise<string> {
  const lines = [t.header.join(','), ...t.rows.map((r, i) => edit([...r], i + 1).join(','))];
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

describe('tabular federation on the breast-cancer table', () => {
  test('three hospitals agree a table encoding over real sockets, train the head, and the export scores held-out rows', async () => {
    await initBackend();
    const raw = loadCsvTable(WDBC);
    const spec = wdbcTable(raw.header);
    const { sites, test: heldOut } = hospitals(raw, spec);
    const dir = await scratch('tabular');
    const backboneDir = await rawInputsBackbone(join(dir, 'raw'), [1, 30, 1]);
    const store = Store.open(join(dir, 'c.db'));
    const exportDir = join(dir, 'model');
    const coordinator = await createCoordinator(
      {
        runId: 'wdbc',
        backboneDir,
        classes: ['benign', 'malignant'],
        table: spec,
        minClients: 3,
        rounds: 4,
        hidden: [],
        fit: { epochs: 5, batchSize: 16, learningRate: 0.05 },
        exportDir,
        waitTimeoutMs: 60_000,
        roundDeadlineMs: 60_000,
      },
      { store },
    );
    const { url } = await coordinator.listen();
    const clients = sites.map(
      (table, i) =>
        new FtlClient({
          serverUrl: url,
          name: `hospital-${i}`,
          table,
          cacheDir: join(dir, `cache-${i}`),
          auditLog: false,
          log: createLogger('client'),
        }),
    );
    const ends = clients.map((c) => c.run());
    const summary = await coordinator.run();
    await Promise.all(ends);
    await coordinator.close();

    expect(summary.rounds).toHaveLength(4);
    expect(summary.rounds.every((r) => r.accepted === 3)).toBe(true);
    // The encoding the run fixed: every column scaled by the pooled mean and standard deviation of the three sites' training rows.
    const event = store.listEvents('wdbc').find((e) => e.type === 'table-encoding')!;
    const columns = (event.data as { columns: Array<{ name: string; shift: number; scale: number; fill: number }> }).columns;
    expect(columns).toHaveLength(30);
    expect(columns[0]!.name).toBe('mean_radius');
    expect(columns[0]!.shift).toBeGreaterThan(10); // mean radius is 6.98–28.11
    expect(columns[0]!.shift).toBeLessThan(20);
    store.close();
    const meta = JSON.parse(await readFile(join(exportDir, 'ftl-model.json'), 'utf8')) as { table: { features: string[] } };
    expect(meta.table.features).toHaveLength(30);
    // A linear model on standardised WDBC features is a strong classifier; a broken encoding would not get near.
    expect(await heldOutTableAccuracy(exportDir, heldOut)).toBeGreaterThan(0.9);
  }, 300_000);

  test('a site whose table has a non-numeric cell stops with its line and column, and the run carries on with the others', async () => {
    await initBackend();
    const raw = loadCsvTable(WDBC);
    const spec = wdbcTable(raw.header);
    const { sites } = hospitals(raw, spec);
    const dir = await scratch('tabular-broken');
    const backboneDir = await rawInputsBackbone(join(dir, 'raw'), [1, 30, 1]);
    // Line 8 of the broken file (its 7th data row) says "abc" where the mean texture is.
    const brokenFile = await writeTable(join(dir, 'broken.csv'), sites[2]!, (cells, i) =>
      i === 7 ? cells.map((c, j) => (j === 1 ? 'abc' : c)) : cells,
    );
    const broken = loadCsvTable(brokenFile);
    const coordinator = await createCoordinator({
      runId: 'wdbc-broken',
      backboneDir,
      classes: ['benign', 'malignant'],
      table: spec,
      minClients: 2,
      rounds: 2,
      hidden: [],
      fit: { epochs: 2, batchSize: 16, learningRate: 0.05 },
      waitTimeoutMs: 60_000,
      roundDeadlineMs: 60_000,
    });
    const { url } = await coordinator.listen();
    const make = (table: RawTable, name: string) =>
      new FtlClient({ serverUrl: url, name, table, cacheDir: join(dir, name), auditLog: false, log: createLogger('client', { level: 'silent' }) });
    const bad = make(broken, 'hospital-broken').run();
    await expect(bad).rejects.toThrow(`${brokenFile} line 8, column "mean_texture": "abc" is not a number`);
    const good = [make(sites[0]!, 'hospital-a'), make(sites[1]!, 'hospital-b')];
    const ends = good.map((c) => c.run());
    const summary = await coordinator.run();
    await Promise.all(ends);
    await coordinator.close();
    expect(summary.rounds).toHaveLength(2);
    expect(summary.rounds.every((r) => r.accepted === 2)).toBe(true);
  }, 300_000);

  test('a site missing a column is told which, and one with an extra column too, in one line', async () => {
    await initBackend();
    const raw = parseCsvTable('mean_radius,diagnosis,notes\n12.1,benign,x\n13.3,malignant,y\n', 'site.csv');
    const spec = parseRunConfig({
      table: {
        columns: [
          { name: 'mean_radius', type: 'numeric' },
          { name: 'mean_texture', type: 'numeric' },
          { name: 'diagnosis', type: 'categorical', role: 'label' },
        ],
      },
    }).table!;
    const dir = await scratch('tabular-columns');
    const backboneDir = await rawInputsBackbone(join(dir, 'raw'), [1, 2, 1]);
    const coordinator = await createCoordinator({
      runId: 'cols',
      backboneDir,
      classes: ['benign', 'malignant'],
      table: spec,
      minClients: 1,
      waitTimeoutMs: 5_000,
    });
    const { url } = await coordinator.listen();
    const client = new FtlClient({
      serverUrl: url,
      name: 'site',
      table: raw,
      cacheDir: join(dir, 'c'),
      auditLog: false,
      log: createLogger('client', { level: 'silent' }),
    });
    const error = await client.run().catch((err: Error) => err);
    await coordinator.close();
    expect((error as Error).message).toBe(
      `site.csv: its columns differ from the run's table: missing "mean_texture"; extra "notes"; give the file exactly the run's columns (table.columns of the run config), in any order`,
    );
  }, 60_000);

  test('a study shares one table among the sites, never giving them its source split, and scores each method on the held-out rows', async () => {
    const doc = JSON.parse(await readFile(new URL('../scenarios/tabular-wdbc.json', import.meta.url), 'utf8')) as Record<string, unknown>;
    delete doc['sweep'];
    const study = expandStudy(
      {
        ...doc,
        seeds: [1],
        baselines: ['centralized', 'local'],
        run: { ...(doc['run'] as object), rounds: 2 },
        data: { ...(doc['data'] as object), perSite: 20 },
      },
      'tabular-wdbc.json',
    );
    const config = study.base;
    const raw = loadCsvTable(WDBC);
    const source = splitRawTable(raw, 0.5, 7)[1];
    const task = tableTask(config)!;
    const held = new Set(source.lines);
    const sites = task.sites(1, 20);
    expect(sites.map((t) => t.rows.length)).toEqual([20, 20, 20]);
    for (const t of [...sites, task.test!]) expect(t.lines.some((l) => held.has(l))).toBe(false);
    const report = await runStudy(study);
    expect(report.runs.map((r) => [r.method, r.failed])).toEqual([
      ['transfer', undefined],
      ['centralized', undefined],
      ['local', undefined],
    ]);
    expect(report.heldOut.images).toBe(task.test!.rows.length);
    for (const r of report.runs) expect(r.heldOut).toBeGreaterThan(0.5);
  }, 300_000);
});
