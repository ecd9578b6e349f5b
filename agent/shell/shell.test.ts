// The recorded shell's pure parts: the local socket's framing and the recording (UTF-8 across reads,
// input only when echoed, chunking). The pty relay is in relay.test.ts; the whole shell runs for real in
// test/shell.test.ts.
import { describe, expect, it } from 'vitest';
import { encodeFrame, Frame, FrameError, FrameReader, MAX_LOCAL_FRAME_BYTES } from './frames.ts';
import { Recording } from './recording.ts';

describe('local socket frames', () => {
  it('reassembles frames from a stream cut at every byte', () => {
    const wire = Buffer.concat([encodeFrame(Frame.HELLO, { cols: 80 }), encodeFrame(Frame.INPUT, Buffer.from('ls\r')), encodeFrame(Frame.INPUT, Buffer.alloc(0))]);
    const reader = new FrameReader();
    const frames = [];
    for (const byte of wire) frames.push(...reader.push(Buffer.from([byte])));
    expect(frames.map((f) => [f.type, f.payload.toString()])).toEqual([[Frame.HELLO, '{"cols":80}'], [Frame.INPUT, 'ls\r'], [Frame.INPUT, '']]);
  });

  it('refuses a frame that claims to be over the limit, before reading it', () => {
    const header = Buffer.alloc(5);
    header.writeUInt8(Frame.INPUT, 0);
    header.writeUInt32BE(MAX_LOCAL_FRAME_BYTES + 1, 1);
    expect(() => new FrameReader().push(header)).toThrow(FrameError);
  });
});

describe('recording', () => {
  const record = (options: Partial<ConstructorParameters<typeof Recording>[0]> = {}) => {
    let now = 1_000;
    const chunks: Array<{ Chunk: number; Data: string }> = [];
    const recording = new Recording({ startMs: 1_000, recordInput: true, write: (c) => chunks.push(c), now: () => now, ...options });
    const events = () => chunks.flatMap((c) => c.Data.trimEnd().split('\n')).map((line) => JSON.parse(line) as [number, string, string]);
    return { recording, chunks, events, tick: (ms: number) => (now += ms) };
  };

  it('keeps a character split between two reads whole', () => {
    const { recording, events } = record();
    const euro = Buffer.from('€');
    recording.output(euro.subarray(0, 1));
    recording.output(Buffer.concat([euro.subarray(1), Buffer.from('!')]));
    recording.close();
    expect(events().map(([, , data]) => data).join('')).toBe('€!');
  });

  it('records typed input only when the terminal shows it back: a password typed with echo off is never kept', () => {
    const { recording, events, tick } = record();
    recording.input(Buffer.from('l'));
    tick(5);
    recording.output(Buffer.from('l'));
    recording.input(Buffer.from('s'));
    recording.output(Buffer.from('s'));
    recording.input(Buffer.from('\r'));
    recording.output(Buffer.from('\r\nfile\r\nPassword: '));
    for (const key of 'hunter2') recording.input(Buffer.from(key));
    tick(10);
    recording.input(Buffer.from('\r'));
    recording.output(Buffer.from('\r\nwelcome\r\n'));
    recording.close();
    const recorded = events();
    // The Enter after the password shows as the new line the program prints next: kept, it tells nothing.
    expect(recorded.filter(([, type]) => type === 'i').map(([, , data]) => data)).toEqual(['l', 's', '\r', '\r']);
    expect(JSON.stringify(recorded)).not.toContain('hunter');
    expect(recording.stats).toMatchObject({ inputRecorded: 4, inputWithheld: 7 });
  });

  it('does not take late output for an echo', () => {
    const { recording, events, tick } = record();
    recording.input(Buffer.from('x'));
    tick(1_000);
    recording.output(Buffer.from('x'));
    recording.close();
    expect(events().filter(([, type]) => type === 'i')).toEqual([]);
  });

  it('records no input at all unless the policy asks', () => {
    const { recording, events } = record({ recordInput: false });
    recording.input(Buffer.from('a'));
    recording.output(Buffer.from('a'));
    recording.close();
    expect(events()).toEqual([[0, 'o', 'a']]);
  });

  it('cuts chunks at their size, numbered from 0, every event whole; timestamps in seconds since the start', () => {
    const { recording, chunks, events, tick } = record({ chunkChars: 100 });
    for (let i = 0; i < 20; i++) {
      tick(250);
      recording.output(Buffer.from(`line ${i}\r\n`));
    }
    recording.resize(100, 40);
    recording.close();
    expect(chunks.map((c) => c.Chunk)).toEqual([...chunks.keys()]);
    expect(chunks.length).toBeGreaterThan(3);
    for (const chunk of chunks) expect(chunk.Data.endsWith('\n')).toBe(true);
    const all = events();
    expect(all.at(0)).toEqual([0.25, 'o', 'line 0\r\n']);
    expect(all.at(-1)).toEqual([5, 'r', '100x40']);
    expect(all.filter(([, type]) => type === 'o')).toHaveLength(20);
  });
});
