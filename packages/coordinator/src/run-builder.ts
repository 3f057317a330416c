import { ErrorCode, FtlError, headParameterCount, trainableParameterCount, unfrozenLayerCount, type HeadConfig, type Logger } from '@ftl/shared';
import type { ServedBackbone } from './backbone-server.js';
import type { CoordinatorConfig } from './config.js';
import { FederatedRun } from './federated-run.js';
import type { RunHost } from './run-host.js';
import type { Store } from './store/store.js';

/** The head a run trains: sized by the backbone's features at the run's cut point and by the run's label set. */
export function headFor(backbone: ServedBackbone, config: CoordinatorConfig): HeadConfig {
  const { featureDim } = backbone.extractor.at(config.featureLayer ?? backbone.featureLayer);
  return {
    featureDim,
    hidden: config.hidden,
    classes: config.classes.length,
    ...(config.l2 > 0 ? { l2: config.l2 } : {}),
    ...(config.dropout > 0 ? { dropout: config.dropout } : {}),
  };
}

/**
 * Builds a run on `backbone`, validating what only the model can check: head layers, and that its
 * largest update fits `maxMessageBytes` (when given). An absurd head is refused by arithmetic before any
 * tensor exists.
 */
export function buildRun(o: {
  config: CoordinatorConfig;
  backbone: ServedBackbone;
  host: RunHost;
  log: Logger;
  store: Store | undefined;
  maxMessageBytes: number | undefined;
}): FederatedRun {
  const { config, backbone, maxMessageBytes } = o;
  const head = headFor(backbone, config);
  // Head layers kept on the sites never travel; the run's own check below counts exactly what does.
  const fx = backbone.extractor.at(config.featureLayer ?? backbone.featureLayer);
  const unfrozen = unfrozenLayerCount(config.fineTuning, config.rounds);
  const values = unfrozen > 0 && fx.kind === 'layers' ? trainableParameterCount(fx, unfrozen, head) : headParameterCount(head);
  const bytes = values * 4 * 2 + 64 * 1024;
  if (maxMessageBytes !== undefined && config.localLayers.length === 0 && bytes > maxMessageBytes) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `run ${config.runId}: its largest updates (head and unfrozen backbone layers) take ${bytes} bytes, above this server's message ` +
        `limit of ${maxMessageBytes}; use fewer hidden units or unfrozen layers (fineTuning.layers; mode scratch trains them all), or restart serve with a larger --max-message-mb`,
    );
  }
  const run = new FederatedRun(config, backbone, head, o.host, o.log, o.store);
  if (maxMessageBytes !== undefined && run.maxMessageBytes() > maxMessageBytes) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `run ${config.runId}: its largest updates (head and unfrozen backbone layers) take ${run.maxMessageBytes()} bytes, above this ` +
        `server's message limit of ${maxMessageBytes}; use fewer hidden units or unfrozen layers (fineTuning.layers), or restart ` +
        'serve with a larger --max-message-mb',
    );
  }
  return run;
}
