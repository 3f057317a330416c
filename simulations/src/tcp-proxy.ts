import { randomBytes } from 'node:crypto';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** One proxied TCP connection: the peer's side and the coordinator's side. */
interface Link {
  down: Socket;
  up: Socket;
}

/**
 * A loopback TCP proxy in front of a coordinator, so a test or the chaos driver can fail the network
 * under a peer that does not know: {@link TcpProxy.cut} drops every live connection at once (the peer
 * sees a transport close and reconnects by itself through the proxy), {@link TcpProxy.partialFrame}
 * starts a WebSocket frame towards the coordinator and dies half-way through it. The target port is
 * fixed, so a coordinator restarted on the same port is reached again.
 *
 * @example
 * const proxy = await startTcpProxy(8080);
 * const client = new FtlClient({ serverUrl: proxy.url, ... });
 * proxy.cut(); // the network drops; the client comes back on its own
 */
export interface TcpProxy {
  /** `http://127.0.0.1:<port>` of the proxy. */
  url: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Destroys every live connection on both sides; returns how many there were. */
  cut(): number;
  /**
   * Writes the header of a masked binary WebSocket frame announcing `payload.length` bytes and the first
   * `sent` bytes of `payload` to the coordinator side of the newest live connection, then destroys that
   * connection on both sides: a peer killed in the middle of an upload. Returns false without a live one.
   */
  partialFrame(payload: Uint8Array, sent: number): Promise<boolean>;
  /** Cuts every connection and stops listening. */
  close(): Promise<void>;
}

/** Starts a proxy on a free loopback port forwarding to `127.0.0.1:targetPort`. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const links = new Set<Link>();
  let accepted = 0;
  const server: Server = createServer((down) => {
    accepted++;
    const up = createConnection({ host: '127.0.0.1', port: targetPort });
    const link = { down, up };
    links.add(link);
    const drop = () => {
      links.delete(link);
      down.destroy();
      up.destroy();
    };
    down.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const cut = () => {
    const n = links.size;
    for (const { down, up } of [...links]) {
      down.destroy();
      up.destroy();
    }
    links.clear();
    return n;
  };
  return {
    url: `http://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    cut,
    async partialFrame(payload, sent) {
      const link = [...links].at(-1);
      if (!link) return false;
      link.down.unpipe(link.up);
      const frame = truncatedFrame(payload, sent);
      await new Promise<void>((resolve) => link.up.write(frame, () => resolve()));
      links.delete(link);
      link.down.destroy();
      link.up.destroy();
      return true;
    },
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The start of a masked binary WebSocket frame (RFC 6455 5.2: FIN + binary opcode, mask bit, 64-bit
 * length, masking key) that announces all of `payload` but carries only its first `n` bytes.
 */
function truncatedFrame(payload: Uint8Array, n: number): Buffer {
  const key = randomBytes(4);
  const header = Buffer.alloc(2 + 8 + 4);
  header[0] = 0x82;
  header[1] = 0x80 | 127;
  header.writeBigUInt64BE(BigInt(payload.length), 2);
  key.copy(header, 10);
  const body = Buffer.alloc(Math.min(n, payload.length));
  for (let i = 0; i < body.length; i++) body[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([header, body]);
}
