import { createServer, type Server, type Socket } from 'node:net';

/**
 * How the fake misbehaves: `silent` accepts connections and never answers anything; `stalls`
 * completes ioredis's handshake, then never answers a command (a Redis paused or stuck in a script
 * after clients connected); `slow` answers everything, each reply `delayMs` late.
 */
export type FakeRedisMode =
  { kind: 'silent' } | { kind: 'stalls' } | { kind: 'slow'; delayMs: number };

export interface FakeRedis {
  url: string;
  /** Commands received (their names, lower-cased), in order. */
  commands: string[];
  close(): Promise<void>;
}

/** Splits RESP arrays of bulk strings (what clients send) off the front of `buffer`. */
function parseCommands(buffer: string): { commands: string[][]; rest: string } {
  const commands: string[][] = [];
  let at = 0;
  for (;;) {
    const header = /^\*(\d+)\r\n/.exec(buffer.slice(at));
    if (!header) break;
    let cursor = at + header[0].length;
    const args: string[] = [];
    for (let i = 0; i < Number(header[1]); i++) {
      const length = /^\$(\d+)\r\n/.exec(buffer.slice(cursor));
      if (!length) return { commands, rest: buffer.slice(at) };
      const start = cursor + length[0].length;
      if (buffer.length < start + Number(length[1]) + 2)
        return { commands, rest: buffer.slice(at) };
      args.push(buffer.slice(start, start + Number(length[1])));
      cursor = start + Number(length[1]) + 2;
    }
    commands.push(args);
    at = cursor;
  }
  return { commands, rest: buffer.slice(at) };
}

/**
 * A TCP server on loopback that speaks just enough of Redis's protocol for ioredis and the
 * throttler's EVAL script (which it answers by counting hits per key, as the script would).
 */
export async function startFakeRedis(mode: FakeRedisMode): Promise<FakeRedis> {
  const commands: string[] = [];
  const hits = new Map<string, number>();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const reply = (args: string[]): string => {
    const name = args[0].toLowerCase();
    if (name === 'info') {
      const info = 'redis_version:7.2.0\r\nloading:0\r\n';
      return `$${info.length}\r\n${info}\r\n`;
    }
    if (name === 'eval') {
      // eval script 2 hitKey blockKey throttlerName ttl limit blockDuration
      const [, , , hitKey, , , ttl, limit, blockDuration] = args;
      const total = (hits.get(hitKey) ?? 0) + 1;
      hits.set(hitKey, total);
      const blocked = total > Number(limit);
      return `*4\r\n:${total}\r\n:${ttl}\r\n:${blocked ? 1 : 0}\r\n:${blocked ? blockDuration : 0}\r\n`;
    }
    return '+OK\r\n';
  };

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffer = '';
    socket.on('data', (data: Buffer) => {
      const parsed = parseCommands(buffer + data.toString());
      buffer = parsed.rest;
      for (const args of parsed.commands) {
        const name = args[0].toLowerCase();
        commands.push(name);
        if (mode.kind === 'silent') continue;
        if (mode.kind === 'stalls' && (name === 'eval' || name === 'evalsha')) continue;
        const answer = reply(args);
        if (mode.kind !== 'slow') {
          socket.write(answer);
          continue;
        }
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (!socket.destroyed) socket.write(answer);
        }, mode.delayMs);
        timers.add(timer);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `redis://127.0.0.1:${port}`,
    commands,
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
