/**
 * `@ftl/shared/ml`: the models, on tfjs. Backend selection and its kernels, backbone loading (folder or
 * URL, layers or graph model), heads, fine-tuning plans and trainable networks, the discriminant head,
 * and model folders.
 *
 * @example
 * import { initBackend, loadBackbone } from '@ftl/shared/ml';
 */
export { BACKENDS, initBackend, parseBackendName, type BackendLoader, type BackendName } from './model/backend.js';
export { registerWasmConvKernels } from './model/wasm-conv-kernels.js';
export { useWasmSpeedKernels } from './model/wasm-speed-kernels.js';
export {
  assertInputCompatible,
  createDefaultBackbone,
  DEFAULT_FEATURE_LAYER,
  extractFeatures,
  featureExtractor,
  loadBackbone,
  sourceLogits,
  type FeatureExtractor,
  type GraphFeatureExtractor,
  type LayersFeatureExtractor,
} from './model/backbone.js';
export {
  assertModelSize,
  CLASS_MEAN_LOGIT_MARGIN,
  classMeanHead,
  createHead,
  createHeadLayers,
  DEFAULT_HIDDEN,
  getTrainableWeights,
  linearOutputLayer,
  HEAD_LAYER_PREFIX,
  headParameterCount,
  isHeadLayer,
  MAX_MODEL_PARAMETERS,
  setTrainableWeights,
  type HeadConfig,
} from './model/head.js';
export { discriminantHead, DISCRIMINANT_SHRINKAGE, solveSymmetric, withinClassScatter } from './model/discriminant.js';
export {
  ALL_BACKBONE_LAYERS,
  carryOver,
  DEFAULT_FINE_TUNING,
  FINE_TUNING_MODES,
  layerOfTensor,
  remapByName,
  remapStrategyState,
  unfrozenLayerCount,
  type FineTuning,
  type FineTuningMode,
} from './model/fine-tuning.js';
export {
  backboneLayersOf,
  boundaryFeatures,
  createFineTunedModel,
  createTrainableNetwork,
  disposeFineTunedModel,
  planFineTuning,
  trainableParameterCount,
  type BackboneInit,
  type FineTuningPlan,
  type TrainableNetwork,
} from './model/trainable-network.js';
export {
  loadGraphModelFromFiles,
  loadLayersModelFromFiles,
  loadLayersModelFromFolder,
  MODEL_JSON,
  modelDigest,
  modelJsonOf,
  modelKind,
  parseModelJson,
  readModelFolder,
  saveLayersModelToFolder,
  weightPaths,
  writeModelFiles,
  type ModelFile,
  type ModelKind,
} from './model/model-folder.js';
export { fetchModelFiles, isHttpSource, modelJsonUrl, readBesideModel, readModelSource } from './model/model-source.js';
export {
  EXPORT_BACKBONE_DIR,
  EXPORT_HEAD_DIR,
  EXPORT_META_FILE,
  loadExportedModel,
  type ExportedModel,
} from './model/exported-model.js';
