export { obtainBackbone } from './backbone-cache.js';
export { FtlClient, type ClientOptions } from './client.js';
export { ComputeTurns } from './compute-turns.js';
export { CLIENT_HELP, parseClientArgs, type ClientConfig } from './config.js';
export { checkDpSgdConfig, type DpSampling, type DpSgdConfig, type DpSgdSpent } from './dp-sgd.js';
export { HeadTrainer, type LocalFitConfig } from './head-trainer.js';
export { ledgerPath, PrivacyLedger, type PrivacyDecision } from './privacy-ledger.js';
export { socketIoConnect } from './socketio-connect.js';
