// `@ftl/shared`: the utilities every side uses, and everything the four subpaths export. The subpaths
// show the package's parts: `@ftl/shared/protocol` (messages, validators, codec) and `@ftl/shared/fl`
// (aggregation, strategies) import no tfjs and do no I/O; `@ftl/shared/ml` is the tfjs side and
// `@ftl/shared/data` the datasets and loaders.
export { ErrorCode, FtlError, isFtlError } from './errors.js';
export { createLogger, formatLogValue, MAX_LOG_VALUE_LENGTH, type Logger, type LogFields, type LogLevel } from './log.js';
export { createRng, deriveSeed, shuffleInPlace, tfjsSeed, type Rng } from './random.js';
export { flagOptions, numberFlag, parseFlags, runMain, runProgram, stringFlag, type FlagOptions, type RawFlags } from './cli-args.js';
export { eventLoopYielder } from './event-loop.js';
export { expandShortHelp, readPackageInfo, type PackageInfo } from './program-version.js';
export { tlsFailure, type TlsFailure } from './tls-failure.js';

export * from './protocol.js';
export * from './fl.js';
export * from './ml.js';
export * from './data.js';
