import type { IncomingMessage } from 'node:http';
import { ErrorCode, FtlError } from '@ftl/shared';

// Request targets are resolved against a fixed origin: only the path and query matter to the routes.
const BASE = 'http://localhost';

/** Longest peer-chosen text quoted in an answer or a log line; the peer chooses its length. */
const QUOTE_CHARS = 80;

/** A peer-chosen string, shortened and JSON-quoted, for a one-line message. */
export function quoteTarget(text: string): string {
  return JSON.stringify(text.length > QUOTE_CHARS ? `${text.slice(0, QUOTE_CHARS)}…` : text);
}

/**
 * The request's target as a URL (origin-form `/a/b?c` and absolute-form `http://host/a/b` alike).
 *
 * @throws FtlError(INVALID_MESSAGE) when the target is no URL (`//[`, `http://[/`): a 400, not a crash.
 */
export function requestUrl(req: IncomingMessage): URL {
  const target = req.url ?? '/';
  try {
    return new URL(target, BASE);
  } catch (err) {
    throw new FtlError(ErrorCode.InvalidMessage, `malformed request target ${quoteTarget(target)}; send a path such as /backbone/model.json`, {
      cause: err,
    });
  }
}

/**
 * One percent-encoded path segment, decoded.
 *
 * @throws FtlError(INVALID_MESSAGE) for a bad encoding (`%`, `%E0%A4%A`): a 400, not a crash.
 */
export function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch (err) {
    throw new FtlError(
      ErrorCode.InvalidMessage,
      `malformed percent-encoding in ${quoteTarget(segment)}; encode each reserved or non-ASCII byte as %XX of its UTF-8`,
      { cause: err },
    );
  }
}
