/**
 * `@ftl/shared/data`: the data a site trains on. Datasets and their built-in sources, partitions and
 * shards, image and CSV loaders, resizing, augmentation, label maps and federated normalisation
 * statistics. Needs no tfjs; the loaders read files.
 *
 * @example
 * import { loadLocalShard } from '@ftl/shared/data';
 */
export { concatDatasets, imageSize, keepClasses, subset, type ImageDataset } from './data/dataset.js';
export { BUILTIN_DATASETS, loadBuiltinDataset, type BuiltinDatasetName } from './data/builtin.js';
export {
  describePartition,
  parsePartition,
  partitionIndices,
  sizeSkewSizes,
  splitIndices,
  type PartitionSpec,
  type SizeGrowth,
} from './data/partition.js';
export {
  channelStats,
  checkChannelStats,
  combineStats,
  normalizeImages,
  type ChannelStats,
  type CombineOptions,
  type Normalization,
} from './data/federated-stats.js';
export { augmentDataset, withAugmentedCopies, type AugmentOptions } from './data/augment.js';
export { federationSplit, HOLDOUT, loadClientShard, type ClientShard, type ClientShardOptions } from './data/shard.js';
export { DEFAULT_IMAGE_SHAPE, formatImageShape, parseImageShape, sameImageShape, type ImageShape } from './data/image-shape.js';
export { convertChannels, fitDataset, fitImage, resizeBilinear, type Pixels } from './data/resize.js';
export { decodeImage, encodeJpeg, encodePng, IMAGE_EXTENSIONS, isImageFile, sniffImageFormat } from './data/image-codec.js';
export { alignShardToRun, compareLabels, labelIndexMap, localLabels, type LoadedDataset, type LocalShard } from './data/label-map.js';
export { loadImageFolder } from './data/image-folder.js';
export { loadCsvFile, parseCsvDataset, splitCsvFields, type CsvOptions } from './data/csv.js';
export { describeDataSource, loadLocalShard, splitLocalData, type DataSource, type LocalSplitOptions } from './data/local-data.js';
export {
  columnsProblem,
  combineTableSummaries,
  concatRawTables,
  encodedFeatureNames,
  encodedWidth,
  encodeTable,
  featureColumns,
  inferCsvKind,
  loadCsvTable,
  parseCsvTable,
  rawLabels,
  rawTableIdentity,
  splitRawTable,
  splitTypedTable,
  subsetRawTable,
  subsetTypedTable,
  summarizeTable,
  tableEncodingProblem,
  tableSummaryProblem,
  typeTable,
  type RawTable,
  type SiteTableSummary,
  type TypedTable,
} from './data/table.js';
