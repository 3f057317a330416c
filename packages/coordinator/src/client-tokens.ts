import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { checkSiteName, ErrorCode, FtlError } from '@ftl/shared';
import type { Store } from './store/store.js';

/** A new client token: 32 random bytes, hex. Shown to the operator once; only its hash is stored. */
export function newClientToken(): string {
  return randomBytes(32).toString('hex');
}

/** SHA-256 (hex) of a token, as stored in the clients table. */
export function hashClientToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Whether `token` hashes to `storedHash`, compared in constant time. */
export function tokenMatches(token: string, storedHash: string): boolean {
  const a = Buffer.from(hashClientToken(token), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Registers client `name` in `store` and returns its new token (shown once; only the hash is stored).
 * The name follows the handshake's rule, so every registered name can connect. FtlError(InvalidConfig)
 * for a name no site may have, FtlError(Conflict) for one already registered.
 */
export function registerClient(store: Store, name: string): { name: string; token: string } {
  // '.', '..', 'constructor' and the like never register.
  try {
    checkSiteName(name, 'client name');
  } catch (err) {
    throw new FtlError(ErrorCode.InvalidConfig, (err as Error).message);
  }
  if (store.getClient(name)) throw new FtlError(ErrorCode.Conflict, `client "${name}" is already registered; revoke it or pick another name`);
  const token = newClientToken();
  store.addClient(name, hashClientToken(token));
  store.appendEvent(null, 'client-added', { client: name });
  return { name, token };
}
