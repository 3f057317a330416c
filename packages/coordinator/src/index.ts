export { BACKBONE_META_FILE, readBackboneMeta, type BackboneMeta } from './backbone-meta.js';
export { BACKBONE_PATH, loadServedBackbone, type ServedBackbone } from './backbone-server.js';
export { BACKBONES_DIR, backboneCatalog, backboneTable, resolveBackboneSource, summarizeBackbones } from './backbone-catalog.js';
export {
  COORDINATOR_HELP,
  DEFAULT_BACKBONE,
  DEFAULT_BACKBONE_DIR,
  SMALL_BACKBONE_DIR,
  applyRunConfig,
  defaultCoordinatorConfig,
  parseCoordinatorArgs,
  type ServerSettings,
  type CoordinatorConfig,
} from './config.js';
export { Coordinator } from './coordinator.js';
export { CoordinatorServer, type ServerOptions } from './coordinator-server.js';
export type { ClientView } from './client-registry.js';
export type { ExclusionRecord, RunListItem, RunView } from './run-lifecycle.js';
export { SITE_STATE_KINDS, type SiteState, type SiteStateKind } from './site-state.js';
export { FederatedRun } from './federated-run.js';
export { scheduledFit, type RoundListener, type RoundSnapshot, type SiteEvaluation } from './round-phases.js';
export type { RunHost } from './run-host.js';
export type { RunOutcome, RunProgress, RunSummary } from './run-summary.js';
export { RUN_TRANSITIONS, checkRunTransition, type RunReason } from './run-states.js';
export { ApiClient, type ApiTarget } from './api-client.js';
export { EXPORT_META_FILE, exportGlobalModel } from './export-model.js';
export { EXPORT_BACKBONE_DIR, EXPORT_HEAD_DIR, loadExportedModel, type ExportedModel } from './export-model.js';
export { pretrainBackbone, type PretrainOptions } from './pretrain.js';
export { RoundCollector, type Collected, type RoundTarget } from './round-collector.js';
export { formatRoundRow, roundTableHeader, type RoundRecord } from './round-table.js';
export { DEFAULT_TRUST, screenUpdates, type Exclusion, type TrustPolicy } from './update-screen.js';
export {
  RUN_STATUSES,
  Store,
  type Checkpoint,
  type CheckpointData,
  type RejectedUpdate,
  type RoundOutcome,
  type RunStatus,
  type StoredClient,
  type StoredEvent,
  type StoredRound,
  type StoredRun,
} from './store/store.js';
export { hashClientToken, newClientToken, tokenMatches } from './client-tokens.js';
export {
  HEAD_INITS,
  parseRunConfig,
  readRunConfigFile,
  RUN_LIMITS,
  RunConfigSchema,
  runConfigFlags,
  runConfigFromFlags,
  runConfigHelp,
  type HeadInit,
  type RunConfig,
  type RunFlag,
} from './run-config.js';
