import { connect } from 'node:net';

/** One HTTP answer as it came off the wire. */
export interface RawAnswer {
  /** The status code of the first status line (0 when the server closed the connection without one). */
  status: number;
  /** Every status line received: more than one means an answer was written twice. */
  statusLines: string[];
  /** Header lines of the first answer, lower-cased names. */
  headers: Record<string, string>;
  body: string;
}

/**
 * Test helper: sends one request exactly as written (request line and optional extra header lines) over a
 * plain TCP socket, so a malformed target reaches the server unmodified (fetch and http.request would
 * normalise or refuse it), and reads until the server closes.
 *
 * @example
 * const a = await rawRequest(port, 'GET /backbone/% HTTP/1.1'); // a.status === 400
 */
export function rawRequest(port: number, requestLine: string, headerLines: string[] = []): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(parse(Buffer.concat(chunks).toString('latin1'))));
    socket.write([requestLine, 'Host: 127.0.0.1', 'Connection: close', ...headerLines, '', ''].join('\r\n'));
  });
}

function parse(raw: string): RawAnswer {
  const statusLines = raw.match(/^HTTP\/1\.[01] \d{3}[^\r\n]*/gm) ?? [];
  const split = raw.indexOf('\r\n\r\n');
  const head = split < 0 ? raw : raw.slice(0, split);
  const headers: Record<string, string> = {};
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(raw)?.[1] ?? 0), statusLines, headers, body: split < 0 ? '' : raw.slice(split + 4) };
}
