import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selfSignedCertificate } from '@ftl/shared/testing';
import { describe, expect, test } from 'vitest';
import { checkTlsFiles, listenExplained } from './startup-errors.js';

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
}

function refusal(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a refusal');
    },
    (err: unknown) => err,
  );
}

describe('listenExplained', () => {
  test('a port another program holds is one line naming the port, the host and --port', async () => {
    const holder = createServer();
    await listen(holder, 0, '127.0.0.1');
    const port = (holder.address() as { port: number }).port;
    const err = await refusal(listenExplained(() => listen(createServer(), port, '127.0.0.1'), { host: '127.0.0.1', port }));
    holder.close();
    expect(err).toMatchObject({
      name: 'FtlError',
      code: 'INVALID_CONFIG',
      message: `port ${port} on 127.0.0.1 is in use by another program; stop it or pass --port (0 picks a free port)`,
    });
  });

  test('a host that is not an address of this machine names --host', async () => {
    // 192.0.2.1 is reserved for documentation (TEST-NET-1): never an address of the machine.
    const err = await refusal(listenExplained(() => listen(createServer(), 0, '192.0.2.1'), { host: '192.0.2.1', port: 0 }));
    expect(err).toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringMatching(/^--host 192\.0\.2\.1 is not an address of this machine;/) });
  });

  test('other errors pass through unchanged', async () => {
    const boom = new Error('boom');
    expect(await refusal(listenExplained(() => Promise.reject(boom), { host: 'h', port: 1 }))).toBe(boom);
  });
});

describe('checkTlsFiles', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ftl-tls-'));
  const make = (name: string, passphrase?: string) => selfSignedCertificate(dir, { name, commonName: '127.0.0.1', passphrase });
  const plain = make('plain');

  test('a matching certificate and key pass', () => {
    expect(() => checkTlsFiles(plain)).not.toThrow();
  });

  test.each([
    [
      'swapped',
      { ...plain, cert: plain.key, key: plain.cert },
      /^--tls-cert \S+ is not a PEM certificate \(it holds a private key; were --tls-cert and --tls-key swapped\?\)/,
    ],
    [
      'a key that is not PEM',
      { ...plain, key: Buffer.from('hello') },
      /^--tls-key \S+ is not a PEM private key \(no "-----BEGIN … PRIVATE KEY-----" block found\)/,
    ],
    [
      'an encrypted key',
      (() => {
        const e = make('encrypted', 'secret');
        return { ...e };
      })(),
      /^--tls-key \S+encrypted-key\.pem does not decode as a private key \(it is encrypted; give an unencrypted key/,
    ],
    [
      'the key of another certificate',
      { ...plain, key: make('other').key },
      /^--tls-key \S+ is not the key of the certificate in --tls-cert \S+plain-cert\.pem;/,
    ],
  ])('%s is refused naming the file', (_, files, message) => {
    expect(() => checkTlsFiles(files)).toThrow(
      expect.objectContaining({ name: 'FtlError', code: 'INVALID_CONFIG', message: expect.stringMatching(message) }),
    );
  });
});
