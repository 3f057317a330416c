import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A throwaway self-signed certificate: where its files are, and their bytes. */
export interface SelfSignedCertificate {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

/** What the certificate is made for. */
export interface CertificateOptions {
  /** The files are `<name>-cert.pem` and `<name>-key.pem` in the folder (default `server`). */
  name?: string;
  /** The subject's common name (default `localhost`). */
  commonName?: string;
  /** The subjectAltName in openssl's syntax (default `IP:127.0.0.1,DNS:localhost`). */
  san?: string;
  /** Encrypts the private key with this pass phrase (default: an unencrypted key). */
  passphrase?: string;
}

/**
 * Makes a one-day self-signed RSA certificate and key with the system's `openssl`, for tests of TLS.
 *
 * @example
 * const { certFile, keyFile } = selfSignedCertificate(dir, { san: 'IP:127.0.0.1' });
 */
export function selfSignedCertificate(dir: string, options: CertificateOptions = {}): SelfSignedCertificate {
  const { name = 'server', commonName = 'localhost', san = 'IP:127.0.0.1,DNS:localhost', passphrase } = options;
  const certFile = join(dir, `${name}-cert.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  const keyProtection = passphrase === undefined ? ['-nodes'] : ['-passout', `pass:${passphrase}`];
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      ...keyProtection,
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      `/CN=${commonName}`,
      '-addext',
      `subjectAltName=${san}`,
    ],
    { stdio: 'ignore' },
  );
  return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
}
