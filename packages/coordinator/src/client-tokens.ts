import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

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
