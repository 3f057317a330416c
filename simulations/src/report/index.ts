// The study report: summaries across seeds, and the files a study leaves behind (JSON, CSV, SVG, HTML,
// markdown), plus the progress display a study runner shows while it works.
export { clientsCsv, csvField, roundsCsv, summaryCsv, toCsv, type CsvValue } from './csv.js';
export { escapeMarkup } from './escape.js';
export { formatBytes, formatDuration } from './format.js';
export { studyHtml } from './html.js';
export { markdownTable, summaryMarkdown } from './markdown.js';
export { createStudyProgress, estimateSecondsLeft, type ProgressOptions, type RunStart, type StudyProgress } from './progress.js';
export {
  heldOutSentence,
  intervalsOverlap,
  negativeTransfer,
  proportionStandardError,
  sameSetting,
  settingLabel,
  studyMethods,
  studySettings,
  summarizeStudy,
  sweepsSetting,
  type CurveMetric,
  type CurvePoint,
  type MethodSummary,
  type NegativeTransfer,
  type Setting,
  type TargetReach,
} from './stats.js';
export {
  accuracyByBytesSvg,
  accuracyByRoundSvg,
  accuracyBySettingSvg,
  methodStyles,
  perClientSpreadSvg,
  studyPlots,
  type MethodStyle,
  type StudyPlot,
} from './svg.js';
export { failureLines, summaryTables, type SummaryTable } from './table.js';
export type { ClientPoint, Environment, MethodRun, RoundPoint, StudyReport } from './types.js';
export { writeStudy } from './write.js';
