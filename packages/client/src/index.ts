export { obtainBackbone } from './backbone-cache.js';
export { FtlClient, type ClientOptions } from './client.js';
export { ComputeTurns } from './compute-turns.js';
export { CLIENT_HELP, parseClientArgs, type ClientConfig } from './config.js';
export { HeadTrainer } from './head-trainer.js';
export { socketIoConnect } from './socketio-connect.js';
