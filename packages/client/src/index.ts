export {
  AUDIT_GENESIS,
  AUDIT_KINDS,
  AuditLog,
  auditLogPath,
  readAuditLog,
  verifyAuditLog,
  type AuditEntry,
  type AuditKind,
  type AuditVerdict,
} from './audit-log.js';
export { formatAuditTable } from './audit-table.js';
export { obtainBackbone } from './backbone-cache.js';
export { FtlClient, type ClientOptions } from './client.js';
export { ComputeTurns } from './compute-turns.js';
export { AUDIT_HELP, CLIENT_HELP, parseAuditArgs, parseClientArgs, type ClientConfig } from './config.js';
export { checkDpSgdConfig, type DpSampling, type DpSgdConfig, type DpSgdSpent } from './dp-sgd.js';
export { HeadTrainer, type LocalFitConfig } from './head-trainer.js';
export { ledgerPath, PrivacyLedger, type PrivacyDecision } from './privacy-ledger.js';
export { socketIoConnect } from './socketio-connect.js';
// What a site needs to use a model a run exported, without the coordinator: load it on any backend.
export { EXPORT_META_FILE, initBackend, loadExportedModel, type ExportedModel } from '@ftl/shared';
