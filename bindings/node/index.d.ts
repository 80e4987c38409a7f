import { EventEmitter } from 'node:events'
import { Socket } from 'node:net'

export interface EngineOptions {
  /** Default '127.0.0.1'; wildcards ('0.0.0.0', '::') need allowPublic. */
  host?: string
  /** Default 0: the kernel picks a free port (read it with address()). */
  port?: number
  acceptors?: number
  backlog?: number
  ioWorkers?: number
  model?: 'single' | 'thread-per-connection' | 'pool' | 'reuseport' | 'stealing'
  allowPublic?: boolean
  deferAccept?: boolean
  maxConnections?: number
  maxInFlight?: number
  /** 0: no cap (default 1024). */
  maxConnectionsPerIp?: number
  /** New connections per second (0: no limit, the default). */
  maxAcceptRate?: number
  /** 0: no cap (default 10000). */
  maxRequestsPerConnection?: number
  maxFrame?: number
  maxHeader?: number
  /** Milliseconds. */
  headerTimeout?: number
  /** Milliseconds. */
  idleTimeout?: number
  /** Milliseconds a handler has to answer (default 60000; 0: no deadline); past it corral answers 504. */
  replyTimeout?: number
  /** Microseconds: the scheduler slice I/O workers ask for (default 100; 0: the kernel's). */
  ioSlice?: number
  /** Heavy jobs queued at which new ones run first, newest first (default 0: always FIFO). */
  lifoThreshold?: number
}

export interface ListenOptions extends EngineOptions {
  /** Accepted connections the queue holds before acceptors pause. */
  capacity?: number
}

export interface Address {
  address: string
  port: number
  family: 'IPv4' | 'IPv6'
}

export interface Stats {
  accepts: number
  requests: number
  replies: number
  openConnections: number
  connectionsClosed: number
  requestsAborted: number
  requestsRejected: number
  handlerFailures: number
  tasksStolen: number
  handoffQueued: number
  workers: number
  backlog: number
}

export interface ShutdownReport {
  connectionsClosed: number
  connectionsAborted: number
  requestsCompleted: number
  requestsAborted: number
  handoffUnclaimed: number
  clean: boolean
}

/** Errors from corral carry a code such as 'CORRAL_BIND' or 'CORRAL_PUBLIC_ADDRESS'. */
export interface CorralError extends Error {
  code: string
}

declare class Engine extends EventEmitter {
  address(): Address
  stats(): Stats
  prometheus(): string
  readonly closed: boolean
  /** An open engine keeps the process alive (like net.Server); unref() lets it exit. */
  unref(): this
  ref(): this
  /** Timeout in milliseconds (default 5000). Idempotent. */
  close(options?: { timeout?: number }): Promise<ShutdownReport>
}

export declare class Listener extends Engine implements AsyncIterable<Socket> {
  on(event: 'connection', listener: (socket: Socket) => void): this
  on(event: 'close', listener: (report: ShutdownReport) => void): this
  on(event: 'error', listener: (err: CorralError) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  [Symbol.asyncIterator](): AsyncIterator<Socket>
}

export interface Request {
  /** HTTP only. */
  method?: string
  /** HTTP only: path and query as sent. */
  url?: string
  /** Lower-cased names; the first value of each. */
  headers: Record<string, string>
  /** name, value, name, value, … as received. */
  rawHeaders: string[]
  /** The frame (raw, lines, length) or the HTTP body. */
  body: Buffer
  connId: number
  seq: number
  worker: number
  remoteAddress: string
  remotePort: number
}

export type Reply =
  | Buffer
  | Uint8Array
  | string
  | { status?: number; headers?: Record<string, string | string[]>; body?: Buffer | Uint8Array | string }
  | null
  | undefined

export type Handler = (req: Request) => Reply | Promise<Reply>

export interface ServeOptions extends EngineOptions {
  protocol?: 'http' | 'lines' | 'length' | 'raw'
  handler?: Handler
  /** Decided natively: HTTP path prefixes, or { pathPrefixes, minBytes }. */
  heavy?: string[] | { pathPrefixes?: string[]; minBytes?: number }
  /** Worker threads for heavy requests (needs module). */
  workers?: number
  /** Path of a module exporting the heavy handler (function, or { handler }). */
  module?: string
}

export declare class Server extends Engine {
  on(event: 'close', listener: (report: ShutdownReport) => void): this
  on(event: 'error', listener: (err: Error) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
}

export declare function listen(options?: ListenOptions, onSocket?: (socket: Socket) => void): Listener
export declare function serve(options: ServeOptions): Server
export declare const version: string
