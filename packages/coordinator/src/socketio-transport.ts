import type { Server as HttpServer } from 'node:http';
import { Server } from 'socket.io';
import type { ChannelServer, ChannelTransport, ClientToServerEvents, ServerToClientEvents } from '@ftl/shared';

/**
 * The coordinator's live channel over socket.io, on its HTTP(S) server (`/socket.io`, WebSocket frames):
 * the transport of every deployment. socket.io's sockets are the {@link ChannelServer}'s sockets as they
 * are; only the server is adapted.
 *
 * @example
 * const channel = socketIoTransport(http).open({ parser: createMsgpackParser(bytes, { maxFrameBytes }), maxMessageBytes });
 */
export function socketIoTransport(http: HttpServer): ChannelTransport {
  return {
    open: ({ parser, maxMessageBytes }): ChannelServer => {
      const io = new Server<ClientToServerEvents, ServerToClientEvents>(http, {
        parser,
        // One head update plus envelope; anything larger is refused by engine.io before it is buffered.
        maxHttpBufferSize: maxMessageBytes,
        serveClient: false,
        pingInterval: 5000,
        pingTimeout: 10000,
        // A transport that never completes the socket.io handshake is dropped after this, not after 45 s.
        connectTimeout: 10000,
      });
      return {
        use: (middleware) => io.use(middleware),
        onConnection: (listener) => io.on('connection', (socket) => listener(socket)),
        broadcast: (event, message) => (io.emit as (e: string, m: unknown) => boolean)(event, message),
        sockets: () => io.sockets.sockets.values(),
        // socket.io closes the HTTP server with its own; the coordinator closes it only when still listening.
        close: () => new Promise<void>((resolve) => io.close(() => resolve())),
      };
    },
  };
}
