// The local socket between `omwatch-agent shell` (the user's side) and the agent daemon, which owns the
// pty and the recording. Binary frames: one type byte, a 4-byte big-endian length, the payload. Terminal
// bytes travel as they are; control frames carry JSON. Nothing here trusts the peer: lengths are bounded
// and every JSON payload is checked by its receiver.
import type { Socket } from 'node:net';

export const Frame = {
  // client → daemon
  HELLO: 1,
  INPUT: 2,
  RESIZE: 3,
  // daemon → client
  CHALLENGE: 10,
  STARTED: 11,
  OUTPUT: 12,
  NOTICE: 13,
  EXIT: 14,
} as const;
export type FrameType = (typeof Frame)[keyof typeof Frame];

/** A frame longer than this ends the connection: terminal output is relayed in pieces well below it. */
export const MAX_LOCAL_FRAME_BYTES = 1024 * 1024;
const HEADER_BYTES = 5;

export function encodeFrame(type: FrameType, payload: Buffer | string | object): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt8(type, 0);
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([header, body]);
}

export class FrameError extends Error {}

/**
 * Splits a byte stream into frames; `push` returns the complete frames so far, or throws FrameError.
 * Bytes of an incomplete frame are joined only once the frame is whole: a peer trickling a large frame
 * byte by byte costs one copy, not one per byte.
 */
export class FrameReader {
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Bytes the frame at the head of #pending needs in all (header included); 0 until its header is read. */
  #needed = 0;

  push(chunk: Buffer): Array<{ type: number; payload: Buffer }> {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes < Math.max(HEADER_BYTES, this.#needed)) return [];
    let buffer = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending);
    const frames: Array<{ type: number; payload: Buffer }> = [];
    let offset = 0;
    this.#needed = 0;
    while (buffer.length - offset >= HEADER_BYTES) {
      const type = buffer.readUInt8(offset);
      const length = buffer.readUInt32BE(offset + 1);
      if (length > MAX_LOCAL_FRAME_BYTES) throw new FrameError(`frame of ${length} bytes is over the limit of ${MAX_LOCAL_FRAME_BYTES}`);
      if (buffer.length - offset - HEADER_BYTES < length) {
        this.#needed = HEADER_BYTES + length;
        break;
      }
      frames.push({ type, payload: buffer.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length) });
      offset += HEADER_BYTES + length;
    }
    buffer = buffer.subarray(offset);
    this.#pending = buffer.length > 0 ? [buffer] : [];
    this.#pendingBytes = buffer.length;
    return frames;
  }
}

/** Reads frames off a socket as they complete; a bad frame is reported and ends the connection. */
export function readFrames(socket: Socket, onFrame: (frame: { type: number; payload: Buffer }) => void, onBadFrame: (message: string) => void): void {
  const reader = new FrameReader();
  socket.on('data', (chunk: Buffer) => {
    let frames;
    try {
      frames = reader.push(chunk);
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      onBadFrame(error.message);
      socket.destroy();
      return;
    }
    for (const frame of frames) {
      if (socket.destroyed) return;
      onFrame(frame);
    }
  });
}

/** Parses a JSON payload; undefined if it is not JSON (the caller says what it expected). */
export function jsonPayload(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
}
