export { ErrorCode, FtlError, isFtlError } from './errors.js';
export { createLogger, type Logger, type LogFields, type LogLevel } from './log.js';
export { createRng, deriveSeed, shuffleInPlace, type Rng } from './random.js';
export { numberFlag, parseFlags, runMain, stringFlag, type FlagOptions, type RawFlags } from './cli-args.js';

export { classCounts, imageSize, subset, type ImageDataset } from './data/dataset.js';
export { BUILTIN_DATASETS, loadBuiltinDataset, type BuiltinDatasetName } from './data/builtin.js';
export { formatPartition, parsePartition, partitionIndices, splitIndices, type PartitionSpec } from './data/partition.js';
export { federationSplit, HOLDOUT, loadClientShard, type ClientShard, type ClientShardOptions } from './data/shard.js';

export {
  assertSameSpecs, decodeWeights, encodeWeights, firstNonFinite, shapeSize, specsSize,
  type EncodedWeights, type WeightDtype, type WeightSpec, type Weights,
} from './codec/weights.js';

export { fedAvg, WeightedMean } from './aggregation/weighted-mean.js';

export { BACKENDS, initBackend, parseBackendName, type BackendLoader, type BackendName } from './model/backend.js';
export { registerWasmConvKernels } from './model/wasm-conv-kernels.js';
export {
  createDefaultBackbone, DEFAULT_FEATURE_LAYER, extractFeatures, featureExtractor, type FeatureExtractor,
} from './model/backbone.js';
export { createHead, createHeadLayers, DEFAULT_HIDDEN, getTrainableWeights, setTrainableWeights, type HeadConfig } from './model/head.js';
export {
  loadLayersModelFromFiles, loadLayersModelFromFolder, MODEL_JSON, modelDigest, readModelFolder,
  saveLayersModelToFolder, weightPaths, writeModelFiles, type ModelFile,
} from './model/model-folder.js';

export { createMsgpackParser, type ByteCounter } from './codec/socketio-parser.js';
export * from './protocol/messages.js';
export type { ClientToServerEvents, ServerToClientEvents } from './protocol/events.js';
export {
  parseAck, parseClientFailure, parseEncodedWeights, parseEvaluateInstruction, parseEvaluateResult, parseFitInstruction,
  parseFitResult, parseHandshakeAuth, parseReady, parseRunEnd, parseWelcome, rejectionFor,
} from './protocol/parse.js';
