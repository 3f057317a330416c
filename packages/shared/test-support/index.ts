/**
 * `@ftl/shared/testing`: fixtures for the packages' tests, never for their code. It is not built into
 * `dist` and its export points at these TypeScript sources, which only vitest (and the tests' type
 * check) can load.
 *
 * @example
 * import { expectFtlError, tinyGraphModelFiles } from '@ftl/shared/testing';
 */
export { expectFtlError, ftlErrorMessage, thrownBy } from './expect-ftl-error.js';
export { TINY_GRAPH_NODES, tinyGraphModelFiles } from './tiny-graph-model.js';
export { findCycle, resolveRelative, sources, specifiersOf } from './import-graph.js';
export { selfSignedCertificate, type CertificateOptions, type SelfSignedCertificate } from './certificates.js';
export { batchNormEncoder } from './batch-norm-encoder.js';
export { readmeBlock } from './readme-block.js';
