import { io, type Socket } from 'socket.io-client';
import { createMsgpackParser, type ChannelConnector, type ClientChannel, type ClientToServerEvents, type ServerToClientEvents } from '@ftl/shared';

/**
 * A client's channel over socket.io (WebSocket only, msgpack frames): the default of
 * `ClientOptions.connect`, and what every deployed site uses. Reconnects with a growing delay
 * (0.5 s up to 5 s) for `reconnectionAttempts` tries.
 *
 * @example
 * const channel = socketIoConnect('https://coordinator:8443', { auth: { protocol: PROTOCOL_VERSION, name }, reconnectionAttempts: 20, ca });
 */
export const socketIoConnect: ChannelConnector = (serverUrl, o) => {
  const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(serverUrl, {
    parser: createMsgpackParser(),
    auth: o.auth,
    transports: ['websocket'],
    ...(o.ca ? { ca: o.ca } : {}),
    reconnectionAttempts: o.reconnectionAttempts,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
  });
  // Everything but `timeout` is checked as it is; socket.io types `emitWithAck` per event with the
  // acknowledgement's arguments folded in, which is the same call the channel makes, in other generics.
  const checked: Omit<ClientChannel, 'timeout'> & Pick<typeof socket, 'timeout'> = socket;
  return checked as ClientChannel;
};
