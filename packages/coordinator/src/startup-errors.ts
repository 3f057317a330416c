import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { ErrorCode, FtlError } from '@ftl/shared';

/**
 * What goes wrong when a coordinator starts, said in one line with the flag that fixes it: node's own
 * errors (EADDRINUSE with its stack, OpenSSL's "PEM routines::no start line") name neither the port nor
 * the file. Both `ftl-coordinator` and `ftl-coordinator serve` start through here.
 */

/** The certificate and key files as given on the command line, for the messages. */
export interface TlsFiles {
  certFile: string;
  cert: Buffer;
  keyFile: string;
  key: Buffer;
}

const SWAPPED = 'were --tls-cert and --tls-key swapped?';

function pemKinds(pem: Buffer): string[] {
  return [...pem.toString('latin1').matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]!);
}

/**
 * Checks a TLS certificate and key before a server is built on them: each file is PEM of the right
 * kind, and the key is the certificate's. Throws FtlError(INVALID_CONFIG) naming the file that is wrong.
 */
export function checkTlsFiles(f: TlsFiles): void {
  const certKinds = pemKinds(f.cert);
  const keyKinds = pemKinds(f.key);
  if (!certKinds.includes('CERTIFICATE')) {
    const hint = certKinds.some((k) => k.includes('PRIVATE KEY'))
      ? `it holds a private key; ${SWAPPED}`
      : 'no "-----BEGIN CERTIFICATE-----" block found';
    throw new FtlError(ErrorCode.InvalidConfig, `--tls-cert ${f.certFile} is not a PEM certificate (${hint}); give the server's certificate in PEM`);
  }
  if (!keyKinds.some((k) => k.includes('PRIVATE KEY'))) {
    const hint = keyKinds.includes('CERTIFICATE') ? `it holds a certificate; ${SWAPPED}` : 'no "-----BEGIN … PRIVATE KEY-----" block found';
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `--tls-key ${f.keyFile} is not a PEM private key (${hint}); give the certificate's private key in PEM`,
    );
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(f.cert);
  } catch (err) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `--tls-cert ${f.certFile} does not decode as a certificate (${(err as Error).message}); give the server's certificate in PEM`,
      { cause: err },
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(f.key);
  } catch (err) {
    const encrypted = keyKinds.includes('ENCRYPTED PRIVATE KEY') || /Proc-Type: 4,ENCRYPTED/.test(f.key.toString('latin1'));
    const why = encrypted ? 'it is encrypted; give an unencrypted key, e.g. from: openssl pkey -in KEY -out plain.pem' : (err as Error).message;
    throw new FtlError(ErrorCode.InvalidConfig, `--tls-key ${f.keyFile} does not decode as a private key (${why})`, { cause: err });
  }
  if (!certificate.checkPrivateKey(key)) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `--tls-key ${f.keyFile} is not the key of the certificate in --tls-cert ${f.certFile}; give the key the certificate was made with`,
    );
  }
  try {
    createSecureContext({ cert: f.cert, key: f.key });
  } catch (err) {
    throw new FtlError(
      ErrorCode.InvalidConfig,
      `--tls-cert ${f.certFile} and --tls-key ${f.keyFile} are refused by TLS (${(err as Error).message})`,
      { cause: err },
    );
  }
}

/**
 * The one-line error for a server that could not listen on `host`:`port`, or `err` itself when it is
 * not a listening problem.
 */
export function listenError(err: unknown, host: string, port: number): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const where = `port ${port} on ${host}`;
  const message = {
    EADDRINUSE: `${where} is in use by another program; stop it or pass --port (0 picks a free port)`,
    EACCES: `${where} needs privileges this user lacks (ports below 1024 usually do); pass --port 1024 or above`,
    EADDRNOTAVAIL: `--host ${host} is not an address of this machine; pass one of its addresses, 127.0.0.1, or 0.0.0.0 for all`,
    ENOTFOUND: `--host ${host} does not resolve to an address; pass an address of this machine such as 127.0.0.1`,
    EAI_AGAIN: `--host ${host} could not be resolved (name service unavailable); pass an IP address such as 127.0.0.1`,
  }[code ?? ''];
  return message === undefined ? err : new FtlError(ErrorCode.InvalidConfig, message, { cause: err });
}

/**
 * Starts listening through `listen`, turning a listening failure into {@link listenError}'s one line.
 *
 * @example
 * const { url } = await listenExplained(() => server.listen(), config);
 */
export async function listenExplained<T>(listen: () => Promise<T>, where: { host: string; port: number }): Promise<T> {
  try {
    return await listen();
  } catch (err) {
    throw listenError(err, where.host, where.port);
  }
}
