import {
  combineTableSummaries,
  encodedWidth,
  ErrorCode,
  featureColumns,
  FtlError,
  PROTOCOL_VERSION,
  type TableEncoding,
  type TableSpec,
} from '@ftl/shared';
import type { CoordinatorConfig } from './config.js';
import type { RunContext } from './run-context.js';
import type { Store } from './store/store.js';

/** The store event that records a tabular run's encoding. */
const TABLE_ENCODING_EVENT = 'table-encoding';

/** The table a run's sites must hold, as `welcome` carries it (undefined for an image run). */
export function tableSpecOf(config: Pick<CoordinatorConfig, 'table'>): TableSpec | undefined {
  return config.table;
}

/**
 * Why a tabular run cannot start on this backbone and these settings, or undefined: the backbone must
 * take exactly the encoded row ({@link encodedWidth} values), and the table's own scaling replaces the
 * image normalisation and augmentation.
 */
export function tableRunProblem(config: CoordinatorConfig, inputShape: readonly number[]): string | undefined {
  const table = config.table;
  if (!table) return undefined;
  if (config.normalization !== 'none') {
    return `a tabular run scales its numeric columns itself (table.scaling: ${table.scaling}); set normalization to none`;
  }
  if (config.augment.copies > 0) return 'augmentation shifts and flips images; a tabular run takes none, so set augment.copies to 0';
  const width = encodedWidth(table);
  const values = inputShape.reduce((a, b) => a * b, 1);
  if (values !== width) {
    const kinds = featureColumns(table).length;
    return (
      `the backbone takes ${inputShape.join('×')} = ${values} values per input, but the run's table encodes a row as ${width} values ` +
      `(${kinds} feature columns); use a backbone made for these columns (npm run pretrain -- --table FILE --schema RUN.json) or change table.columns`
    );
  }
  return undefined;
}

/** The encoding a tabular run fixed before its first round, if it recorded one. */
export function storedTableEncoding(store: Store | undefined, runId: string): TableEncoding | undefined {
  const event = store
    ?.listEvents(runId)
    .filter((e) => e.type === TABLE_ENCODING_EVENT)
    .at(-1);
  return event ? { columns: (event.data as TableEncoding).columns } : undefined;
}

/**
 * The tabular run's encoding, once per run before its first round (like the federated normalisation):
 * the ready sites' summaries (category names each site holds in at least k rows, column statistics) are
 * combined into one vocabulary per categorical column and one fill and scaling per numeric column,
 * recorded so a resumed run keeps them, and sent to every ready site. A site that becomes ready later
 * gets the same ({@link sendTableEncoding}).
 *
 * @throws FtlError(INVALID_MESSAGE) when no ready site sent a summary.
 */
export function fixTableEncoding(ctx: RunContext): void {
  const { config, host, log, store } = ctx;
  if (!config.table) return;
  const { runId } = config;
  if (!ctx.tableEncoding) {
    const stored = storedTableEncoding(store, runId);
    if (stored) ctx.tableEncoding = stored;
    else {
      const reports = host.readyTables?.(runId) ?? [];
      if (reports.length === 0) throw new FtlError(ErrorCode.InvalidMessage, `run ${runId} trains on tables but no ready site sent a table summary`);
      const encoding = combineTableSummaries(reports, config.table);
      ctx.tableEncoding = encoding;
      const vocabularies = encoding.columns.filter((c) => c.vocabulary).map((c) => `${c.name}:${c.vocabulary!.length}`);
      log.info('table-encoding', {
        sites: reports.length,
        columns: encoding.columns.length,
        width: encodedWidth(config.table),
        ...(vocabularies.length > 0 ? { vocabularies: vocabularies.slice(0, 8).join(',') } : {}),
      });
      store?.appendEvent(runId, TABLE_ENCODING_EVENT, { columns: encoding.columns, clients: reports.map((r) => r.clientId) });
    }
  }
  for (const clientId of host.readyClients(runId)) sendTableEncoding(ctx, clientId);
}

/** Sends the run's fixed table encoding to one site (nothing before it is fixed, or in an image run). */
export function sendTableEncoding(ctx: RunContext, clientId: string): void {
  if (!ctx.tableEncoding) return;
  ctx.host.send(clientId, 'table-encoding', { protocol: PROTOCOL_VERSION, runId: ctx.config.runId, encoding: ctx.tableEncoding });
}
