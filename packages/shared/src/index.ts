export { ErrorCode, FtlError, isFtlError } from './errors.js';
export { createLogger, formatLogValue, MAX_LOG_VALUE_LENGTH, type Logger, type LogFields, type LogLevel } from './log.js';
export { createRng, deriveSeed, shuffleInPlace, tfjsSeed, type Rng } from './random.js';
export { numberFlag, parseFlags, runMain, stringFlag, type FlagOptions, type RawFlags } from './cli-args.js';
export { eventLoopYielder } from './event-loop.js';

export { concatDatasets, imageSize, keepClasses, subset, type ImageDataset } from './data/dataset.js';
export { BUILTIN_DATASETS, loadBuiltinDataset, type BuiltinDatasetName } from './data/builtin.js';
export { parsePartition, partitionIndices, splitIndices, type PartitionSpec } from './data/partition.js';
export {
  channelStats, checkChannelStats, combineStats, normalizeImages, statsInconsistency,
  type ChannelStats, type CombineOptions, type Normalization,
} from './data/federated-stats.js';
export { augmentDataset, withAugmentedCopies, type AugmentOptions } from './data/augment.js';
export { federationSplit, HOLDOUT, loadClientShard, type ClientShard, type ClientShardOptions } from './data/shard.js';
export { DEFAULT_IMAGE_SHAPE, formatImageShape, parseImageShape, sameImageShape, type ImageShape } from './data/image-shape.js';
export { convertChannels, fitDataset, fitImage, resizeBilinear, type Pixels } from './data/resize.js';
export { decodeImage, encodeJpeg, encodePng, IMAGE_EXTENSIONS, isImageFile, sniffImageFormat } from './data/image-codec.js';
export { alignShardToRun, compareLabels, labelIndexMap, localLabels, type LoadedDataset, type LocalShard } from './data/label-map.js';
export { loadImageFolder } from './data/image-folder.js';
export { loadCsvFile, parseCsvDataset, type CsvOptions } from './data/csv.js';
export { describeDataSource, loadLocalShard, splitLocalData, type DataSource, type LocalSplitOptions } from './data/local-data.js';

export {
  assertSameSpecs, decodeWeights, encodeWeights, firstNonFinite, shapeSize, specsSize, tensorsByName,
  type EncodedWeights, type WeightDtype, type WeightSpec, type Weights,
} from './codec/weights.js';

export { WeightedMean } from './aggregation/weighted-mean.js';
export { coordinateMedian, krumScores, krumSelect, mean, trimmedMean } from './aggregation/robust.js';
export { clipUpdate } from './aggregation/clip.js';
export { adaptiveStep, momentumStep, type ServerOptimizerState } from './aggregation/server-optimizers.js';

export { BACKENDS, initBackend, parseBackendName, type BackendLoader, type BackendName } from './model/backend.js';
export { registerWasmConvKernels } from './model/wasm-conv-kernels.js';
export { useWasmSpeedKernels } from './model/wasm-speed-kernels.js';
export {
  createDefaultBackbone, DEFAULT_FEATURE_LAYER, extractFeatures, featureExtractor, type FeatureExtractor,
} from './model/backbone.js';
export {
  assertModelSize, createHead, createHeadLayers, DEFAULT_HIDDEN, getTrainableWeights, HEAD_LAYER_PREFIX, headParameterCount, isHeadLayer,
  MAX_MODEL_PARAMETERS, setTrainableWeights, type HeadConfig,
} from './model/head.js';
export { CLASS_MEAN_LOGIT_MARGIN, classMeanHead, linearOutputLayer } from './model/head.js';
export { discriminantHead, DISCRIMINANT_SHRINKAGE, solveSymmetric, withinClassScatter } from './model/discriminant.js';
export {
  ALL_BACKBONE_LAYERS, carryOver, DEFAULT_FINE_TUNING, FINE_TUNING_MODES, layerOfTensor, remapByName, remapStrategyState, unfrozenLayerCount,
  type FineTuning, type FineTuningMode,
} from './model/fine-tuning.js';
export {
  backboneLayersOf, boundaryFeatures, createFineTunedModel, createTrainableNetwork, disposeFineTunedModel, planFineTuning,
  trainableParameterCount, type BackboneInit, type FineTuningPlan, type TrainableNetwork,
} from './model/trainable-network.js';
export {
  loadLayersModelFromFiles, loadLayersModelFromFolder, MODEL_JSON, modelDigest, readModelFolder,
  saveLayersModelToFolder, weightPaths, writeModelFiles, type ModelFile,
} from './model/model-folder.js';
export { loadGraphModelFromFiles, modelJsonOf, modelKind, parseModelJson, type ModelKind } from './model/model-folder.js';
export { fetchModelFiles, isHttpSource, modelJsonUrl, readBesideModel, readModelSource } from './model/model-source.js';
export {
  assertInputCompatible, loadBackbone, type GraphFeatureExtractor, type LayersFeatureExtractor,
} from './model/backbone.js';
export { TINY_GRAPH_NODES, tinyGraphModelFiles } from './model/tiny-graph-model.js';

export { createMsgpackParser, RESERVED_EVENT_NAMES, type ByteCounter, type MsgpackParserOptions } from './codec/socketio-parser.js';
export { FORBIDDEN_MAP_KEYS, MAX_MESSAGEPACK_DEPTH, scanMessagePack } from './codec/msgpack-scan.js';
export * from './protocol/messages.js';
export type { ClientToServerEvents, ServerToClientEvents } from './protocol/events.js';
export {
  checkSiteName, parseAck, parseClientFailure, parseEncodedWeights, parseEvaluateInstruction, parseEvaluateResult, parseFitInstruction,
  parseFitResult, parseHandshakeAuth, parsePersonalizeInstruction, parsePersonalizeResult, parseReady, parseRunEnd, parseGoodbye,
  parseWelcome, rejectionFor,
} from './protocol/parse.js';
export { parseClassSumsInstruction, parseClassSumsResult } from './protocol/parse.js';

export {
  BaseStrategy, bufferedAggregator, weightedAggregator,
  type BaseStrategyOptions, type ClientUpdate, type EvaluationSummary, type FitExtras, type RoundAggregator, type Strategy,
} from './strategies/strategy.js';
export { createStrategy, parseStrategy, STRATEGY_OPTIONS, type StrategyConfig, type StrategyName } from './strategies/create-strategy.js';
export { FedAvg } from './strategies/fed-avg.js';
export { FedAvgM } from './strategies/fed-avg-m.js';
export { FedOpt, type FedOptOptions } from './strategies/fed-opt.js';
export { FedProx } from './strategies/fed-prox.js';
export { FedMedian, FedTrimmedAvg, Krum, NormBoundedFedAvg } from './strategies/robust-strategies.js';
