import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, isFtlError } from '@ftl/shared';
import { selfSignedCertificate } from '@ftl/shared/testing';
import { describe, expect, test } from 'vitest';
import { CLIENT_HELP, parseClientArgs, type ClientConfig } from './config.js';

const parse = (...argv: string[]) => parseClientArgs(argv) as ClientConfig;

function refused(argv: string[]): Error {
  try {
    parseClientArgs(argv);
  } catch (err) {
    expect(isFtlError(err, ErrorCode.InvalidConfig), String(err)).toBe(true);
    return err as Error;
  }
  throw new Error(`${argv.join(' ')} was accepted`);
}

describe('client data flags', () => {
  test('the default is a share of the built-in mnist at 28×28×1', () => {
    const c = parse();
    expect(c.data).toEqual({ kind: 'builtin', dataset: 'mnist', partition: { kind: 'iid' }, clients: 1, index: 0, seed: 1, valFraction: 0.15 });
    expect(c.imageShape).toEqual({ height: 28, width: 28, channels: 1 });
  });

  test('--data-dir reads an image folder; --image-shape sets the target', () => {
    const c = parse('--data-dir', '/data/xray', '--image-shape', '32x32x3', '--seed', '4', '--limit', '100');
    expect(c.data).toEqual({ kind: 'image-folder', dir: '/data/xray', seed: 4, valFraction: 0.15, limit: 100 });
    expect(c.imageShape).toEqual({ height: 32, width: 32, channels: 3 });
  });

  test('--csv reads a CSV file, with an optional --label-column', () => {
    expect(parse('--csv', 'train.csv').data).toEqual({ kind: 'csv', file: 'train.csv', seed: 1, valFraction: 0.15 });
    expect(parse('--csv', 'train.csv', '--label-column', 'diagnosis', '--val-fraction', '0.2').data).toEqual({
      kind: 'csv',
      file: 'train.csv',
      labelColumn: 'diagnosis',
      seed: 1,
      valFraction: 0.2,
    });
  });

  test.each<[string[], RegExp]>([
    [
      ['--dataset', 'mnist', '--data-dir', 'd'],
      /^--dataset, --data-dir, --csv and --table are alternatives; give one \(got --dataset and --data-dir\)$/,
    ],
    [['--data-dir', 'd', '--csv', 'f.csv'], /^--dataset, --data-dir, --csv and --table are alternatives; give one \(got --data-dir and --csv\)$/],
    [['--label-column', 'y'], /^--label-column only applies with --csv \(this client reads --dataset\)$/],
    [['--data-dir', 'd', '--label-column', 'y'], /^--label-column only applies with --csv \(this client reads --data-dir\)$/],
    [['--csv', 'f.csv', '--partition', 'iid', '--clients', '2'], /^--partition, --clients only apply with --dataset \(this client reads --csv\)$/],
    [['--csv', 'f.csv', '--label-column', ' '], /^--label-column needs a column name/],
    [['--dataset', 'cifar'], /^--dataset must be one of mnist, fashion-mnist \(got "cifar"\)$/],
    [['--image-shape', '28x28x2'], /^image shape must be HEIGHTxWIDTHxCHANNELS/],
  ])('%j is refused', (argv, message) => {
    expect(refused(argv).message).toMatch(message);
  });

  test('the help text documents the data flags', () => {
    for (const flag of ['--data-dir DIR', '--csv FILE', '--label-column NAME', '--dataset NAME', '--image-shape HxWxC'])
      expect(CLIENT_HELP).toContain(flag);
  });
});

describe('client connection flags', () => {
  test('the backbone download limits default to 120 s of silence and 512 MiB, and are set in seconds and MiB', () => {
    expect(parse()).toMatchObject({ backboneIdleTimeoutMs: 120_000, backboneMaxBytes: 512 * 1024 * 1024 });
    expect(parse('--backbone-timeout', '2.5', '--backbone-max-mb', '3')).toMatchObject({
      backboneIdleTimeoutMs: 2500,
      backboneMaxBytes: 3 * 1024 * 1024,
    });
    expect(refused(['--backbone-timeout', '0']).message).toMatch(/^--backbone-timeout must be a number ≥ 1 and ≤ 86400 \(got "0"\)$/);
    expect(refused(['--backbone-max-mb', 'lots']).message).toMatch(/^--backbone-max-mb must be a number ≥ 1/);
  });

  describe('--ca-file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ftl-ca-'));
    const { certFile, keyFile } = selfSignedCertificate(dir);
    const cert = readFileSync(certFile, 'utf8');
    const write = (name: string, text: string | Buffer) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };

    test('a PEM certificate is read as it is', () => {
      expect(parse('--ca-file', certFile).ca?.toString('utf8')).toBe(cert);
    });

    test.each<[string, () => string, RegExp]>([
      ['a private key', () => keyFile, /holds no PEM certificate; give the coordinator's certificate \(or its CA's\) in PEM form/],
      ['a DER file', () => write('cert.der', execFileSync('openssl', ['x509', '-in', certFile, '-outform', 'DER'])), /holds no PEM certificate/],
      [
        'a damaged certificate',
        () => write('bad.pem', cert.replace(/\n[A-Za-z0-9+/]{20}/, `\n${'A'.repeat(20)}`)),
        /holds a certificate that does not parse \(.+\); give/,
      ],
      ['a missing file', () => join(dir, 'nothing.pem'), /^--ca-file: cannot read .*nothing\.pem/],
    ])('%s is refused at start-up, naming the file', (_, file, message) => {
      const err = refused(['--ca-file', file()]);
      expect(err.message).toMatch(message);
      expect(err.message).not.toContain('\n');
    });
  });
});

describe('the privacy budget', () => {
  test('--dp-budget sets the site’s own ε budget; without it there is none', () => {
    expect(parse('--dp-budget', '8').dpBudget).toBe(8);
    expect(parse('--dp-budget', '0.5').dpBudget).toBe(0.5);
    expect(parse()).not.toHaveProperty('dpBudget');
    expect(CLIENT_HELP).toContain('--dp-budget EPS');
  });

  test.each(['0', '-1', 'eight', 'Infinity', ''])('--dp-budget %j is refused', (value) => {
    expect(refused(['--dp-budget', value]).message).toBe(`--dp-budget must be a number > 0 (got "${value}")`);
  });
});

describe('the feature cache limit', () => {
  test('--feature-cache-max-mb sets it in MiB; without it there is none', () => {
    expect(parse('--feature-cache-max-mb', '256').featureCacheMaxBytes).toBe(256 * 1024 * 1024);
    expect(parse('--feature-cache-max-mb', '1.5').featureCacheMaxBytes).toBe(1.5 * 1024 * 1024);
    expect(parse().featureCacheMaxBytes).toBeUndefined();
  });

  test.each(['0', '0.5', '-5', 'lots', ''])('--feature-cache-max-mb %j is refused, naming the flag', (value) => {
    expect(refused(['--feature-cache-max-mb', value]).message).toMatch(/--feature-cache-max-mb/);
  });
});
